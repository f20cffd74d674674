"""Damaged and lying typed-chunk datasets: every case raises DamagedFileError naming the file, never pixels.

Each dataset is written by our writer, then one of its Parquet tables is edited with pyarrow as a damaged disk,
a buggy tool or a hostile sender would. Paths and the manifest against the files present:
test_integrity_members.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from integrity_samples import SHAPE, appended_sample, edit_table, index_rows_of, refused, write_sample

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_core.errors import DamagedFileError
from ome_arrow_core.typed_chunk.audit import audit_chunk_files


# -- the index against the image: exact coverage ----------------------------------------------------
def test_an_intact_dataset_reads_back_exactly(tmp_path: Path) -> None:
    root, arrs = write_sample(tmp_path / "d")
    ds = OMEArrowDataset.scan(root)
    np.testing.assert_array_equal(ds.read(layout="CYX"), np.stack(arrs))
    np.testing.assert_array_equal(ds[1].tensor_view(layout="CYX").to_numpy(), arrs[1])


def test_a_chunk_listed_twice_is_refused(tmp_path: Path) -> None:
    root, _ = write_sample(tmp_path / "d")

    def twice(cols: dict[str, list[Any]]) -> None:
        for values in cols.values():
            values.append(values[3])

    edit_table(root / "index.parquet", twice)
    message = refused(root, "index.parquet")  # the count or coverage check (whole) or the group's ids (aligned)
    assert "cover" in message or "the index lists 55 chunks" in message or "chunk_id 3 appears more than" in message


def test_a_missing_chunk_is_refused(tmp_path: Path) -> None:
    root, _ = write_sample(tmp_path / "d")

    def drop(cols: dict[str, list[Any]]) -> None:
        for values in cols.values():
            del values[5]

    edit_table(root / "index.parquet", drop)
    refused(root, "index.parquet")


def test_a_chunk_moved_onto_another_is_refused(tmp_path: Path) -> None:
    """Same pixel count: one chunk takes another's place, so two overlap and a hole opens."""
    root, _ = write_sample(tmp_path / "d")

    def overlap(cols: dict[str, list[Any]]) -> None:
        for a in "tczyx":
            cols[a][1] = cols[a][0]

    edit_table(root / "index.parquet", overlap)
    assert "no chunk row holds the pixel" in refused(root, "index.parquet", "image-00000")


def test_shifted_coordinates_are_refused(tmp_path: Path) -> None:
    root, _ = write_sample(tmp_path / "d")

    def shift(cols: dict[str, list[Any]]) -> None:
        cols["x"][4] += 1

    edit_table(root / "index.parquet", shift)
    refused(root, "index.parquet")


def test_a_chunk_outside_the_image_is_refused(tmp_path: Path) -> None:
    root, _ = write_sample(tmp_path / "d")

    def outside(cols: dict[str, list[Any]]) -> None:
        cols["y"][2] = 1000

    edit_table(root / "index.parquet", outside)
    assert "lies outside the image" in refused(root, "index.parquet")


@pytest.mark.parametrize("column,value", [("shape_x", 0), ("shape_y", -16), ("x", -16)])
def test_zero_or_negative_extents_and_origins_are_refused(tmp_path: Path, column: str, value: int) -> None:
    root, _ = write_sample(tmp_path / "d")

    def lie(cols: dict[str, list[Any]]) -> None:
        cols[column][0] = value

    edit_table(root / "index.parquet", lie)
    refused(root, "index.parquet")


def test_a_gap_never_exposes_pixels_of_an_earlier_read(tmp_path: Path) -> None:
    """Stale memory: read one dataset, then a damaged one whose hole would show the earlier buffer."""
    bright = [np.full(SHAPE, 0xBEEF, dtype=np.uint16) for _ in range(3)]
    first = write_dataset(bright, tmp_path / "first", chunk_shape=(16, 16), dim_order="CYX")
    damaged, _ = write_sample(tmp_path / "damaged")

    def hole(cols: dict[str, list[Any]]) -> None:  # a chunk moved onto its neighbour: count intact, a hole
        for a in "tczyx":
            cols[a][7] = cols[a][8]

    edit_table(damaged / "index.parquet", hole)
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
    root, _ = write_sample(tmp_path / "d")

    def swap(cols: dict[str, list[Any]]) -> None:
        for key in columns:
            cols[key][0], cols[key][1] = cols[key][1], cols[key][0]

    edit_table(root / "index.parquet", swap)
    message = refused(root, "chunks.parquet", "index.parquet")
    assert ("says chunk 1 is row 0 of row group 0" in message and "that row holds chunk 0" in message) or (
        "row groups are stored in order" in message
    )  # read by page ranges: their order in the file tells


def test_a_chunk_of_another_image_is_refused(tmp_path: Path) -> None:
    root, _ = write_sample(tmp_path / "d")

    def steal(cols: dict[str, list[Any]]) -> None:  # image 1's first chunk row points at image 0's
        j = index_rows_of(cols, "image-00001")[0]
        cols["row_group_id"][j] = cols["row_group_id"][0]

    edit_table(root / "index.parquet", steal)
    refused(root, "chunks.parquet")


def test_a_row_index_beyond_its_row_group_is_refused(tmp_path: Path) -> None:
    root, _ = write_sample(tmp_path / "d")

    def beyond(cols: dict[str, list[Any]]) -> None:
        cols["row_index_in_group"][3] = 5  # row groups hold one chunk each

    edit_table(root / "index.parquet", beyond)
    assert "which has 1 rows" in refused(root, "chunks.parquet")


