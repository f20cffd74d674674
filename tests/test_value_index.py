"""The value index of the images tables (``ome_arrow_core.value_index``): a mapping filter reads the rows of the
values it names; every piece it reads is checked against a digest the manifest chains to; stale, missing or
unknown indexes leave the filter to the footers, as before."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrowDataset, compact_dataset, verify, write_dataset
from ome_arrow_core.checksums import hex_digest
from ome_arrow_core.errors import ChecksumError, DamagedFileError
from ome_arrow_core.typed_chunk import group_sums
from ome_arrow_core.typed_chunk.opening import clear_cache
from ome_arrow_core.typed_chunk.spec import MANIFEST
from ome_arrow_core.typed_chunk.value_index import VALUES_KEY, value_rows

WELLS = ["A01", "A02", "B01", "B02", "C07"]


def _plate(root: Path, wells: list[str | None], per_group: int = 4, mode: str = "overwrite", first: int = 0) -> Path:
    write_dataset(
        (np.full((1, 2, 2), first + i, np.uint16) for i in range(len(wells))),
        root,
        mode=mode,
        dim_order="ZYX",
        metadata=[{"well": w, "plate": f"P{(first + i) % 2}", "site": first + i} for i, w in enumerate(wells)],
        images_per_group=per_group,
        progress=False,
    )
    return root


def _manifest(root: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((root / MANIFEST).read_text())
    return loaded


def _entry(root: Path, name: str = "images.parquet") -> dict[str, Any]:
    entry: dict[str, Any] = _manifest(root)["ome_arrow_core"][VALUES_KEY][name]
    return entry


def _fresh() -> None:
    clear_cache()
    group_sums._passed.clear()


def _kept(ds: OMEArrowDataset) -> list[int]:
    return [int(ds[i].to_numpy().max()) for i in range(len(ds))]


def _expected(root: Path, spec: dict[str, Any]) -> list[int]:
    table = OMEArrowDataset.scan(root).table
    mask = pa.array([True] * table.num_rows)
    for column, value in spec.items():
        values = value if isinstance(value, list) else [value]
        mask = pc.and_(mask, pc.fill_null(pc.is_in(table.column(column), pa.array(values, pa.string())), False))
    return [int(v) for v in table.column("site").filter(mask).to_pylist()]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wells = [WELLS[i % 5] if i % 7 else None for i in range(23)]
    return _plate(tmp_path_factory.mktemp("values") / "plate", wells)


@pytest.fixture
def plate(base: Path, tmp_path: Path) -> Path:
    out = tmp_path / "plate"
    shutil.copytree(base, out)
    _fresh()
    return out


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    wells=st.lists(st.sampled_from([*WELLS, None]), min_size=1, max_size=40).filter(
        lambda w: any(v is not None for v in w)  # (a column of nulls only is no text column)
    ),
    per_group=st.integers(min_value=1, max_value=9),
    pick=st.lists(st.sampled_from([*WELLS, "Z99"]), min_size=1, max_size=3),
    as_list=st.booleans(),
    plate_too=st.sampled_from([None, "P0", "P1"]),
)
def test_filters_read_from_the_index_match_pyarrow_compute(
    tmp_path_factory: pytest.TempPathFactory,
    wells: list[str | None],
    per_group: int,
    pick: list[str],
    as_list: bool,
    plate_too: str | None,
) -> None:
    root = _plate(tmp_path_factory.mktemp("any") / "plate", wells, per_group)
    spec: dict[str, Any] = {"well": pick if as_list else pick[0]}
    if plate_too is not None:
        spec["plate"] = plate_too
    manifest = _manifest(root)
    found = value_rows(root, manifest, "images.parquet", spec)
    assert found is not None  # the index answers
    assert _kept(OMEArrowDataset.scan(root).filter(spec)) == _expected(root, spec) == found[0].tolist()


def test_a_filter_on_an_indexed_column_parses_no_footer(plate: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ome_arrow_core.dataset import column_filter

    entry = _entry(plate)
    header = json.loads((plate / entry["file"]).read_bytes()[8 : 8 + entry["header"]])
    assert set(header["columns"]) == {"well", "plate"}  # the plate's own: no dataset column, no pixel locator

    def refuse(*a: Any, **k: Any) -> None:
        raise AssertionError("the images table's footer was read")

    want = _expected(plate, {"well": "A02"})
    _fresh()
    monkeypatch.setattr(column_filter.pq, "read_metadata", refuse)
    monkeypatch.setattr(column_filter, "check_table_footers", refuse)
    kept = OMEArrowDataset.scan(plate).filter({"well": "A02"})
    monkeypatch.undo()
    assert _kept(kept) == want


def _flip(file: Path, at: int) -> None:
    data = bytearray(file.read_bytes())
    data[at] ^= 0x01
    file.write_bytes(bytes(data))


def test_a_flipped_byte_in_the_header_is_refused(plate: Path) -> None:
    _flip(plate / _entry(plate)["file"], 20)
    with pytest.raises(ChecksumError, match=r"value index .*not used"):
        OMEArrowDataset.scan(plate).filter({"well": "A01"})
    assert not verify(plate).ok


def test_a_flipped_byte_in_a_values_rows_is_refused_and_other_values_still_read(plate: Path) -> None:
    entry = _entry(plate)
    file = plate / entry["file"]
    header = json.loads(file.read_bytes()[8 : 8 + entry["header"]])
    listed = header["columns"]["well"]
    k = listed["values"].index("B01")
    _flip(file, 8 + entry["header"] + listed["at"][k] + 1)
    with pytest.raises(ChecksumError, match="the rows of value 'B01'"):
        OMEArrowDataset.scan(plate).filter({"well": "B01"})
    assert _kept(OMEArrowDataset.scan(plate).filter({"well": "A02"})) == _expected(plate, {"well": "A02"})
    assert not verify(plate).ok


@pytest.mark.parametrize("how", ["truncate", "extend"])
def test_a_file_of_another_size_is_refused(plate: Path, how: str) -> None:
    file = plate / _entry(plate)["file"]
    data = file.read_bytes()
    file.write_bytes(data[:-3] if how == "truncate" else data + b"\0\0\0\0")
    with pytest.raises(ChecksumError, match="value index"):
        OMEArrowDataset.scan(plate).filter({"well": "A01"})


def _rewrite(root: Path, edit: Any) -> None:
    """Edit the index file's header and rows, then record the new digests: a lie the manifest vouches for."""
    entry = _entry(root)
    file = root / entry["file"]
    data = file.read_bytes()
    header = json.loads(data[8 : 8 + entry["header"]])
    rows = bytearray(data[8 + entry["header"] :])
    edit(header, rows)
    listed = header["columns"]["well"]
    listed["sums"] = "".join(
        hex_digest(bytes(rows[a : a + 4 * c])) for a, c in zip(listed["at"], listed["counts"], strict=True)
    )
    text = json.dumps(header, separators=(",", ":")).encode()
    file.write_bytes(b"OAVI" + len(text).to_bytes(4, "little") + text + bytes(rows))
    manifest = _manifest(root)
    manifest["ome_arrow_core"][VALUES_KEY]["images.parquet"].update(
        {"size": file.stat().st_size, "header": len(text), "head": hex_digest(text)}
    )
    (root / MANIFEST).write_text(json.dumps(manifest))


