"""Packed chunks files read through one-group footers (manifest ``chunk_footers``): the same rows as the whole
footer's read, never a whole chunks footer parsed, and lies, damage, older manifests, appends and compaction read
right or are refused (how the manifest records them: test_chunk_footer_records.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import writes_support as ws
from damage import flip_byte
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from table_digests import without_table_digests

from ome_arrow_core import OMEArrowDataset, compact_dataset, write_dataset
from ome_arrow_core.errors import ChecksumError, DamagedFileError
from ome_arrow_core.typed_chunk import fragments, group_sums
from ome_arrow_core.typed_chunk.chunk_footers import (
    CHUNK_FOOTERS_KEY,
    PACKED_FOOTERS_KEY,
    SplicedFragment,
    footer_records,
    spliced_fragment,
)
from ome_arrow_core.typed_chunk.fragments import ParquetFragment
from ome_arrow_core.typed_chunk.opening import clear_cache, open_dataset
from ome_arrow_core.typed_chunk.packed_ints import pack_ints, unpack_ints

#: Datasets written without pixel locators (as before them): reads here go through the index (see conftest).
pytestmark = pytest.mark.usefixtures("written_without_locators")


MANIFEST = "_ome_arrow_dataset.json"
N = 23


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("chunk-footers") / "plate"
    ws.write_packed(target, ws.plate(1, N))  # three images to a chunks row group: 8 groups
    return target


_LISTS = ("group_rows", "group_bytes", "footer_spans")


@pytest.fixture(params=["packed", "lists"])
def plate(base: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """The plate as written now (records packed), or as written before (records as JSON lists)."""
    out = tmp_path / "plate"
    shutil.copytree(base, out)
    if request.param == "lists":
        manifest = _manifest(out)
        ours = manifest["ome_arrow_core"]
        ours[CHUNK_FOOTERS_KEY] = {n: _as_lists(e) for n, e in ours.pop(PACKED_FOOTERS_KEY).items()}
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return out


def _manifest(root: Path) -> dict[str, Any]:
    out: dict[str, Any] = json.loads((root / MANIFEST).read_text())
    return out


def _as_lists(entry: dict[str, Any]) -> dict[str, Any]:
    """A packed record as the older key records it (its integers as JSON lists)."""
    if "ints" not in entry:
        return dict(entry)
    g = entry["groups"]
    ints = unpack_ints(entry["ints"], 3 * g + 4).tolist()
    lists = {"group_rows": ints[:g], "group_bytes": ints[g : 2 * g], "footer_spans": ints[2 * g :]}
    return {**{k: v for k, v in entry.items() if k not in ("groups", "ints")}, **lists}


def _entry(root: Path) -> dict[str, Any]:
    """The plate's record of chunks.parquet, its integers as lists (whichever key holds it)."""
    return _as_lists(footer_records(_manifest(root)["ome_arrow_core"])["chunks.parquet"])


def _edit(root: Path, edit: Any) -> None:
    """Apply ``edit`` to the record as lists, and write it back in the form the plate has (packed: a list made
    something else, or dropped, is packed as its own text, so it does not fit)."""
    manifest = _manifest(root)
    ours = manifest["ome_arrow_core"]
    key = PACKED_FOOTERS_KEY if PACKED_FOOTERS_KEY in ours else CHUNK_FOOTERS_KEY
    entry = _as_lists(ours[key]["chunks.parquet"])
    groups = len(entry["group_rows"])
    edit(entry)
    if key == PACKED_FOOTERS_KEY:
        fields = [entry.pop(k, []) for k in _LISTS]
        ok = all(isinstance(f, list) and all(isinstance(v, int) for v in f) for f in fields)
        entry["groups"] = groups
        entry["ints"] = pack_ints([v for f in fields for v in f]) if ok else str(fields)
    ours[key]["chunks.parquet"] = entry
    (root / MANIFEST).write_text(json.dumps(manifest))


