"""Damaged and lying typed-chunk datasets: every case raises DamagedFileError naming the file, never pixels.

Each dataset is written by our writer, then one of its Parquet tables (or its manifest) is
edited with pyarrow as a damaged disk, a buggy tool or a hostile sender would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from table_digests import without_table_digests

from ome_arrow_core import OMEArrowDataset, compact_dataset, write_dataset
from ome_arrow_core.boundary import is_within
from ome_arrow_core.errors import DamagedFileError
from ome_arrow_core.typed_chunk.audit import audit_chunk_files

MANIFEST = "_ome_arrow_dataset.json"
SHAPE = (2, 40, 48)  # CYX: 3 x 3 tiles of 16 x 16 per channel, 18 chunks per image


def _images(n: int = 3, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(1, 60000, SHAPE, dtype=np.uint16) for _ in range(n)]


def _write(root: Path, n: int = 3, seed: int = 0, **kw: Any) -> tuple[Path, list[np.ndarray]]:
    arrs = _images(n, seed)
    return write_dataset(arrs, root, chunk_shape=(16, 16), dim_order="CYX", **kw), arrs


def _edit(file: Path, change: Callable[[dict[str, list[Any]]], None]) -> None:
    """Rewrite Parquet ``file`` after ``change`` edits its columns (a dict of Python lists) in place."""
    table = pq.read_table(file)
    cols = {n: table.column(n).to_pylist() for n in table.column_names}
    change(cols)
    pq.write_table(pa.table(cols, schema=table.schema), file)
    without_table_digests(file.parent)  # a lie the table checksums would refuse first


def _read_all(root: Path) -> None:
    """Every way of reading pixels: per image and batched."""
    ds = OMEArrowDataset.scan(root)
    for i in range(len(ds)):
        ds[i].to_numpy()
    ds.read()


def _refused(root: Path, *names: str) -> str:
    """Assert that reading ``root`` raises DamagedFileError naming it (and ``names``), by each read path."""
    messages = []
    for read in (
        lambda: [OMEArrowDataset.scan(root)[i].to_numpy() for i in range(3)],
        lambda: OMEArrowDataset.scan(root).read(),
    ):
        with pytest.raises(DamagedFileError) as err:
            read()
        message = str(err.value)
        assert str(root) in message
        for name in names:
            assert name in message
        messages.append(message)
    return messages[0]


def _index_rows_of(cols: dict[str, list[Any]], image_id: str) -> list[int]:
    return [i for i, v in enumerate(cols["image_id"]) if v == image_id]


# -- the index against the image: exact coverage ----------------------------------------------------
def test_an_intact_dataset_reads_back_exactly(tmp_path: Path) -> None:
    root, arrs = _write(tmp_path / "d")
    ds = OMEArrowDataset.scan(root)
    np.testing.assert_array_equal(ds.read(layout="CYX"), np.stack(arrs))
    np.testing.assert_array_equal(ds[1].tensor_view(layout="CYX").to_numpy(), arrs[1])


def test_a_chunk_listed_twice_is_refused(tmp_path: Path) -> None:
    root, _ = _write(tmp_path / "d")

    def twice(cols: dict[str, list[Any]]) -> None:
        for values in cols.values():
            values.append(values[3])

    _edit(root / "index.parquet", twice)
    message = _refused(root, "index.parquet")  # the count or coverage check (whole) or the group's ids (aligned)
    assert "cover" in message or "the index lists 55 chunks" in message or "chunk_id 3 appears more than" in message


def test_a_missing_chunk_is_refused(tmp_path: Path) -> None:
    root, _ = _write(tmp_path / "d")

    def drop(cols: dict[str, list[Any]]) -> None:
        for values in cols.values():
            del values[5]

    _edit(root / "index.parquet", drop)
    _refused(root, "index.parquet")


def test_a_chunk_moved_onto_another_is_refused(tmp_path: Path) -> None:
    """Same pixel count: one chunk takes another's place, so two overlap and a hole opens."""
    root, _ = _write(tmp_path / "d")

    def overlap(cols: dict[str, list[Any]]) -> None:
        for a in "tczyx":
            cols[a][1] = cols[a][0]

    _edit(root / "index.parquet", overlap)
    assert "no chunk row holds the pixel" in _refused(root, "index.parquet", "image-00000")


def test_shifted_coordinates_are_refused(tmp_path: Path) -> None:
    root, _ = _write(tmp_path / "d")

    def shift(cols: dict[str, list[Any]]) -> None:
        cols["x"][4] += 1

    _edit(root / "index.parquet", shift)
    _refused(root, "index.parquet")