def test_rows_past_the_table_or_out_of_order_are_damage_even_when_vouched_for(plate: Path) -> None:
    def past(header: dict[str, Any], rows: bytearray) -> None:
        listed = header["columns"]["well"]
        at = listed["at"][listed["values"].index("A01")]
        rows[at : at + 4] = (10**6).to_bytes(4, "little")

    _rewrite(plate, past)
    _fresh()
    with pytest.raises(DamagedFileError, match="the rows of value 'A01' are damaged"):
        OMEArrowDataset.scan(plate).filter({"well": "A01"})


def test_a_consistent_lie_is_found_by_verify(plate: Path) -> None:
    """Rows of A01 swapped for those of A02 (ascending, in the table, digests recorded): verify compares the index
    with the table."""

    def swap(header: dict[str, Any], rows: bytearray) -> None:
        listed = header["columns"]["well"]
        a, b = listed["values"].index("A01"), listed["values"].index("A02")
        listed["at"][a], listed["at"][b] = listed["at"][b], listed["at"][a]
        listed["counts"][a], listed["counts"][b] = listed["counts"][b], listed["counts"][a]

    _rewrite(plate, swap)
    report = verify(plate)
    assert not report.ok and "are not the table's" in str(report.damage)


def test_a_stale_index_is_not_used(plate: Path, tmp_path: Path) -> None:
    """images.parquet replaced by another plate's (its digest recorded): the index describes the old table, so the
    filter reads the table (and its answer is the new table's)."""
    other = _plate(tmp_path / "other", [WELLS[(i + 1) % 5] for i in range(23)])
    manifest = _manifest(plate)
    for name in ("images.parquet", "index.parquet"):
        shutil.copy(other / name, plate / name)
    theirs = _manifest(other)["ome_arrow_core"]
    for key in ("tables", "table_groups_packed"):
        manifest["ome_arrow_core"][key] = theirs[key]
    (plate / MANIFEST).write_text(json.dumps(manifest))
    _fresh()
    assert value_rows(plate, manifest, "images.parquet", {"well": "A01"}) is None
    assert _kept(OMEArrowDataset.scan(plate).filter({"well": "A01"})) == _expected(other, {"well": "A01"})


