"""How the manifest records chunks files' footers (``chunk_footers``): packed integers round-trip, integer lists read
as ``int()`` reads them, and records that do not decode are a damaged manifest (reads through them:
test_chunk_footers.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import writes_support as ws
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrowDataset
from ome_arrow_core.errors import DamagedFileError
from ome_arrow_core.typed_chunk import group_sums
from ome_arrow_core.typed_chunk.chunk_footers import CHUNK_FOOTERS_KEY, PACKED_FOOTERS_KEY
from ome_arrow_core.typed_chunk.opening import clear_cache
from ome_arrow_core.typed_chunk.packed_ints import pack_ints, unpack_ints

#: Datasets written without pixel locators (as before them): reads here go through the index (see conftest).
pytestmark = pytest.mark.usefixtures("written_without_locators")

MANIFEST = "_ome_arrow_dataset.json"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("chunk-footer-records") / "plate"
    ws.write_packed(target, ws.plate(1, 23))  # three images to a chunks row group: 8 groups
    return target


_json_values = st.one_of(
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.text(max_size=1), st.integers(), max_size=1),
)


@settings(max_examples=300, deadline=None)
@given(values=st.one_of(st.lists(st.integers(-(2**62), 2**62), max_size=40), st.lists(_json_values, max_size=6)))
def test_manifest_integer_lists_are_read_as_int_reads_each_value_or_refused(values: list[Any]) -> None:
    """group_sums.int_list (numpy) gives what ``int()`` of each value gives, or refuses what it cannot hold."""
    try:
        want: list[int] | None = [int(v) for v in values]
        if any(not -(2**63) <= w < 2**63 for w in want or []):
            want = None  # beyond int64: refused
    except (TypeError, ValueError):
        want = None
    try:
        got: list[int] | None = group_sums.int_list(values).tolist()
    except (TypeError, ValueError):
        got = None
    assert got == want, (values, got)
    with pytest.raises(TypeError):
        group_sums.int_list("123")


def test_records_are_written_packed(base: Path) -> None:
    ours = json.loads((base / MANIFEST).read_text())["ome_arrow_core"]
    assert CHUNK_FOOTERS_KEY not in ours  # older readers, which know only that key, parse the footer whole
    entry = ours[PACKED_FOOTERS_KEY]["chunks.parquet"]
    assert set(entry) == {"size", "footer", "rows", "groups", "ints", "footer_block", "footer_sums"}
    md = pq.read_metadata(base / "chunks.parquet")
    assert entry["groups"] == md.num_row_groups > 1
    group_rows = unpack_ints(entry["ints"], 3 * entry["groups"] + 4).tolist()[: entry["groups"]]
    assert group_rows == [md.row_group(g).num_rows for g in range(md.num_row_groups)]


@pytest.mark.parametrize(
    "edit",
    [
        lambda e: e.update(ints=e["ints"][:-4]),  # short
        lambda e: e.update(ints=e["ints"] + "AAAA"),  # long
        lambda e: e.update(ints="!" + e["ints"][1:]),  # not base64
        lambda e: e.update(ints=[1, 2, 3]),
        lambda e: e.update(groups=e["groups"] + 1),
        lambda e: e.update(groups=-1),
        lambda e: e.update(groups=True),
        lambda e: e.update(groups="8"),
        lambda e: e.pop("groups"),
    ],
)
def test_packed_records_that_do_not_decode_are_a_damaged_manifest(tmp_path: Path, base: Path, edit: Any) -> None:
    plate = tmp_path / "plate"
    shutil.copytree(base, plate)
    manifest = json.loads((plate / MANIFEST).read_text())
    edit(manifest["ome_arrow_core"][PACKED_FOOTERS_KEY]["chunks.parquet"])
    (plate / MANIFEST).write_text(json.dumps(manifest))
    clear_cache()
    group_sums._passed.clear()
    with pytest.raises(DamagedFileError, match="manifest is damaged"):
        OMEArrowDataset.scan(plate)[0].to_numpy()


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=50), cut=st.integers(0, 3))
def test_packed_integers_round_trip_and_refuse_other_lengths(values: list[int], cut: int) -> None:
    text = pack_ints(values)
    assert unpack_ints(text, len(values)).tolist() == values
    with pytest.raises(ValueError):
        unpack_ints(text, len(values) + 1)
    if cut and values:
        with pytest.raises(ValueError):
            unpack_ints(text[:-cut], len(values))