def test_a_chunk_outside_the_image_is_refused(tmp_path: Path) -> None:
    root, _ = _write(tmp_path / "d")

    def outside(cols: dict[str, list[Any]]) -> None:
        cols["y"][2] = 1000

    _edit(root / "index.parquet", outside)
    assert "lies outside the image" in _refused(root, "index.parquet")


@pytest.mark.parametrize("column,value", [("shape_x", 0), ("shape_y", -16), ("x", -16)])
def test_zero_or_negative_extents_and_origins_are_refused(tmp_path: Path, column: str, value: int) -> None:
    root, _ = _write(tmp_path / "d")

    def lie(cols: dict[str, list[Any]]) -> None:
        cols[column][0] = value

    _edit(root / "index.parquet", lie)
    _refused(root, "index.parquet")


def test_a_gap_never_exposes_pixels_of_an_earlier_read(tmp_path: Path) -> None:
    """Stale memory: read one dataset, then a damaged one whose hole would show the earlier buffer."""
    bright = [np.full(SHAPE, 0xBEEF, dtype=np.uint16) for _ in range(3)]
    first = write_dataset(bright, tmp_path / "first", chunk_shape=(16, 16), dim_order="CYX")
    damaged, _ = _write(tmp_path / "damaged")

    def hole(cols: dict[str, list[Any]]) -> None:  # a chunk moved onto its neighbour: count intact, a hole
        for a in "tczyx":
            cols[a][7] = cols[a][8]

    _edit(damaged / "index.parquet", hole)
    for _ in range(3):  # the allocator hands the freed buffers of the first read to the next one
        assert (OMEArrowDataset.scan(first).read() == 0xBEEF).all()
        with pytest.raises(DamagedFileError):
            OMEArrowDataset.scan(damaged).read()
        with pytest.raises(DamagedFileError):
            OMEArrowDataset.scan(damaged)[0].to_numpy()


# -- the index against the chunk files --------------------------------------------------------------
@pytest.mark.parametrize("columns", [("chunk_id",), ("row_group_id", "row_index_in_group")])
def test_swapped_chunk_ids_are_refused(tmp_path: Path, columns: tuple[str, ...]) -> None:
    """The rows read must be the chunks the index names (chunk_id is read with the pixels)."""
    root, _ = _write(tmp_path / "d")

    def swap(cols: dict[str, list[Any]]) -> None:
        for key in columns:
            cols[key][0], cols[key][1] = cols[key][1], cols[key][0]

    _edit(root / "index.parquet", swap)
    message = _refused(root, "chunks.parquet", "index.parquet")
    assert ("says chunk 1 is row 0 of row group 0" in message and "that row holds chunk 0" in message) or (
        "row groups are stored in order" in message
    )  # read by page ranges: their order in the file tells


def test_a_chunk_of_another_image_is_refused(tmp_path: Path) -> None:
    root, _ = _write(tmp_path / "d")

    def steal(cols: dict[str, list[Any]]) -> None:  # image 1's first chunk row points at image 0's
        j = _index_rows_of(cols, "image-00001")[0]
        cols["row_group_id"][j] = cols["row_group_id"][0]

    _edit(root / "index.parquet", steal)
    _refused(root, "chunks.parquet")


def test_a_row_index_beyond_its_row_group_is_refused(tmp_path: Path) -> None:
    root, _ = _write(tmp_path / "d")

    def beyond(cols: dict[str, list[Any]]) -> None:
        cols["row_index_in_group"][3] = 5  # row groups hold one chunk each

    _edit(root / "index.parquet", beyond)
    assert "which has 1 rows" in _refused(root, "chunks.parquet")


def test_a_repeated_chunk_id_is_refused(tmp_path: Path) -> None:
    root, _ = _write(tmp_path / "d")

    def repeat(cols: dict[str, list[Any]]) -> None:
        cols["chunk_id"][20] = cols["chunk_id"][0]

    _edit(root / "index.parquet", repeat)
    assert "chunk_id 0 appears more than once" in _refused(root)


def test_a_dtype_lie_in_the_images_table_is_refused(tmp_path: Path) -> None:
    """int16 and uint16 have the same size: only the chunks' own dtype tells the lie."""
    root, _ = _write(tmp_path / "d")

    def lie(cols: dict[str, list[Any]]) -> None:
        cols["dtype"] = ["int16"] * len(cols["dtype"])

    _edit(root / "images.parquet", lie)
    message = _refused(root, "chunks.parquet")
    assert "holds uint16 pixels" in message and "int16" in message


