"""ome_arrow_core.compat against the reference package: files cross both ways, bit for bit."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from ome_arrow_core import compat
from ome_arrow_core.errors import DamagedFileError

ref = pytest.importorskip("ome_arrow", reason="needs the reference package: pip install ome-arrow==0.1.0")

DTYPES = ("uint8", "int8", "uint16", "int32", "float32", "float64")


def same_bits(expected: np.ndarray, got: object) -> None:
    arr = np.asarray(got)
    assert arr.dtype == expected.dtype and arr.shape == expected.shape
    assert np.ascontiguousarray(arr).tobytes() == np.ascontiguousarray(expected).tobytes()


def pixels(dtype: str, shape: tuple[int, ...] = (2, 3, 2, 9, 7)) -> np.ndarray:
    rng = np.random.default_rng(7)
    if np.dtype(dtype).kind == "f":
        out = rng.standard_normal(shape).astype(dtype)
        out.flat[0] = -0.0
        return out
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def test_reference_record_file_is_read_exactly(tmp_path: Path) -> None:
    arr = pixels("uint16")
    out = tmp_path / "ref.ome.parquet"
    ref.to_ome_parquet(ref.from_numpy(arr, dim_order="TCZYX", chunk_shape=(1, 4, 4)), str(out), column_name="ome_arrow")
    same_bits(arr, compat.OMEArrow(str(out)).export(how="numpy"))
    same_bits(arr, compat.to_numpy(compat.from_ome_parquet(out)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("encoding", ["list", "bytes"])
def test_compat_records_keep_every_dtype(dtype: str, encoding: str, tmp_path: Path) -> None:
    arr = pixels(dtype)
    rec = compat.from_numpy(
        arr,
        dim_order="TCZYX",
        chunk_shape=(1, 4, 4),
        chunk_encoding=encoding,
        chunk_compression="zstd" if encoding == "bytes" else None,
    )
    out = tmp_path / "rec.ome.parquet"
    compat.to_ome_parquet(rec, str(out), column_name="ome_arrow")
    same_bits(arr, compat.to_numpy(compat.from_ome_parquet(out)))
    if encoding == "bytes":  # the reference decodes typed byte chunks in their own dtype
        same_bits(arr, ref.to_numpy(ref.from_ome_parquet(out), dtype=np.dtype(dtype)))


def test_reference_reads_compat_uint16_list_records(tmp_path: Path) -> None:
    arr = pixels("uint16")
    out = tmp_path / "rec.ome.parquet"
    compat.to_ome_parquet(compat.from_numpy(arr, chunk_shape=(1, 4, 4)), str(out), column_name="ome_arrow")
    same_bits(arr, ref.to_numpy(ref.from_ome_parquet(out)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_datasets_cross_both_ways(dtype: str, tmp_path: Path) -> None:
    arr = pixels(dtype)
    compat.write_ome_arrow_dataset([arr], tmp_path / "ours", chunk_shape=(1, 1, 1, 4, 4), compression="zstd")
    theirs = ref.OMEArrowDataset(tmp_path / "ours")
    same_bits(arr, theirs.read_image())
    ref.write_ome_arrow_dataset([arr], tmp_path / "theirs", layout="tile", chunk_shape=(1, 1, 1, 4, 4))
    ours = compat.OMEArrowDataset(tmp_path / "theirs")
    same_bits(arr, ours.read_image())
    same_bits(arr[1, 2, 1], ours.read_plane(t=1, c=2, z=1))
    same_bits(arr[:, :, 1:2, 2:7, 3:6], ours.read_region(z=1, y=slice(2, 7), x=slice(3, 6)))
    rows = ours.read_chunk_rows(z=1, y=slice(2, 7), x=slice(3, 6))
    assert rows.num_rows == 2 * 3 * 2 * 2  # t * c * (y chunks) * (x chunks) overlapping the region


def test_damaged_byte_chunk_raises(tmp_path: Path) -> None:
    rec = compat.from_numpy(pixels("uint16"), chunk_encoding="bytes", chunk_shape=(1, 4, 4)).as_py()
    rec["chunks"][0]["pixel_bytes"] = rec["chunks"][0]["pixel_bytes"][:-2]
    with pytest.raises(DamagedFileError):
        compat.to_numpy(rec)


def test_selection_errors_are_value_errors_and_unknown_keywords_type_errors() -> None:
    img = compat.OMEArrow(np.zeros((3, 4, 5), np.uint16))
    with pytest.raises(ValueError, match="Provide either z or roi3d"):
        img.tensor_view(z=0, roi3d=(0, 0, 0, 2, 2, 1))
    with pytest.raises(TypeError):
        compat.OMEArrow(np.zeros((3, 4), np.uint16), row_idx=2)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="dim_order is supported only"):
        compat.OMEArrow("missing.ome.parquet", dim_order="YX")


def test_row_index_and_image_type_are_honoured(tmp_path: Path) -> None:
    recs = [compat.from_numpy(np.full((2, 3), i, np.uint16), image_id=f"i{i}") for i in range(3)]
    table = pa.table({"ome_arrow": pa.concat_arrays([pa.array([r.as_py()], type=r.type) for r in recs])})
    import pyarrow.parquet as pq

    pq.write_table(table, tmp_path / "three.parquet")
    img = compat.OMEArrow(str(tmp_path / "three.parquet"), row_index=2, image_type="label")
    assert int(img.export(how="numpy").max()) == 2
    assert img.data.as_py()["image_type"] == "label"


def test_numpy_export_is_tczyx_with_equal_c_and_z() -> None:
    arr = pixels("float32", (1, 2, 2, 3, 4))
    same_bits(arr, compat.OMEArrow(arr).export(how="numpy"))


def test_migration_doc_lists_every_excluded_test() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from run_reference_suite import EXCLUDED

    doc = (Path(__file__).parents[2] / "docs" / "migration.md").read_text(encoding="utf-8")
    for node in EXCLUDED:
        assert f"`{node}`" in doc


def test_iter_dlpack_tiles_alias_and_lazy_views_stay_lazy(tmp_path: Path) -> None:
    arr = pixels("int8", (2, 2, 1, 5, 6))
    img = compat.OMEArrow(arr)
    view = img.tensor_view(t=0, z=0)
    by_alias = [np.from_dlpack(x) for x in view.iter_dlpack(tiles=(2, 4), mode="numpy")]
    by_name = [np.from_dlpack(x) for x in view.iter_dlpack(tile_size=(2, 4), mode="numpy")]
    assert len(by_alias) == 6 and all(a.tobytes() == b.tobytes() for a, b in zip(by_alias, by_name))
    with pytest.raises(ValueError, match="Unsupported chunk_policy"):
        img.tensor_view(chunk_policy="eager")
    out = tmp_path / "x.ome.parquet"
    compat.to_ome_parquet(compat.from_numpy(arr, dim_order="TCZYX"), str(out), column_name="ome_arrow")
    lazy = compat.OMEArrow.scan(str(out)).slice_lazy(1, 5, 2, 4)
    plane = lazy.tensor_view(t=1, z=0, c=1, layout="YX").to_numpy()
    assert lazy.is_lazy
    same_bits(arr[1, 1, 0, 2:4, 1:5], plane)


@pytest.mark.parametrize("lazy", [False, True])
def test_compat_streams_take_stack_and_with_index(tmp_path: Path, lazy: bool) -> None:
    """Our ``stack=`` and ``with_index=`` reach the core streams from the reference's signature, and each index
    addresses the compat view's own pixels (the reference's default layouts: CYX, TZCYX)."""
    arr = pixels("float32", (1, 2, 3, 5, 7))  # TCZYX
    out = tmp_path / "s.ome.parquet"
    compat.to_ome_parquet(compat.from_numpy(arr, dim_order="TCZYX"), str(out), column_name="ome_arrow")
    img = compat.OMEArrow.scan(str(out)) if lazy else compat.OMEArrow(arr)
    plane = img.tensor_view(t=0, z=1)
    whole = plane.to_numpy()
    assert whole.shape == (2, 5, 7)
    seen = np.zeros(whole.shape, dtype=np.int64)
    for index, tensor in plane.iter_dlpack(tile_size=(2, 4), mode="numpy", stack=3, with_index=True):
        got = np.from_dlpack(tensor)
        assert got.ndim == 4 and len(index) == got.shape[0] <= 3
        for one, part in zip(index, got):
            same_bits(whole[one], part)
            seen[one] += 1
    assert (seen == 1).all()
    column = img.tensor_view(t=0, c=1)
    volume = column.to_numpy()
    assert volume.shape == (1, 3, 1, 5, 7)
    cubes = list(column.iter_tiles_3d(tile_size=(2, 2, 4), stack=2, with_index=True))
    assert sum(len(i) for i, _ in cubes) == 2 * 3 * 2  # Z tiles (3 by 2), Y tiles (5 by 2), X tiles (7 by 4)
    for index, tensor in cubes:
        for one, part in zip(index, np.from_dlpack(tensor)):
            same_bits(volume[one], part)


@pytest.mark.parametrize("select", [{}, {"t": 0}, {"z": [0, 1]}, {"t": 1, "z": 1}])
def test_a_view_without_a_layout_is_shaped_as_the_reference_s(select: dict[str, object]) -> None:
    """The reference's default view layout is CYX for one T and one Z, else TZCYX (ome-arrow-core's is TCZYX)."""
    arr = pixels("uint16", (2, 3, 2, 5, 6))  # TCZYX, Z == C would hide a swap: C=3, Z=2
    theirs = ref.OMEArrow(arr).tensor_view(**select)
    ours = compat.OMEArrow(arr).tensor_view(**select)
    assert ours.layout == theirs.layout
    same_bits(np.asarray(theirs.to_numpy()), ours.to_numpy())


@pytest.mark.parametrize(
    "select", [{"t": 0}, {"t": 0, "z": 1, "layout": "YXC"}, {"c": [2, 0]}, {"t": 1, "z": 0, "c": 1}]
)
@pytest.mark.parametrize("dtype", ["uint16", "float64"])
def test_view_strides_are_in_bytes_as_the_reference_s(select: dict[str, object], dtype: str) -> None:
    """The reference's ``TensorView.strides`` are byte strides (numpy's); ome-arrow-core's own are in elements.

    (The reference casts float64 to uint16, so its strides are those of uint16 pixels.)
    """
    arr = pixels(dtype, (2, 3, 2, 5, 6))
    theirs = ref.OMEArrow(arr).tensor_view(**select).strides
    ours = compat.OMEArrow(arr).tensor_view(**select)
    assert ours.strides == ours.to_numpy().strides == tuple(s * arr.itemsize // 2 for s in theirs)
    assert compat.OMEArrow(arr).slice_lazy(0, 6, 0, 5).tensor_view(**select).strides == ours.strides


def test_an_append_to_a_reference_dataset_keeps_its_codec_so_it_compacts_for_the_reference(tmp_path: Path) -> None:
    from ome_arrow_core import compact_dataset, write_dataset

    old = [pixels("float32", (1, 2, 1, 8, 8)), pixels("float32", (1, 2, 1, 8, 8)) + 1]
    more = pixels("int8", (1, 2, 1, 8, 8))
    out = tmp_path / "ref.ome-arrow"
    ref.write_ome_arrow_dataset(old, str(out), pixel_dtype=np.float32)  # zstd chunks, its default
    write_dataset([more], out, mode="append", progress=False)  # compression left at its default
    assert compact_dataset(out) == ["chunks.parquet", "chunks-00001.parquet"]  # refused: zstd and none, before
    reader = ref.OMEArrowDataset(str(out))
    for image_id, want in zip(reader.image_ids, [*old, more]):
        same_bits(want, reader.read_image(image_id))


@pytest.mark.parametrize("select", [{}, {"t": 1}, {"z": [0, 2, 4]}, {"t": 0, "z": 0}, {"c": 1, "layout": "TZYX"}])
def test_tiles_3d_come_one_time_point_each_as_the_reference_s(select: dict[str, object]) -> None:
    """The reference yields one T per 3-D tile (t, then z, y, x), and tiles a view without Z in Y and X."""
    arr = pixels("uint16", (2, 3, 5, 5, 6))
    theirs = [np.from_dlpack(x) for x in ref.OMEArrow(arr).tensor_view(**select).iter_tiles_3d(tile_size=(2, 4, 4))]
    ours = [np.from_dlpack(x) for x in compat.OMEArrow(arr).tensor_view(**select).iter_tiles_3d(tile_size=(2, 4, 4))]
    assert len(ours) == len(theirs)
    for a, b in zip(theirs, ours, strict=True):
        same_bits(a, b)
    with pytest.raises(ValueError, match="tile_size"):
        next(iter(compat.OMEArrow(arr).tensor_view(t=0, z=0).iter_tiles_3d(tile_size=(0, 4, 4))))
