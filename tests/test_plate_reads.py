"""Plates of many small images: the images table's statistics, packed row groups kept decoded, the file version
stamp, and an aligned index group's image owners."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_core.errors import ChecksumError, DamagedFileError, OMEArrowError, StorageError
from ome_arrow_core.typed_chunk.file_version import file_version, member_version
from ome_arrow_core.typed_chunk.group_rows import image_owners
from ome_arrow_core.typed_chunk.group_sums import GROUPS_KEY, record_groups
from ome_arrow_core.typed_chunk.opening import clear_cache, open_dataset
from ome_arrow_core.typed_chunk.packed_groups import PackedGroups
from ome_arrow_core.typed_chunk.spec import MANIFEST
from ome_arrow_core.typed_chunk.table_sums import TABLES_KEY, record
from ome_arrow_core.typed_chunk.tables import UNFILTERED

#: Datasets written without pixel locators (as before them): reads here go through the index (see conftest).
pytestmark = pytest.mark.usefixtures("written_without_locators")


WELLS = ["A01", "A02", "B01"]


def _image(i: int) -> np.ndarray:
    """Image ``i``: 1 x 6 x 5 uint16 (CYX), different for every i."""
    return ((np.arange(30) + 7 * i) % 4096).astype(np.uint16).reshape(1, 6, 5)


def _plate(tmp: Path, n: int = 40, per_group: int = 16) -> Path:
    meta = ({"well": WELLS[i % 3], "site": i} for i in range(n))
    images = (_image(i) for i in range(n))
    out = write_dataset(
        images, tmp / "plate", metadata=meta, dim_order="CYX", images_per_group=per_group, progress=False
    )
    return Path(out)


# -- statistics of the images table -----------------------------------------------------------------
def test_images_statistics_only_where_filters_and_readers_use_them(tmp_path: Path) -> None:
    out = _plate(tmp_path)
    md = pq.read_metadata(out / "images.parquet")
    names = md.schema.to_arrow_schema().names
    for g in range(md.num_row_groups):
        group = md.row_group(g)
        with_stats = {n for k, n in enumerate(names) if group.column(k).is_stats_set}
        assert {"image_id", "dtype", "well", "site", *(f"size_{a}" for a in "tczyx")} <= with_stats
        assert not with_stats & UNFILTERED
        assert {"channels_json", "ome_xml"} <= set(names) - with_stats


def test_filters_still_prune_row_groups_and_uniform_plates_are_told_from_the_footer(tmp_path: Path) -> None:
    out = _plate(tmp_path)  # 40 images, 16 a row group: 3 groups
    ds = OMEArrowDataset.scan(out, filter=pa.compute.field("site") >= 35)
    assert ds.row_groups_scanned == (1, 3) and ds.table.column("site").to_pylist() == [35, 36, 37, 38, 39]
    whole = OMEArrowDataset.scan(out)
    assert whole._uniform_parts() == {0}  # sizes and dtype statistics kept: one selection serves every image
    got = whole.read([39, 0, 17], layout="CYX")
    np.testing.assert_array_equal(got, np.stack([_image(39), _image(0), _image(17)]))


def _rewrite_with_statistics_everywhere(out: Path) -> None:
    """images.parquet as tables written before this change have it (statistics on every column), the manifest's
    digests made anew for it (as the writer records them)."""
    table = pq.read_table(out / "images.parquet")
    meta = pq.read_metadata(out / "images.parquet")
    sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
    tmp = out / "images.parquet.new"
    with pq.ParquetWriter(tmp, table.schema, write_page_checksum=True) as writer:
        at = 0
        for n in sizes:
            writer.write_table(table.slice(at, n), row_group_size=n)
            at += n
    os.replace(tmp, out / "images.parquet")
    manifest = json.loads((out / MANIFEST).read_text())
    ours = manifest["ome_arrow_core"]
    ours[TABLES_KEY] = record(out, ["images.parquet", "index.parquet"])
    ours[GROUPS_KEY] = record_groups(out, ours[TABLES_KEY])
    (out / MANIFEST).write_text(json.dumps(manifest))


def test_tables_with_statistics_on_every_column_read_as_before(tmp_path: Path) -> None:
    out = _plate(tmp_path)
    _rewrite_with_statistics_everywhere(out)
    md = pq.read_metadata(out / "images.parquet")
    assert md.row_group(0).column(md.schema.to_arrow_schema().names.index("channels_json")).is_stats_set
    clear_cache()
    ds = OMEArrowDataset.scan(out)
    np.testing.assert_array_equal(ds[33].to_numpy(layout="CYX"), _image(33))
    assert OMEArrowDataset.scan(out, filter={"well": "A02"}).table.column("site").to_pylist() == list(range(1, 40, 3))


# -- packed row groups kept decoded ---------------------------------------------------------------------
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(list(range(40))), kept=st.sampled_from([0, 4000, 1 << 20]))
def test_images_of_packed_groups_read_right_in_any_order_whatever_is_kept(
    tmp_path_factory: pytest.TempPathFactory, order: list[int], kept: int
) -> None:
    out = _plate(tmp_path_factory.mktemp("p"))
    ds = OMEArrowDataset.scan(out)
    opened = open_dataset(out)
    opened.packed.kept_bytes = kept  # none, about one group, all of them
    for i in [*order, *order[::-1]]:
        np.testing.assert_array_equal(ds[i].to_numpy(layout="CYX"), _image(i))
    assert opened.packed.nbytes <= kept
    batch = order[:9]
    np.testing.assert_array_equal(ds.read(batch, layout="CYX"), np.stack([_image(i) for i in batch]))


def test_a_kept_group_does_not_hide_a_file_changed_since(tmp_path: Path) -> None:
    out = _plate(tmp_path)
    ds = OMEArrowDataset.scan(out)
    np.testing.assert_array_equal(ds[1].to_numpy(layout="CYX"), _image(1))
    assert open_dataset(out).packed.nbytes > 0  # image 2's group is kept, decoded
    raw = bytearray((out / "chunks.parquet").read_bytes())
    at = raw.find(_image(2).tobytes())
    assert at > 0
    raw[at + 3] ^= 0xFF  # one pixel byte of image 2, in place (same size)
    with open(out / "chunks.parquet", "r+b") as fh:
        fh.write(raw)
    with pytest.raises(ChecksumError):
        ds[2].to_numpy()


def test_a_damaged_packed_group_is_refused_every_time(tmp_path: Path) -> None:
    out = _plate(tmp_path)
    raw = bytearray((out / "chunks.parquet").read_bytes())
    at = raw.find(_image(20).tobytes())
    raw[at] ^= 0x01
    (out / "chunks.parquet").write_bytes(raw)
    ds = OMEArrowDataset.scan(out)
    np.testing.assert_array_equal(ds[21].to_numpy(layout="CYX"), _image(21))  # its neighbours still read
    for _ in range(2):  # kept or not, the damaged chunk is checked on every read
        with pytest.raises(ChecksumError):
            ds[20].to_numpy()
        with pytest.raises(OMEArrowError):
            ds.read([21, 20])


def test_packed_groups_keep_at_most_their_bytes_least_recent_out() -> None:
    kept = PackedGroups(kept_bytes=3000, group_bytes=1500)
    arrays = {g: pa.array([bytes([g]) * 990], pa.large_binary()) for g in range(4)}  # ~1006 buffer bytes each
    for g in range(3):
        kept.put(0, g, arrays[g])
    assert kept.nbytes <= 3000 and kept.get(0, 0) is None  # three did not fit: the oldest went
    assert kept.get(0, 1) is not None  # now the most recent
    kept.put(0, 3, arrays[3])
    assert kept.get(0, 2) is None and kept.get(0, 1) is not None and kept.get(0, 3) is not None
    kept.put(1, 0, pa.array([b"x" * 2000], pa.large_binary()))  # larger than a group may be: not kept
    assert kept.get(1, 0) is None
    kept.clear()
    assert kept.nbytes == 0 and kept.get(0, 1) is None


def test_packed_groups_read_only_what_is_missing_and_keep_compact_copies() -> None:
    kept = PackedGroups()
    rows = np.array([2, 3, 1])
    values = {0: [b"a", b"b"], 1: [b"c", b"d", b"e"], 2: [b"f"]}
    asked: list[list[int]] = []

    def read(groups: np.ndarray) -> pa.ChunkedArray:
        asked.append(groups.tolist())
        return pa.chunked_array([pa.array([v for g in groups.tolist() for v in values[g]], pa.large_binary())])

    got = kept.read(0, np.array([0, 2]), rows, read)
    assert got.to_pylist() == [b"a", b"b", b"f"] and asked == [[0, 2]]
    kept_0 = kept.get(0, 0)
    assert kept_0 is not None and kept_0.offset == 0 and kept_0.to_pylist() == [b"a", b"b"]
    got = kept.read(0, np.array([0, 1, 2]), rows, read)
    assert got.to_pylist() == [b"a", b"b", b"c", b"d", b"e", b"f"] and asked == [[0, 2], [1]]


# -- file versions -----------------------------------------------------------------------------------
def test_member_version_names_missing_refuses_fifos_and_changes_with_the_file(tmp_path: Path) -> None:
    assert member_version(tmp_path, "absent.parquet") is None
    os.mkfifo(tmp_path / "pipe.parquet")
    with pytest.raises(StorageError, match="not a regular file"):
        member_version(tmp_path, "pipe.parquet")
    file = tmp_path / "t.parquet"
    file.write_bytes(b"abcd")
    before = member_version(tmp_path, "t.parquet")
    assert before == file_version(file) and before is not None and before[3] == 4
    st = os.stat(file)
    with open(file, "r+b") as fh:
        fh.write(b"x")  # same size; mtime put back: the ctime still tells
    os.utime(file, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert member_version(tmp_path, "t.parquet") != before


# -- owners of an aligned index group's rows ---------------------------------------------------------------
def test_image_owners_match_ids_whatever_the_dictionary_order() -> None:
    images = pa.array(["i0", "i1", "i2"])
    as_written = pa.array(["i0", "i0", "i1", "i2"]).dictionary_encode()
    assert image_owners(as_written, images, "here").tolist() == [0, 0, 1, 2]
    shuffled = pa.DictionaryArray.from_arrays(pa.array([0, 1, 1, 2], pa.int32()), pa.array(["i2", "x", "i0"]))
    assert image_owners(shuffled, images, "here").tolist() == [2, -1, -1, 0]  # "x" is no image of the group
    with pytest.raises(DamagedFileError, match="'i1' appears more than once"):
        image_owners(as_written, pa.array(["i0", "i1", "i1"]), "here")


def test_repeated_string_ids_are_named() -> None:
    from ome_arrow_core.typed_chunk.checks import check_unique

    with pytest.raises(DamagedFileError, match="image_id 'b' appears more than once"):
        check_unique(np.asarray(["a", "b", "b"], dtype=object), "here", "image_id")