def test_a_size_lie_in_the_images_table_is_refused(tmp_path: Path) -> None:
    root, _ = _write(tmp_path / "d")

    def lie(cols: dict[str, list[Any]]) -> None:
        cols["size_x"] = [60] * len(cols["size_x"])

    _edit(root / "images.parquet", lie)
    _refused(root)


def test_repeated_image_ids_are_refused(tmp_path: Path) -> None:
    root, _ = _write(tmp_path / "d")

    def repeat(cols: dict[str, list[Any]]) -> None:
        cols["image_id"][2] = cols["image_id"][1]

    _edit(root / "images.parquet", repeat)
    with pytest.raises(DamagedFileError, match=r"image_id 'image-00001' appears more than once") as err:
        OMEArrowDataset.scan(root)[0].to_numpy()
    assert str(root) in str(err.value)


# -- paths read from files --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../other/chunks.parquet", "ABSOLUTE", "sub/chunks.parquet", "..", ""])
def test_fragment_paths_must_stay_inside_the_dataset(tmp_path: Path, name: str) -> None:
    """A crafted index would otherwise serve another dataset's pixels."""
    other, _ = _write(tmp_path / "other", seed=1)
    root, _ = _write(tmp_path / "d")
    target = str(other / "chunks.parquet") if name == "ABSOLUTE" else name
    (root / "sub").mkdir()
    shutil.copy(other / "chunks.parquet", root / "sub" / "chunks.parquet")

    def point(cols: dict[str, list[Any]]) -> None:
        cols["fragment_path"] = [target] * len(cols["fragment_path"])

    _edit(root / "index.parquet", point)
    if name == "":  # an empty name is the default chunks.parquet (ome-arrow 0.1.0 leaves it null)
        OMEArrowDataset.scan(root).read()
        return
    assert "not a plain file name inside" in _refused(root, repr(target))


@pytest.mark.parametrize("key", ["images", "index"])
def test_manifest_append_tables_must_stay_inside_the_dataset(tmp_path: Path, key: str) -> None:
    other, _ = _write(tmp_path / "other", seed=1)
    write_dataset(_images(1, 2), other, mode="append", chunk_shape=(16, 16), dim_order="CYX")
    root, _ = _write(tmp_path / "d")
    write_dataset(_images(1, 3), root, mode="append", chunk_shape=(16, 16), dim_order="CYX")
    manifest = json.loads((root / MANIFEST).read_text())
    entry = manifest["ome_arrow_core"]["appends"][0]
    entry[key] = f"../other/{entry[key]}"
    (root / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DamagedFileError, match="not a plain file name inside") as err:
        OMEArrowDataset.scan(root)
    assert MANIFEST in str(err.value) and "../other/" in str(err.value)


@pytest.mark.parametrize("where", ["outside", "inside", "dangling"])
def test_a_member_that_is_a_symlink_counts_where_it_points(tmp_path: Path, where: str) -> None:
    """A chunks file that is a symbolic link is the file it points at: another dataset's is refused, one inside the
    dataset (and a link to nothing, which names no file) is a member like any other."""
    other, _ = _write(tmp_path / "other", seed=1)
    root, _ = _write(tmp_path / "d")
    target = {"outside": other / "chunks.parquet", "inside": root / "kept.parquet", "dangling": root / "nowhere"}[where]
    if where == "inside":
        shutil.copy(root / "chunks.parquet", target)
    (root / "chunks.parquet").unlink()
    os.symlink(target, root / "chunks.parquet")
    assert is_within(root, "chunks.parquet") is (where != "outside")
    assert is_within(root, "kept.parquet") and is_within(root, "no-such-file")  # plain names, present or not
    if where == "outside":
        with pytest.raises(DamagedFileError, match="'chunks.parquet', which is not a plain file name inside"):
            OMEArrowDataset.scan(root)[0].to_numpy()
    elif where == "inside":
        OMEArrowDataset.scan(root)[0].to_numpy()


def test_manifest_fragments_must_stay_inside_the_dataset(tmp_path: Path) -> None:
    root, _ = _write(tmp_path / "d")
    manifest = json.loads((root / MANIFEST).read_text())
    manifest["ome_arrow_core"]["fragments"] = ["/etc/passwd"]
    (root / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DamagedFileError, match="'/etc/passwd', which is not a plain file name"):
        OMEArrowDataset.scan(root)[0].to_numpy()