def test_a_repeated_chunk_id_is_refused(tmp_path: Path) -> None:
    root, _ = write_sample(tmp_path / "d")

    def repeat(cols: dict[str, list[Any]]) -> None:
        cols["chunk_id"][20] = cols["chunk_id"][0]

    edit_table(root / "index.parquet", repeat)
    assert "chunk_id 0 appears more than once" in refused(root)


def test_a_dtype_lie_in_the_images_table_is_refused(tmp_path: Path) -> None:
    """int16 and uint16 have the same size: only the chunks' own dtype tells the lie."""
    root, _ = write_sample(tmp_path / "d")

    def lie(cols: dict[str, list[Any]]) -> None:
        cols["dtype"] = ["int16"] * len(cols["dtype"])

    edit_table(root / "images.parquet", lie)
    message = refused(root, "chunks.parquet")
    assert "holds uint16 pixels" in message and "int16" in message


def test_a_size_lie_in_the_images_table_is_refused(tmp_path: Path) -> None:
    root, _ = write_sample(tmp_path / "d")

    def lie(cols: dict[str, list[Any]]) -> None:
        cols["size_x"] = [60] * len(cols["size_x"])

    edit_table(root / "images.parquet", lie)
    refused(root)


def test_repeated_image_ids_are_refused(tmp_path: Path) -> None:
    root, _ = write_sample(tmp_path / "d")

    def repeat(cols: dict[str, list[Any]]) -> None:
        cols["image_id"][2] = cols["image_id"][1]

    edit_table(root / "images.parquet", repeat)
    with pytest.raises(DamagedFileError, match=r"image_id 'image-00001' appears more than once") as err:
        OMEArrowDataset.scan(root)[0].to_numpy()
    assert str(root) in str(err.value)


def test_chunk_rows_of_an_append_checked_against_its_own_index(tmp_path: Path) -> None:
    root, _, _ = appended_sample(tmp_path)

    def swap(cols: dict[str, list[Any]]) -> None:
        cols["chunk_id"][0], cols["chunk_id"][1] = cols["chunk_id"][1], cols["chunk_id"][0]

    edit_table(root / "index-00001.parquet", swap)
    ds = OMEArrowDataset.scan(root)
    np.testing.assert_array_equal(ds[0].to_numpy().shape, (1, 2, 1, 40, 48))  # the base part is intact
    with pytest.raises(DamagedFileError, match="chunks-00001.parquet"):
        ds[2].to_numpy()
    with pytest.raises(DamagedFileError, match="chunks-00001.parquet"):
        ds.read([3, 2])


def test_the_image_ids_of_chunk_rows_are_their_own_images(tmp_path: Path) -> None:
    """Two images' index rows traded: ids and counts agree, the chunk ids read do not."""
    root, _ = write_sample(tmp_path / "d")

    def trade(cols: dict[str, list[Any]]) -> None:
        a, b = index_rows_of(cols, "image-00000")[0], index_rows_of(cols, "image-00001")[0]
        for key in ("row_group_id", "row_index_in_group"):
            cols[key][a], cols[key][b] = cols[key][b], cols[key][a]

    edit_table(root / "index.parquet", trade)
    refused(root, "chunks.parquet")
    table = pq.read_table(root / "index.parquet")
    assert pc.count_distinct(table.column("chunk_id")).as_py() == table.num_rows  # ids themselves unique


def test_coordinates_swapped_between_two_chunks_are_refused(tmp_path: Path) -> None:
    """Coverage and chunk ids agree; only the chunk rows' own coordinates tell where their pixels belong."""
    root, _ = write_sample(tmp_path / "d")

    def swap(cols: dict[str, list[Any]]) -> None:
        for a in "tczyx":
            cols[a][0], cols[a][1] = cols[a][1], cols[a][0]

    edit_table(root / "index.parquet", swap)
    assert "lies at (t, c, z, y, x, shape_t..shape_x) (0, 0, 0, 0, 16, 1, 1, 1, 16, 16)" in refused(
        root, "chunks.parquet", "index.parquet"
    )
    with pytest.raises(DamagedFileError, match="says x 16, but the chunk row it points at"):
        audit_chunk_files(root)


def test_an_image_id_lie_in_the_index_is_refused(tmp_path: Path) -> None:
    root, _ = write_sample(tmp_path / "d", n=1)

    def rename(cols: dict[str, list[Any]]) -> None:  # a one-image dataset takes every index row
        cols["image_id"][3] = "someone-else"

    edit_table(root / "index.parquet", rename)
    assert "chunk of image 'someone-else'" in refused(root, "chunks.parquet")


def test_the_audit_passes_intact_datasets_and_counts_their_chunks(tmp_path: Path) -> None:
    root, _, _ = appended_sample(tmp_path)
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
    root, _ = write_sample(tmp_path / "d")

    def lie(cols: dict[str, list[Any]]) -> None:
        cols[column][5] = value

    edit_table(root / "index.parquet", lie)
    with pytest.raises(DamagedFileError, match=message) as err:
        audit_chunk_files(root)
    assert f"{root} [index.parquet] row 5" in str(err.value)


def test_verify_reports_coordinates_swapped_in_the_index(tmp_path: Path) -> None:
    from ome_arrow_core import verify

    root, _ = write_sample(tmp_path / "d")
    assert verify(root).ok

    def swap(cols: dict[str, list[Any]]) -> None:
        for a in "tczyx":
            cols[a][0], cols[a][1] = cols[a][1], cols[a][0]

    edit_table(root / "index.parquet", swap)
    report = verify(root)
    assert not report.ok
    assert "says x 16, but the chunk row it points at" in str(report.damage)
