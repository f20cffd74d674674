"""Pixel locators: a one-chunk image's images row says where its pixel bytes lie (see typed_chunk/locators.py).

A read of such an image loads no index row group and no chunks row group: one positioned read of its bytes, checked
against the locator's XXH3 first. Lies and damage are refused (ChecksumError / DamagedFileError), never served.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from damage import flip_byte
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from table_digests import without_image_records, without_table_digests

from ome_arrow_core import OMEArrowDataset, compact_dataset, write_dataset
from ome_arrow_core.errors import ArgumentError, ChecksumError, DamagedFileError, SchemaError
from ome_arrow_core.typed_chunk import LOCATOR_COLUMNS, locators
from ome_arrow_core.typed_chunk.locators import LOCATORS_KEY, value_offsets
from ome_arrow_core.typed_chunk.opening import clear_cache, open_dataset
from ome_arrow_core.typed_chunk.spec import MANIFEST


def _image(i: int, shape: tuple[int, ...] = (1, 6, 5)) -> np.ndarray:
    """Image ``i`` (CYX uint16), different for every i."""
    return ((np.arange(int(np.prod(shape))) + 7 * i) % 4096).astype(np.uint16).reshape(shape)


def _plate(tmp: Path, n: int = 40, name: str = "plate", **options: object) -> Path:
    meta = ({"well": f"A{i % 3:02d}", "site": i} for i in range(n))
    out = write_dataset(
        (_image(i) for i in range(n)), tmp / name, metadata=meta, dim_order="CYX", progress=False, **options
    )
    clear_cache()
    return Path(out)


def _rows(out: Path, name: str = "images.parquet") -> list[dict[str, object]]:
    return pq.read_table(out / name).to_pylist()  # type: ignore[no-any-return]


def _manifest(out: Path) -> dict[str, object]:
    return json.loads((out / MANIFEST).read_text())  # type: ignore[no-any-return]


def _rewrite_images(out: Path, change: dict[str, list[object]]) -> None:
    """Rewrite images.parquet with columns ``change`` replaced, its digests dropped (a tool that lies consistently)."""
    table = pq.read_table(out / "images.parquet")
    for name, values in change.items():
        at = table.schema.get_field_index(name)
        table = table.set_column(at, table.schema.field(at), pa.array(values, table.schema.field(at).type))
    pq.write_table(table, out / "images.parquet", row_group_size=1024)
    manifest = json.loads((out / MANIFEST).read_text())
    for key in ("table_groups", "table_groups_packed"):
        manifest["ome_arrow_core"].pop(key, None)
    (out / MANIFEST).write_text(json.dumps(manifest))
    without_table_digests(out)
    clear_cache()


# -- what is written ------------------------------------------------------------------------------------
def test_one_chunk_images_carry_a_locator_of_their_exact_pixel_bytes(tmp_path: Path) -> None:
    out = _plate(tmp_path)
    rows = _rows(out)
    assert [n for n in pq.read_schema(out / "images.parquet").names if n in LOCATOR_COLUMNS] == list(LOCATOR_COLUMNS)
    data = (out / "chunks.parquet").read_bytes()
    index = pq.read_table(out / "index.parquet").to_pylist()
    for i, row in enumerate(rows):
        raw = data[row["pixels_offset"] : row["pixels_offset"] + row["pixels_length"]]  # type: ignore[misc]
        np.testing.assert_array_equal(np.frombuffer(raw, "<u2").reshape(1, 6, 5), _image(i))
        assert row["pixels_file"] == "chunks.parquet"
        assert row["pixels_checksum"] == index[i]["checksum"]
    ours = _manifest(out)["ome_arrow_core"]
    assert ours[LOCATORS_KEY] == {"chunks.parquet": {"size": (out / "chunks.parquet").stat().st_size}}  # type: ignore[index]
    assert OMEArrowDataset.scan(out).extra_columns == ["well", "site"]


def test_images_of_several_chunks_and_compressed_chunks_get_no_locator(tmp_path: Path) -> None:
    big = write_dataset(
        [np.zeros((1, 40, 30), np.uint16)], tmp_path / "tiled", dim_order="CYX", chunk_shape=(16, 16), progress=False
    )
    assert "pixels_offset" not in pq.read_schema(big / "images.parquet").names
    lz4 = _plate(tmp_path, 5, "lz4", compression="lz4")
    assert "pixels_offset" not in pq.read_schema(lz4 / "images.parquet").names
    assert LOCATORS_KEY not in _manifest(lz4)["ome_arrow_core"]  # type: ignore[operator]
    ds = OMEArrowDataset.scan(lz4)
    np.testing.assert_array_equal(ds[3].to_numpy(layout="CYX"), _image(3))


def test_one_chunk_images_beside_tiled_ones_keep_their_locators(tmp_path: Path) -> None:
    """Only row groups holding a one-chunk image are located; the one-chunk images around an image of several chunks
    (small ones sharing row groups, a large one in a row group of its own) still get their exact offsets."""
    big = (np.arange(250 * 250) % 4093).astype(np.uint16).reshape(1, 250, 250)  # 122 KiB: a row group of its own
    two = (np.arange(2 * 20 * 30) % 4091).astype(np.uint16).reshape(2, 20, 30)  # a chunk per channel
    images = [_image(0), _image(1), two, big, _image(2), two[:1] + 1]
    out = write_dataset(iter(images), tmp_path / "mixed", dim_order="CYX", progress=False)
    clear_cache()
    rows = _rows(out)
    data = (out / "chunks.parquet").read_bytes()
    for row, image in zip(rows, images, strict=True):
        if image is two:
            assert row["pixels_offset"] is None and row["pixels_file"] is None
            continue
        raw = data[row["pixels_offset"] : row["pixels_offset"] + row["pixels_length"]]  # type: ignore[misc]
        np.testing.assert_array_equal(np.frombuffer(raw, "<u2").reshape(image.shape), image)
    ds = OMEArrowDataset.scan(out)
    for k, image in enumerate(images):
        np.testing.assert_array_equal(ds[k].to_numpy(layout="CYX"), image)


def test_only_row_groups_with_a_one_chunk_image_are_located(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page headers of an image of several chunks are not read (writing a 2048-chunk image read all 2048 of them
    for no locator): a tiled image alone asks for none, beside one-chunk images for theirs only."""
    asked: list[list[int]] = []
    real = locators.value_offsets

    def spy(file: Path, groups: np.ndarray, rows: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        asked.append(sorted(set(groups.tolist())))
        return real(file, groups, rows, lengths)

    monkeypatch.setattr(locators, "value_offsets", spy)
    tiled = (np.arange(3 * 40 * 30) % 4091).astype(np.uint16).reshape(3, 40, 30)  # a chunk per channel
    out = write_dataset([tiled], tmp_path / "tiled", dim_order="CYX", progress=False)
    assert asked == [] and "pixels_offset" not in pq.read_schema(out / "images.parquet").names
    write_dataset([_image(0), tiled, _image(1)], tmp_path / "mixed", dim_order="CYX", progress=False)
    index = pq.read_table(tmp_path / "mixed" / "index.parquet").to_pylist()
    groups = {r["image_id"]: r["row_group_id"] for r in index}
    tiled_groups = {r["row_group_id"] for r in index if r["image_id"] == "image-00001"}
    assert asked == [sorted({groups["image-00000"], groups["image-00002"]})]
    assert not tiled_groups & set(asked[0])


def test_a_metadata_column_named_like_a_locator_column_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArgumentError, match="pixels_offset"):
        write_dataset([_image(0)], tmp_path / "x", metadata=[{"pixels_offset": 3}], dim_order="CYX", progress=False)