@pytest.mark.parametrize("how", ["no-entry", "no-file"])
def test_datasets_without_an_index_filter_as_before(plate: Path, how: str) -> None:
    entry = _entry(plate)
    if how == "no-entry":  # written before the index
        manifest = _manifest(plate)
        del manifest["ome_arrow_core"][VALUES_KEY]
        (plate / MANIFEST).write_text(json.dumps(manifest))
    else:
        (plate / entry["file"]).unlink()
    _fresh()
    assert value_rows(plate, _manifest(plate), "images.parquet", {"well": "A01"}) is None
    assert _kept(OMEArrowDataset.scan(plate).filter({"well": ["A01", "C07"]})) == _expected(
        plate, {"well": ["A01", "C07"]}
    )


@pytest.mark.parametrize("entry", ["x", {"file": "../x.bin"}, {"file": "values.images.bin"}, {"file": 3, "table": "t"}])
def test_a_malformed_entry_is_a_damaged_manifest(plate: Path, entry: Any) -> None:
    manifest = _manifest(plate)
    good = manifest["ome_arrow_core"][VALUES_KEY]["images.parquet"]
    manifest["ome_arrow_core"][VALUES_KEY]["images.parquet"] = {**good, **entry} if isinstance(entry, dict) else entry
    (plate / MANIFEST).write_text(json.dumps(manifest))
    _fresh()
    with pytest.raises(DamagedFileError, match="value_index"):
        OMEArrowDataset.scan(plate).filter({"well": "A01"})


def test_appends_index_their_own_table_and_compaction_the_merged_one(plate: Path) -> None:
    before = _entry(plate)
    _plate(plate, ["A01", "Z00", None, "A01", "B02"], mode="append", first=23)
    _fresh()
    assert _entry(plate) == before  # the base table is unchanged: its index is kept
    appended = _entry(plate, "images-00001.parquet")
    assert (plate / appended["file"]).is_file()
    for spec in ({"well": "A01"}, {"well": "Z00"}, {"well": ["B02", "Z00"], "plate": "P1"}):
        assert value_rows(plate, _manifest(plate), "images-00001.parquet", spec) is not None
        assert _kept(OMEArrowDataset.scan(plate).filter(spec)) == _expected(plate, spec)
    compact_dataset(plate)
    _fresh()
    merged = _entry(plate)
    assert merged["table"] != before["table"] and set(_manifest(plate)["ome_arrow_core"][VALUES_KEY]) == {
        "images.parquet"
    }
    assert not (plate / before["file"]).exists() and not (plate / appended["file"]).exists()  # removed
    for spec in ({"well": "A01"}, {"well": "Z00"}, {"well": ["B02", "Z00"], "plate": "P1"}):
        assert value_rows(plate, _manifest(plate), "images.parquet", spec) is not None
        assert _kept(OMEArrowDataset.scan(plate).filter(spec)) == _expected(plate, spec)
    assert verify(plate).ok