def _fresh() -> None:
    clear_cache()
    group_sums._passed.clear()


@pytest.fixture
def whole_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the chunks files opened with their whole footer parsed (a ParquetFragment made)."""
    seen: list[str] = []
    real = fragments.ParquetFragment.__init__

    def spy(self: ParquetFragment, file: Path) -> None:
        seen.append(file.name)
        real(self, file)

    monkeypatch.setattr(fragments.ParquetFragment, "__init__", spy)
    return seen


def _group_of(root: Path) -> list[int]:
    """The chunks row group of each image (one chunk each)."""
    index = pq.read_table(root / "index.parquet", columns=["image_id", "row_group_id"]).to_pydict()
    where = dict(zip(index["image_id"], index["row_group_id"]))
    return [int(where[i]) for i in pq.read_table(root / "images.parquet", columns=["image_id"])["image_id"].to_pylist()]


def _refused(root: Path) -> set[int]:
    """The chunks row groups of the images that are refused (DamagedFileError); the others must read right."""
    ds = OMEArrowDataset.scan(root)
    want, group = ws.plate(1, N), _group_of(root)
    refused = set()
    for i in range(N):
        try:
            np.testing.assert_array_equal(ds[i].to_numpy().reshape(8, 8), want[i])
        except DamagedFileError:
            refused.add(group[i])
    return refused


def _check_all(root: Path, want: list[np.ndarray], verify: bool = True) -> None:
    ds = OMEArrowDataset.scan(root, verify=verify)
    assert len(ds) == len(want)
    for i in np.random.default_rng(len(want)).permutation(len(want)).tolist():
        np.testing.assert_array_equal(ds[i].to_numpy().reshape(8, 8), want[i])
    picks = [len(want) - 1, 0, len(want) // 2]
    np.testing.assert_array_equal(ds.read(picks).reshape(-1, 8, 8), np.stack([want[i] for i in picks]))


def test_a_packed_write_records_its_chunks_footer(plate: Path) -> None:
    entry = _entry(plate)
    md = pq.read_metadata(plate / "chunks.parquet")
    assert entry["group_rows"] == [md.row_group(g).num_rows for g in range(md.num_row_groups)]
    assert entry["rows"] == md.num_rows == N and entry["size"] == (plate / "chunks.parquet").stat().st_size
    at = md.schema.to_arrow_schema().get_field_index("pixel_bytes")
    assert entry["group_bytes"] == [
        md.row_group(g).column(at).total_uncompressed_size for g in range(md.num_row_groups)
    ]
    assert len(entry["footer_spans"]) == 4 + md.num_row_groups


def test_big_images_read_by_page_ranges_get_no_record(tmp_path: Path) -> None:
    root = write_dataset(ws.images(3, 2, (2, 300, 300)), tmp_path / "big", dim_order="CYX", progress=False)
    assert footer_records(_manifest(root)["ome_arrow_core"]) == {}


def test_images_are_read_without_parsing_the_chunks_footer_whole(plate: Path, whole_parses: list[str]) -> None:
    _fresh()
    _check_all(plate, ws.plate(1, N))
    assert whole_parses == []
    opened = open_dataset(plate)
    assert [type(f) for f in opened.files.values()] == [SplicedFragment]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(groups=st.lists(st.integers(0, 7), min_size=1, max_size=8, unique=True), audit=st.booleans())
def test_spliced_reads_equal_whole_footer_reads(base: Path, groups: list[int], audit: bool) -> None:
    _fresh()
    spliced = spliced_fragment(base, _manifest(base), "chunks.parquet", True)
    assert spliced is not None
    at = np.asarray(sorted(groups), dtype=np.int64)
    whole = ParquetFragment(base / "chunks.parquet")
    assert spliced.read(at, audit=audit).equals(whole.read(at, audit=audit))
    np.testing.assert_array_equal(spliced.group_rows, whole.group_rows)
    assert whole.group_bytes is not None
    np.testing.assert_array_equal(spliced.group_bytes, whole.group_bytes)


@pytest.mark.parametrize("how", ["old-manifest", "unchecked", "rows-disagree"])
def test_older_manifests_unchecked_reads_and_disagreeing_rows_parse_the_footer_as_before(
    plate: Path, whole_parses: list[str], how: str
) -> None:
    if how == "old-manifest":
        manifest = _manifest(plate)
        for key in (CHUNK_FOOTERS_KEY, PACKED_FOOTERS_KEY):
            manifest["ome_arrow_core"].pop(key, None)
        (plate / MANIFEST).write_text(json.dumps(manifest))
    elif how == "rows-disagree":
        _edit(plate, lambda e: e.update(rows=e["rows"] + 1))
    _fresh()
    _check_all(plate, ws.plate(1, N), verify=how != "unchecked")
    assert whole_parses == ["chunks.parquet"]


@pytest.mark.parametrize("field", ["group_rows", "group_bytes"])
def test_a_lie_in_a_row_groups_record_is_refused(plate: Path, field: str) -> None:
    def lie(entry: dict[str, Any]) -> None:  # the totals still agree
        entry[field][2] -= 1
        entry[field][3] += 1

    _edit(plate, lie)
    _fresh()
    refused = _refused(plate)
    assert refused and refused <= {2, 3}


@pytest.mark.parametrize("shift", [-2, -1, 1, 3])
def test_a_lie_in_where_a_row_group_is_listed_is_refused_or_reads_right(plate: Path, shift: int) -> None:
    _edit(plate, lambda e: e["footer_spans"].__setitem__(4 + 2, e["footer_spans"][4 + 2] + shift))
    _fresh()
    refused = _refused(plate)
    assert refused and refused <= {1, 2}


@pytest.mark.parametrize(
    "edit",
    [
        lambda e: e["footer_spans"].pop(),  # one row group fewer
        lambda e: e["group_bytes"].pop(),
        lambda e: e.update(footer="not hex at all!"),
        lambda e: e.update(footer_spans="everywhere"),
        lambda e: e.pop("group_bytes"),
        lambda e: e.update(footer_spans=[e["footer_spans"][0] + 1, *e["footer_spans"][1:]]),  # not at the end
    ],
)
def test_records_that_do_not_fit_the_file_are_a_damaged_manifest(plate: Path, edit: Any) -> None:
    _edit(plate, edit)
    _fresh()
    with pytest.raises(DamagedFileError, match="manifest is damaged"):
        OMEArrowDataset.scan(plate)[0].to_numpy()


def test_a_flipped_footer_byte_is_refused_before_the_footer_is_parsed(plate: Path) -> None:
    entry = _entry(plate)
    at = entry["footer_spans"][0] + entry["footer_spans"][4 + 1] + 3  # inside row group 1's entry
    flip_byte(plate / "chunks.parquet", at, 0x10)
    _fresh()
    with pytest.raises(ChecksumError, match="chunks.parquet"):
        OMEArrowDataset.scan(plate)[0].to_numpy()


def _lie_in_index(root: Path) -> None:
    """Make the index list its last row group's chunks 20 times over (still aligned; its checksums dropped)."""
    file = root / "index.parquet"
    md = pq.read_metadata(file)
    table = pq.read_table(file)
    counts = [md.row_group(g).num_rows for g in range(md.num_row_groups)]
    with pq.ParquetWriter(file, table.schema) as writer:
        for g, n in enumerate(counts):
            group = table.slice(sum(counts[:g]), n)
            group = pa.concat_tables([group] * 20) if g == len(counts) - 1 else group
            writer.write_table(group, row_group_size=group.num_rows)
    without_table_digests(root)