def test_value_offsets_refuses_rows_it_cannot_count(tmp_path: Path) -> None:
    out = _plate(tmp_path, 8)
    index = pq.read_table(out / "index.parquet")
    groups = index.column("row_group_id").to_numpy().astype(np.int64)
    rows = index.column("row_index_in_group").to_numpy().astype(np.int64)
    good = value_offsets(out / "chunks.parquet", groups, rows, np.full(8, 60))
    assert (good > 0).all()
    assert (value_offsets(out / "chunks.parquet", groups, rows, np.full(8, 62)) == -1).all()  # lengths disagree
    assert (value_offsets(out / "chunks.parquet", groups[1:], rows[1:], np.full(7, 60)) == -1).all()  # rows missing


# -- reads -------------------------------------------------------------------------------------------------
def test_a_located_image_reads_without_its_index_rows(tmp_path: Path) -> None:
    out = _plate(tmp_path, 40, images_per_group=16)  # an aligned index (row group by row group)
    ds = OMEArrowDataset.scan(out)
    for i in (0, 17, 39):
        np.testing.assert_array_equal(ds[i].to_numpy(layout="CYX"), _image(i))
        np.testing.assert_array_equal(
            ds[i].tensor_view(roi=(1, 2, 3, 2), layout="CYX").to_numpy(), _image(i)[:, 2:4, 1:4]
        )
    opened = open_dataset(out)
    assert opened.aligned is not None and opened.aligned.loaded == 0  # no index row group read
    assert opened.packed.nbytes == 0  # nor a chunks row group
    np.testing.assert_array_equal(ds.read([5, 2, 38]), np.stack([_image(5), _image(2), _image(38)]))
    np.testing.assert_array_equal(ds.read([4], roi=(0, 1, 2, 3))[0], _image(4)[:, 1:4, 0:2])
    src = ds[7].source
    assert src.describe()["chunks"] == 1  # the index is still there for what needs it
    out_arr = np.zeros((1, 1, 1, 6, 5), np.uint16)
    from ome_arrow_core.selection import Selection

    src.read_into(Selection.full(ds[7].meta.sizes), out_arr)
    np.testing.assert_array_equal(out_arr.reshape(1, 6, 5), _image(7))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 70),
    shape=st.tuples(st.integers(1, 2), st.integers(1, 9), st.integers(1, 9)),
    dtype=st.sampled_from(["uint8", "uint16", "int32", "float32"]),
    per_group=st.sampled_from([3, 16, 1024]),
)
def test_round_trip_of_random_plates(
    tmp_path: Path, n: int, shape: tuple[int, int, int], dtype: str, per_group: int
) -> None:
    rng = np.random.default_rng(n)
    images = [(rng.random(shape) * 200).astype(dtype) for _ in range(n)]
    out = tmp_path / f"p{n}-{'x'.join(map(str, shape))}-{dtype}-{per_group}"
    shutil.rmtree(out, ignore_errors=True)
    write_dataset(iter(images), out, dim_order="CYX", images_per_group=per_group, progress=False)
    clear_cache()
    if shape[0] == 1:  # one chunk an image (a plane each): located
        assert all(r["pixels_offset"] is not None for r in _rows(out))
    ds = OMEArrowDataset.scan(out)
    for i in rng.permutation(n)[:10].tolist():
        np.testing.assert_array_equal(ds[i].to_numpy(layout="CYX"), images[i])
    picks = rng.integers(0, n, 5)
    np.testing.assert_array_equal(ds.read(picks), np.stack([images[i] for i in picks]))