# -- the manifest against the files present ---------------------------------------------------------
def _appended(tmp_path: Path) -> tuple[Path, list[np.ndarray], str]:
    root, arrs = _write(tmp_path / "d", n=2)
    before = (root / MANIFEST).read_text()
    more = _images(2, seed=5)
    write_dataset(more, root, mode="append", chunk_shape=(16, 16), dim_order="CYX")
    assert (root / "images-00001.parquet").exists() and not list(root.glob(".append-*"))
    return root, [*arrs, *more], before


def test_a_manifest_reset_to_its_pre_append_copy_is_refused(tmp_path: Path) -> None:
    root, _, before = _appended(tmp_path)
    (root / MANIFEST).write_text(before)
    with pytest.raises(DamagedFileError, match=r"append tables \['images-00001.parquet'\] hold images") as err:
        OMEArrowDataset.scan(root)
    assert str(root) in str(err.value) and MANIFEST in str(err.value)


def test_a_manifest_deleted_after_an_append_is_refused(tmp_path: Path) -> None:
    root, _, _ = _appended(tmp_path)
    (root / MANIFEST).unlink()
    with pytest.raises(DamagedFileError, match="does not list"):
        OMEArrowDataset.scan(root)
    with pytest.raises(DamagedFileError, match="does not list"):
        write_dataset(_images(1), root, mode="append", chunk_shape=(16, 16), dim_order="CYX")


def test_files_of_a_killed_append_are_ignored(tmp_path: Path) -> None:
    """Killed before its manifest commit: its files and its marker are left, and the dataset is the old one."""
    root, arrs, before = _appended(tmp_path)
    (root / MANIFEST).write_text(before)
    (root / ".append-00001.pending").touch()
    np.testing.assert_array_equal(OMEArrowDataset.scan(root).read(layout="CYX"), np.stack(arrs[:2]))
    write_dataset(_images(1, 9), root, mode="append", chunk_shape=(16, 16), dim_order="CYX")
    ds = OMEArrowDataset.scan(root)
    assert len(ds) == 3 and (root / ".append-00001.pending").exists() and not (root / ".append-00002.pending").exists()
    np.testing.assert_array_equal(ds.read(layout="CYX"), np.stack([*arrs[:2], *_images(1, 9)]))


def test_append_tables_left_by_a_compaction_are_ignored(tmp_path: Path) -> None:
    """A compaction that could not remove an appended table: its images are in images.parquet already."""
    root, arrs, _ = _appended(tmp_path)
    kept = (root / "images-00001.parquet").read_bytes()
    compact_dataset(root)
    (root / "images-00001.parquet").write_bytes(kept)
    np.testing.assert_array_equal(OMEArrowDataset.scan(root).read(layout="CYX"), np.stack(arrs))


def test_an_intact_appended_dataset_reads_back(tmp_path: Path) -> None:
    root, arrs, _ = _appended(tmp_path)
    ds = OMEArrowDataset.scan(root)
    np.testing.assert_array_equal(ds.read(layout="CYX"), np.stack(arrs))
    np.testing.assert_array_equal(ds[3].tensor_view(layout="CYX").to_numpy(), arrs[3])


def test_chunk_rows_of_an_append_checked_against_its_own_index(tmp_path: Path) -> None:
    root, _, _ = _appended(tmp_path)

    def swap(cols: dict[str, list[Any]]) -> None:
        cols["chunk_id"][0], cols["chunk_id"][1] = cols["chunk_id"][1], cols["chunk_id"][0]

    _edit(root / "index-00001.parquet", swap)
    ds = OMEArrowDataset.scan(root)
    np.testing.assert_array_equal(ds[0].to_numpy().shape, (1, 2, 1, 40, 48))  # the base part is intact
    with pytest.raises(DamagedFileError, match="chunks-00001.parquet"):
        ds[2].to_numpy()
    with pytest.raises(DamagedFileError, match="chunks-00001.parquet"):
        ds.read([3, 2])


def test_the_image_ids_of_chunk_rows_are_their_own_images(tmp_path: Path) -> None:
    """Two images' index rows traded: ids and counts agree, the chunk ids read do not."""
    root, _ = _write(tmp_path / "d")

    def trade(cols: dict[str, list[Any]]) -> None:
        a, b = _index_rows_of(cols, "image-00000")[0], _index_rows_of(cols, "image-00001")[0]
        for key in ("row_group_id", "row_index_in_group"):
            cols[key][a], cols[key][b] = cols[key][b], cols[key][a]

    _edit(root / "index.parquet", trade)
    _refused(root, "chunks.parquet")
    table = pq.read_table(root / "index.parquet")
    assert pc.count_distinct(table.column("chunk_id")).as_py() == table.num_rows  # ids themselves unique