@pytest.mark.parametrize("recorded", ["its rows", "more rows"])
def test_an_index_listing_more_chunks_than_the_file_holds_is_refused_before_any_pixel(
    plate: Path, recorded: str
) -> None:
    """The open bounds the index by the rows the chunks file's record gives (the file opens on first use): a lying
    index is refused there, or, past a record that lies too, by the first read through the file, once its footer
    says how many rows it holds."""
    _lie_in_index(plate)
    if recorded == "more rows":
        _edit(plate, lambda e: e.update(rows=e["rows"] * 100))
    _fresh()
    ds = OMEArrowDataset.scan(plate)
    for i in range(4):  # the images of the index's first row group, which is intact
        with pytest.raises(DamagedFileError, match=rf"the index lists {N + 19 * (N % 4)} chunks, .* hold {N} rows"):
            ds[i].to_numpy()


def test_a_truncated_chunks_file_is_opened_as_before_and_refused(plate: Path, whole_parses: list[str]) -> None:
    file = plate / "chunks.parquet"
    file.write_bytes(file.read_bytes()[:-40])
    _fresh()
    with pytest.raises(DamagedFileError):
        OMEArrowDataset.scan(plate)[0].to_numpy()
    assert whole_parses == ["chunks.parquet"]


def test_appends_and_compaction_record_each_chunks_file(plate: Path, whole_parses: list[str]) -> None:
    before = _entry(plate)
    ws.write_packed(plate, ws.plate(2, 5), mode="append")
    listed = _manifest(plate)["ome_arrow_core"]
    assert CHUNK_FOOTERS_KEY not in listed  # the records are rewritten packed
    assert _as_lists(listed[PACKED_FOOTERS_KEY]["chunks.parquet"]) == before  # unchanged: kept
    assert set(listed[PACKED_FOOTERS_KEY]) == set(listed["fragments"])
    want = ws.plate(1, N) + ws.plate(2, 5)
    _fresh()
    _check_all(plate, want)
    compact_dataset(plate)
    listed = _manifest(plate)["ome_arrow_core"]
    assert list(listed[PACKED_FOOTERS_KEY]) == ["chunks.parquet"] == listed["fragments"]
    assert _entry(plate) != before and _entry(plate)["size"] == (plate / "chunks.parquet").stat().st_size
    _fresh()
    _check_all(plate, want)
    assert whole_parses == []