def test_appends_and_compaction_keep_reading_right(tmp_path: Path) -> None:
    out = _plate(tmp_path, 10)
    write_dataset((_image(i) for i in range(10, 16)), out, mode="append", dim_order="CYX", progress=False)
    clear_cache()
    ours = _manifest(out)["ome_arrow_core"]
    assert set(ours[LOCATORS_KEY]) == {"chunks.parquet", "chunks-00001.parquet"}  # type: ignore[index]
    assert {r["pixels_file"] for r in _rows(out, "images-00001.parquet")} == {"chunks-00001.parquet"}
    ds = OMEArrowDataset.scan(out)
    for i in range(16):
        np.testing.assert_array_equal(ds[i].to_numpy(layout="CYX"), _image(i))
    compact_dataset(out)
    clear_cache()
    rows = _rows(out)
    assert {r["pixels_file"] for r in rows} == {"chunks.parquet"}
    assert set(_manifest(out)["ome_arrow_core"][LOCATORS_KEY]) == {"chunks.parquet"}  # type: ignore[index]
    ds = OMEArrowDataset.scan(out)
    for i in range(16):
        np.testing.assert_array_equal(ds[i].to_numpy(layout="CYX"), _image(i))
    assert all(ds[i].source._located is not None for i in range(16))  # read by the merged file's locators