def test_an_append_killed_before_its_manifest_leaves_a_readable_dataset(tmp_path: Path) -> None:
    """SIGKILL at the commit point: the append's files and its pending marker stay; readers ignore both."""
    root, arrs = _write(tmp_path / "d", n=2)
    script = f"""
import os, signal, numpy as np
from ome_arrow_core import write_dataset
from ome_arrow_core.typed_chunk import append
append.write_manifest = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
write_dataset([np.ones({SHAPE}, np.uint16)], {str(root)!r}, mode="append", chunk_shape=(16, 16), dim_order="CYX")
"""
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ}, capture_output=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    assert (root / "images-00001.parquet").exists() and (root / ".append-00001.pending").exists()
    np.testing.assert_array_equal(OMEArrowDataset.scan(root).read(layout="CYX"), np.stack(arrs))
    (root / ".append-00001.pending").unlink()  # without its marker, the same files mean a lost manifest
    with pytest.raises(DamagedFileError, match="does not list"):
        OMEArrowDataset.scan(root)


def test_coordinates_swapped_between_two_chunks_are_refused(tmp_path: Path) -> None:
    """Coverage and chunk ids agree; only the chunk rows' own coordinates tell where their pixels belong."""
    root, _ = _write(tmp_path / "d")

    def swap(cols: dict[str, list[Any]]) -> None:
        for a in "tczyx":
            cols[a][0], cols[a][1] = cols[a][1], cols[a][0]

    _edit(root / "index.parquet", swap)
    assert "lies at (t, c, z, y, x, shape_t..shape_x) (0, 0, 0, 0, 16, 1, 1, 1, 16, 16)" in _refused(
        root, "chunks.parquet", "index.parquet"
    )
    with pytest.raises(DamagedFileError, match="says x 16, but the chunk row it points at"):
        audit_chunk_files(root)


def test_an_image_id_lie_in_the_index_is_refused(tmp_path: Path) -> None:
    root, _ = _write(tmp_path / "d", n=1)

    def rename(cols: dict[str, list[Any]]) -> None:  # a one-image dataset takes every index row
        cols["image_id"][3] = "someone-else"

    _edit(root / "index.parquet", rename)
    assert "chunk of image 'someone-else'" in _refused(root, "chunks.parquet")


def test_the_audit_passes_intact_datasets_and_counts_their_chunks(tmp_path: Path) -> None:
    root, _, _ = _appended(tmp_path)
    assert audit_chunk_files(root) == 4 * 18


@pytest.mark.parametrize(
    "column,value,message",
    [
        ("chunk_id", 99, "says chunk_id 99"),
        ("shape_y", 9, "says shape_y 9"),
        ("image_id", "image-00002", "image_id"),
        ("row_index_in_group", 3, "which is not there"),
    ],
)
def test_the_audit_finds_each_kind_of_lie(tmp_path: Path, column: str, value: Any, message: str) -> None:
    root, _ = _write(tmp_path / "d")

    def lie(cols: dict[str, list[Any]]) -> None:
        cols[column][5] = value

    _edit(root / "index.parquet", lie)
    with pytest.raises(DamagedFileError, match=message) as err:
        audit_chunk_files(root)
    assert f"{root} [index.parquet] row 5" in str(err.value)


def test_a_listed_member_that_is_missing_is_damage(tmp_path: Path) -> None:
    root, _, _ = _appended(tmp_path)
    (root / "chunks-00001.parquet").unlink()
    with pytest.raises(DamagedFileError, match="chunks-00001.parquet' in its index, but it is missing"):
        OMEArrowDataset.scan(root).read()
    other, _, _ = _appended(tmp_path / "other")
    (other / "index-00001.parquet").unlink()
    with pytest.raises(DamagedFileError, match="lists index table 'index-00001.parquet', but it is missing"):
        OMEArrowDataset.scan(other).read()


def test_verify_reports_coordinates_swapped_in_the_index(tmp_path: Path) -> None:
    from ome_arrow_core import verify

    root, _ = _write(tmp_path / "d")
    assert verify(root).ok

    def swap(cols: dict[str, list[Any]]) -> None:
        for a in "tczyx":
            cols[a][0], cols[a][1] = cols[a][1], cols[a][0]

    _edit(root / "index.parquet", swap)
    report = verify(root)
    assert not report.ok
    assert "says x 16, but the chunk row it points at" in str(report.damage)
