"""Mapping filters decided by row-group statistics (dataset.column_filter): a row group whose checked footer says
every row matches is kept by its row count, one that cannot match is skipped, only the rest are hashed and decoded;
against a plain pyarrow evaluation of the same predicate, and refusing (or not trusting) statistics that lie."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from parquet_spies import PARQUET_FILES, spy_on
from table_digests import without_image_records, without_table_digests
from table_records import groups_of, without_value_index

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_core.errors import ChecksumError
from ome_arrow_core.typed_chunk import group_sums
from ome_arrow_core.typed_chunk.opening import clear_cache

MANIFEST = "_ome_arrow_dataset.json"
WELLS = ["A01", "A02", "B01"]
#: A plate written well by well, four images a row group: groups 0 (A01 x4), 1 (A01, A02 x3), 2 (A02 x4),
#: 3 (A02, None, None, B01), 4 (B01 x4), 5 (B01).
SORTED = ["A01"] * 5 + ["A02"] * 8 + [None, None] + ["B01"] * 6
PER_GROUP = 4


def _image(i: int) -> np.ndarray:
    return ((np.arange(2 * 3, dtype=np.int64) + 13 * i) % 4096).astype(np.uint16).reshape(1, 2, 3)


def _write(root: Path, wells: list[str | None], sites: list[int], per_group: int) -> Path:
    return write_dataset(
        (_image(i) for i in range(len(wells))),
        root,
        dim_order="ZYX",
        metadata=[{"well": w, "site": s} for w, s in zip(wells, sites)],
        images_per_group=per_group,
        progress=False,
    )


def _fresh() -> None:
    clear_cache()
    group_sums._passed.clear()


def _rows(kept: OMEArrowDataset) -> list[int]:
    return [int(r) for r in kept._positions.many(np.arange(len(kept)))[1]]


def _pyarrow_model(wells: list[str | None], sites: list[int], spec: dict[str, Any]) -> list[int]:
    """The rows ``spec`` keeps, by pyarrow.compute over the same columns (a null matches nothing)."""
    table = pa.table({"well": pa.array(wells, pa.string()), "site": pa.array(sites, pa.int64())})
    keep = pa.array([True] * len(wells))
    for name, value in spec.items():
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        hit = pc.is_in(table[name], value_set=pa.array(values, table.schema.field(name).type))
        keep = pc.and_(keep, pc.fill_null(hit, False))
    return [i for i, k in enumerate(keep.to_pylist()) if k]


@pytest.fixture(scope="module")
def sorted_plate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("runs") / "plate", SORTED, [i % 3 for i in range(len(SORTED))], PER_GROUP)


@pytest.fixture
def plate(sorted_plate: Path, tmp_path: Path) -> Path:
    out = tmp_path / "plate"
    shutil.copytree(sorted_plate, out)
    without_value_index(out)  # the footers' path (the value index's: tests/test_value_index.py)
    return out


_value = st.sampled_from([*WELLS, "Z9"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    wells=st.lists(st.one_of(st.none(), st.sampled_from(WELLS)), min_size=1, max_size=24),
    in_order=st.booleans(),
    per_group=st.sampled_from([1, 2, 3, 5]),
    spec=st.fixed_dictionaries(
        {}, optional={"well": st.one_of(_value, st.lists(_value, max_size=3)), "site": st.integers(0, 2)}
    ).filter(bool),
)
def test_a_filter_on_a_random_plate_keeps_what_pyarrow_keeps(
    tmp_path_factory: pytest.TempPathFactory,
    wells: list[str | None],
    in_order: bool,
    per_group: int,
    spec: dict[str, Any],
) -> None:
    assume(any(w is not None for w in wells))  # (a column of nulls only is written as type null: another case)
    if in_order:  # written well by well (nulls first), as a plate is: runs the statistics decide whole
        wells = sorted(wells, key=lambda w: (w is not None, w or ""))
    sites = [(i // 4) % 3 for i in range(len(wells))]
    root = _write(tmp_path_factory.mktemp("random") / "plate", wells, sites, per_group)
    _fresh()
    kept = OMEArrowDataset.scan(root).filter(spec)
    expected = _pyarrow_model(wells, sites, spec)
    assert _rows(kept) == expected
    if expected:
        np.testing.assert_array_equal(kept[0].to_numpy(layout="ZYX"), _image(expected[0]))
        np.testing.assert_array_equal(kept[len(kept) - 1].to_numpy(layout="ZYX"), _image(expected[-1]))


def test_groups_the_statistics_decide_are_neither_hashed_nor_decoded(
    plate: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[Any] = []
    hashed: list[tuple[int, int]] = []

    def spy(original: Any) -> Any:
        def iter_batches(self: Any, *args: Any, **kwargs: Any) -> Any:
            read.append(kwargs.get("row_groups"))
            return original(self, *args, **kwargs)

        return iter_batches

    real = group_sums._digest

    def digest(fd: int, start: int, stop: int) -> str:
        hashed.append((start, stop))
        return real(fd, start, stop)

    spy_on(monkeypatch, PARQUET_FILES, "iter_batches", spy)
    _fresh()
    ds = OMEArrowDataset.scan(plate)
    entry = groups_of(json.loads((plate / MANIFEST).read_text())["ome_arrow_core"])["images.parquet"]
    bounds = entry["bounds"]
    monkeypatch.setattr(group_sums, "_digest", digest)
    kept = ds.filter({"well": "A02"})
    assert _rows(kept) == list(range(5, 13))
    assert read == [[1], [3]]  # group 2 (A02 x4) kept by its count; 0, 4, 5 ruled out
    footer = (bounds[-1], (plate / "images.parquet").stat().st_size)  # checked by the filter: the scan counts
    groups = [h for h in hashed if h != footer and h[1] <= bounds[-1]]
    assert sorted(groups) == [(bounds[1], bounds[2]), (bounds[3], bounds[4])]
    assert footer in hashed
    read.clear()
    assert _rows(ds.filter({"well": "B01"})) == list(range(15, 21))
    assert read == [[3]]  # only the group that also holds nulls and an A02


def _lie_min_equals_max(plate: Path) -> None:
    """Make row group 1's footer entry (A01, A02 x3) claim min == max == A01 for ``well``: the same length."""
    entry = groups_of(json.loads((plate / MANIFEST).read_text())["ome_arrow_core"])["images.parquet"]
    at, _, _, _, *starts = entry["footer_spans"]
    file = plate / "images.parquet"
    data = bytearray(file.read_bytes())
    lo, hi = at + starts[1], at + starts[2]
    piece = bytes(data[lo:hi])
    assert piece.count(b"A02") >= 1 and b"A01" in piece
    data[lo:hi] = piece.replace(b"A02", b"A01")
    file.write_bytes(bytes(data))