def test_a_compaction_swap_left_half_done_still_reads(plate: Path) -> None:
    """The old manifest beside the merged chunks file (a kill between the swaps): its record no longer fits the
    file's size, so the footer is parsed whole, as before, and every image reads."""
    ws.write_packed(plate, ws.plate(2, 5), mode="append")
    saved = plate.parent / "saved"
    shutil.copytree(plate, saved)
    compact_dataset(plate)
    merged = (plate / "chunks.parquet").read_bytes()
    shutil.rmtree(plate)
    shutil.copytree(saved, plate)
    (plate / "chunks.parquet").write_bytes(merged)  # the merged file leads with the old one's row groups
    assert len(merged) != _entry(plate)["size"]
    _fresh()
    _check_all(plate, ws.plate(1, N) + ws.plate(2, 5))


def test_verify_reports_what_a_checked_read_refuses(plate: Path) -> None:
    from ome_arrow_core.verification import verify

    assert verify(plate).ok
    entry = _entry(plate)
    flip_byte(plate / "chunks.parquet", entry["footer_spans"][0] + entry["footer_spans"][4 + 1] + 3, 0x10)
    report = verify(plate)
    assert not report.ok
    assert any("chunks.parquet" in line and "ChecksumError" in line for line in report.lines())


def test_verify_reports_a_record_that_does_not_fit_its_file(plate: Path) -> None:
    from ome_arrow_core.verification import verify

    _edit(plate, lambda e: e.update(footer="not hex"))
    report = verify(plate)
    assert not report.ok
    assert any(CHUNK_FOOTERS_KEY in line for line in report.lines())