def test_ome_arrow_reference_reader_still_reads_it(tmp_path: Path) -> None:
    pytest.importorskip("ome_arrow", reason="needs the reference package: pip install ome-arrow==0.1.0")
    from ome_arrow.dataset import OMEArrowDataset as RefDataset

    out = _plate(tmp_path, 6)
    assert "pixels_offset" in pq.read_schema(out / "images.parquet").names
    ref = RefDataset(out)
    assert len(list(ref.image_ids)) == 6
    for i in range(6):
        got = np.asarray(ref.read_image(f"image-{i:05d}"))
        np.testing.assert_array_equal(got.reshape(1, 6, 5), _image(i))


# -- damage and lies ------------------------------------------------------------------------------------
def test_flipped_pixel_bytes_at_the_locator_are_refused(tmp_path: Path) -> None:
    out = _plate(tmp_path, 12)
    row = _rows(out)[5]
    flip_byte(out / "chunks.parquet", int(row["pixels_offset"]) + 3)  # type: ignore[arg-type]
    ds = OMEArrowDataset.scan(out)
    with pytest.raises(ChecksumError, match="image 'image-00005'"):
        ds[5].to_numpy()
    with pytest.raises(ChecksumError):
        ds.read([1, 5])
    np.testing.assert_array_equal(ds[4].to_numpy(layout="CYX"), _image(4))  # the others still read


@pytest.mark.parametrize(
    ("column", "lie", "error"),
    [
        ("pixels_offset", lambda v: v + 2, ChecksumError),
        ("pixels_offset", lambda v: v - 60 - 4, ChecksumError),  # the neighbour's pixels
        ("pixels_offset", lambda v: 10**9, DamagedFileError),  # past the end of the file
        ("pixels_offset", lambda v: -5, DamagedFileError),
        ("pixels_length", lambda v: v - 2, DamagedFileError),
        ("pixels_length", lambda v: v * 2, DamagedFileError),
        ("pixels_checksum", lambda v: v ^ 1, ChecksumError),
    ],
)
def test_a_lie_in_a_locator_column_is_refused(tmp_path: Path, column: str, lie: object, error: type) -> None:
    out = _plate(tmp_path, 12)
    values = [r[column] for r in _rows(out)]
    values[6] = lie(values[6])  # type: ignore[operator]
    _rewrite_images(out, {column: values})
    ds = OMEArrowDataset.scan(out)
    with pytest.raises(error):
        ds[6].to_numpy()
    with pytest.raises(error):
        ds.read([6])
    np.testing.assert_array_equal(ds[7].to_numpy(layout="CYX"), _image(7))


def test_a_locator_naming_a_file_the_dataset_does_not_list_is_not_followed(tmp_path: Path) -> None:
    out = _plate(tmp_path, 4)
    shutil.copy(out / "chunks.parquet", tmp_path / "elsewhere.parquet")
    _rewrite_images(out, {"pixels_file": ["../elsewhere.parquet"] * 4})  # a name the manifest does not list
    ds = OMEArrowDataset.scan(out)
    np.testing.assert_array_equal(ds[2].to_numpy(layout="CYX"), _image(2))  # through the index
    assert ds[2].source._located is None


def test_a_flipped_locator_in_a_checked_images_table_is_refused(tmp_path: Path) -> None:
    out = _plate(tmp_path, 12)
    without_image_records(out)  # read from the table, not from its image records (tests/test_image_records.py)
    clear_cache()
    table = pq.read_table(out / "images.parquet")
    data = (out / "images.parquet").read_bytes()
    # the offsets column's values in the file: the little-endian int64 of image 0's offset
    at = data.find(int(table.column("pixels_offset")[0].as_py()).to_bytes(8, "little"))
    assert at > 0
    flip_byte(out / "images.parquet", at + 1)
    with pytest.raises(ChecksumError):
        OMEArrowDataset.scan(out)[0].to_numpy()