def test_a_footer_claiming_a_group_holds_one_well_is_refused_by_its_digest(plate: Path) -> None:
    _lie_min_equals_max(plate)
    _fresh()
    with pytest.raises(ChecksumError, match="footer"):
        OMEArrowDataset.scan(plate).filter({"well": "A01"})


def test_statistics_of_a_table_without_digests_are_not_trusted(plate: Path) -> None:
    _lie_min_equals_max(plate)
    without_table_digests(plate)  # nothing checks the footer: its statistics must not decide
    _fresh()
    ds = OMEArrowDataset.scan(plate)
    assert _rows(ds.filter({"well": "A01"})) == list(range(5))  # not 0..7: group 1's A02s are read as A02
    assert _rows(ds.filter({"well": "A02"})) == list(range(5, 13))


def test_an_image_of_a_damaged_group_kept_whole_is_refused_when_it_is_opened(plate: Path) -> None:
    without_image_records(plate)  # an image opened from its row group (records: tests/test_image_records.py)
    entry = groups_of(json.loads((plate / MANIFEST).read_text())["ome_arrow_core"])["images.parquet"]
    file = plate / "images.parquet"
    data = bytearray(file.read_bytes())
    data[entry["bounds"][2] + 7] ^= 0x01  # row group 2: A02 x4, kept by its statistics
    file.write_bytes(bytes(data))
    _fresh()
    kept = OMEArrowDataset.scan(plate).filter({"well": "A02"})
    assert _rows(kept) == list(range(5, 13))  # decided by the checked footer; the group was not decoded
    np.testing.assert_array_equal(kept[0].to_numpy(layout="ZYX"), _image(5))  # group 1: intact
    with pytest.raises(ChecksumError, match="row group 2"):
        kept[3].to_numpy(layout="ZYX")  # image 8 lies in group 2: its bytes are checked before they are parsed