def test_a_truncated_chunks_file_is_refused(tmp_path: Path) -> None:
    out = _plate(tmp_path, 12)
    rows = _rows(out)
    ds = OMEArrowDataset.scan(out)
    np.testing.assert_array_equal(ds[11].to_numpy(layout="CYX"), _image(11))  # opened, its file checked once
    with open(out / "chunks.parquet", "r+b") as f:
        f.truncate(int(rows[11]["pixels_offset"]) + 10)  # type: ignore[arg-type]
    with pytest.raises(DamagedFileError):  # the opened dataset: the short read is refused
        ds[11].to_numpy()
    clear_cache()
    with pytest.raises(DamagedFileError):  # a fresh open: the size differs, the index path refuses the file
        OMEArrowDataset.scan(out)[11].to_numpy()


def test_a_chunks_file_of_another_size_is_read_through_the_index(tmp_path: Path) -> None:
    out = _plate(tmp_path, 6)
    with open(out / "chunks.parquet", "ab") as f:
        f.write(b"\0" * 3)  # not what the locators were written for
    ds = OMEArrowDataset.scan(out)
    try:
        got = ds[2].to_numpy(layout="CYX")
    except DamagedFileError:
        return  # the index path refuses a file that is not the one recorded: also right
    np.testing.assert_array_equal(got, _image(2))
    assert ds[2].source._located is None


def test_unchecked_reads_still_refuse_impossible_locators(tmp_path: Path) -> None:
    out = _plate(tmp_path, 6)
    values = [r["pixels_length"] for r in _rows(out)]
    values[1] = 7
    _rewrite_images(out, {"pixels_length": values})
    ds = OMEArrowDataset.scan(out, verify=False)
    with pytest.raises(DamagedFileError):
        ds[1].to_numpy()
    assert os.environ.get("OME_ARROW_CORE_VERIFY", "1") != "0"


def test_an_unknown_checksum_algorithm_is_refused_naming_the_chunks_file(tmp_path: Path) -> None:
    """A dataset whose manifest records a checksum algorithm this version does not know (a newer or foreign
    writer's) is refused by a checked located read, naming the chunks file and the algorithm; never served."""
    out = _plate(tmp_path, 6)
    manifest = _manifest(out)
    ours = manifest["ome_arrow_core"]
    assert isinstance(ours, dict) and ours["checksum"] == "xxh3_64"
    ours["checksum"] = "blake9_512"
    (out / MANIFEST).write_text(json.dumps(manifest))
    without_table_digests(out)  # its table digests would be refused (by the same algorithm) before any pixel
    clear_cache()
    ds = OMEArrowDataset.scan(out)
    file = f"{out}{os.sep}chunks.parquet"
    with pytest.raises(SchemaError, match="checksum algorithm 'blake9_512'") as one:
        ds[2].to_numpy()
    assert str(one.value).startswith(f"{file} was written with")
    with pytest.raises(SchemaError, match="checksum algorithm 'blake9_512'") as batch:
        ds.read([1, 4])
    assert str(batch.value).startswith(f"{file} was written with")
    assert ds[2].source._located is not None  # the located path refused it, not the index's checks
    np.testing.assert_array_equal(OMEArrowDataset.scan(out, verify=False)[2].to_numpy(layout="CYX"), _image(2))


def test_verify_reports_a_locator_a_read_would_refuse(tmp_path: Path) -> None:
    from ome_arrow_core import verify

    out = _plate(tmp_path, 8)
    assert verify(out).ok
    values = [r["pixels_checksum"] for r in _rows(out)]
    values[3] = values[3] ^ 4  # type: ignore[operator]
    _rewrite_images(out, {"pixels_checksum": values})
    report = verify(out)
    assert not report.ok
    assert [d.image_id for d in report.damage] == ["image-00003"]
    assert "pixel locator" in report.damage[0].problem
