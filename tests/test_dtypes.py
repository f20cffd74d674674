"""Every supported dtype survives every storage path bit for bit; other dtypes are refused clearly."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ome_arrow_core import DTypeError, ImageMeta, OMEArrow
from ome_arrow_core.dtypes import SUPPORTED, check_dtype, from_ome_type, in_stored_order, to_ome_type

DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64", "bool")
OME_NAMES = {"float32": "float", "float64": "double", "bool": "bit"}
SUPPORTED_TEXT = "uint8, int8, uint16, int16, uint32, int32, float32, float64, bool"


def same_bits(expected: np.ndarray, got: np.ndarray) -> None:
    """Equal dtype, shape and bytes (NaN payloads and the sign of zero included)."""
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    assert got.shape == expected.shape
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(expected).tobytes()


def tricky(dtype: str, make_pixels: Callable[..., np.ndarray]) -> np.ndarray:
    """TCZYX pixels with odd sizes and the dtype's special values (NaN payloads, -0.0, negatives)."""
    a = make_pixels((2, 3, 2, 19, 23), dtype, seed=5)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        bits = a.view(np.uint32 if dt.itemsize == 4 else np.uint64).reshape(-1)
        quiet_nan_with_payload = 0x7FC0_1234 if dt.itemsize == 4 else 0x7FF8_0000_0000_1234
        bits[6:9] = [quiet_nan_with_payload, quiet_nan_with_payload | (1 << (8 * dt.itemsize - 1)), 0]
        a.reshape(-1)[9] = -0.0
    elif dt.kind == "i":
        a.reshape(-1)[2:6] = [-1, -2, -100, np.iinfo(dt).min + 1]
    return a


def canonical(arr: np.ndarray) -> np.ndarray:
    """``arr`` (default axes for its ndim) as TCZYX (what ``to_numpy()`` returns), computed by hand."""
    if arr.ndim == 5:
        return arr
    if arr.ndim == 4:
        return arr[:, :, None]
    return arr.reshape((1,) * (5 - arr.ndim) + arr.shape)


ROUTES: dict[str, Callable[[OMEArrow, Path], OMEArrow]] = {
    "memory": lambda img, _: img,
    "dict": lambda img, _: OMEArrow(img.export("dict")),
    "scalar": lambda img, _: OMEArrow(img.export("scalar")),
    "arrow-table": lambda img, _: OMEArrow(pa.table({"px": img.export("arrow")})),
    "parquet-dataset": lambda img, d: OMEArrow(img.export("parquet", d / "x.ome.parquet")),
    "parquet-dataset-chunked": lambda img, d: OMEArrow(
        img.export("parquet", d / "x.ome.parquet", chunk_shape=(2, 8, 16), compression="zstd", rows_per_group=4)
    ),
    "parquet-record": lambda img, d: OMEArrow(img.export("parquet", d / "x.parquet", layout="record")),
}


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_is_bit_exact(
    dtype: str, route: str, tmp_path: Path, make_pixels: Callable[..., np.ndarray]
) -> None:
    a = tricky(dtype, make_pixels)
    img = OMEArrow(a)  # 5-D arrays are TCZYX
    back = ROUTES[route](img, tmp_path)
    assert back.dtype == np.dtype(dtype)
    assert back.info()["dtype"] == dtype
    same_bits(a, back.to_numpy())
    same_bits(a[1, :, 0], np.asarray(back.tensor_view(t=1, z=0).to_numpy()))


@pytest.mark.parametrize("layout", ["dataset", "record"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_lazy_crops_keep_the_bits(
    dtype: str, layout: str, tmp_path: Path, make_pixels: Callable[..., np.ndarray]
) -> None:
    a = tricky(dtype, make_pixels)
    out = tmp_path / "x.ome.parquet"
    OMEArrow(a).export("parquet", out, layout=layout, chunk_shape=(1, 7, 9)) if layout == "dataset" else OMEArrow(
        a
    ).export("parquet", out, layout=layout)
    view = OMEArrow.scan(out).tensor_view(t=0, z=1, c=[2, 0], roi=(3, 0, 17, 12), layout="YXC")
    assert view.dtype == np.dtype(dtype)
    same_bits(a[0, [2, 0], 1, 0:12, 3:20].transpose(1, 2, 0), view.to_numpy())


@settings(max_examples=60, deadline=None)
@given(
    arr=hnp.arrays(
        dtype=st.sampled_from(DTYPES).map(np.dtype),
        shape=hnp.array_shapes(min_dims=2, max_dims=5, min_side=1, max_side=5),
        elements={"allow_nan": True, "allow_infinity": True, "allow_subnormal": True},
    ),
)
def test_random_arrays_round_trip(arr: np.ndarray) -> None:
    img = OMEArrow(arr)  # default axes: YX, ZYX, TCYX, TCZYX
    expected = img.to_numpy()
    same_bits(canonical(arr), expected)
    same_bits(expected, OMEArrow(img.export("scalar")).to_numpy())
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "r.ome.parquet"
        img.export("parquet", out, chunk_shape=(2, 3))
        same_bits(expected, OMEArrow(out).to_numpy())
        same_bits(expected, OMEArrow.scan(out).tensor_view(layout="TCZYX").to_numpy())


@pytest.mark.parametrize("dtype", DTYPES)
def test_ome_pixel_type_names(dtype: str) -> None:
    record = OMEArrow(np.zeros((2, 2), dtype)).export("dict")
    assert record["pixels_meta"]["type"] == OME_NAMES.get(dtype, dtype)
    assert to_ome_type(dtype) == OME_NAMES.get(dtype, dtype)
    assert from_ome_type(OME_NAMES.get(dtype, dtype)) == np.dtype(dtype)
    assert from_ome_type(dtype) == np.dtype(dtype)  # numpy names are accepted too
    assert SUPPORTED == DTYPES


@pytest.mark.parametrize("dtype", [">u2", ">i4", ">f8", "<f4"])
def test_byte_order_is_normalised_values_kept(dtype: str) -> None:
    a = np.array([[0, 1, 2], [300, 4, 5]], dtype=dtype)
    img = OMEArrow(a)
    assert img.dtype.isnative and img.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(img.tensor_view(layout="YX").to_numpy(), a)


@pytest.mark.parametrize("order", ["<", ">", "=", "|"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_in_stored_order_means_the_stored_little_endian_bytes_read_as_they_are(dtype: str, order: str) -> None:
    dt = np.dtype(dtype).newbyteorder(order) if order != "|" else np.dtype(dtype)
    values = np.array([1, 2, 3, 120], dtype=np.dtype(dtype).newbyteorder("<"))
    as_is = np.frombuffer(values.tobytes(), dt)  # the stored bytes taken as ``dt`` with no swap
    assert in_stored_order(dt) == bool((as_is == values).all())


@pytest.mark.parametrize("dtype", ["int64", "uint64", "float16", "complex64", "complex128", "datetime64[s]", "U3", "O"])
def test_unsupported_dtypes_name_the_supported_ones(dtype: str) -> None:
    arr = np.zeros((4, 4), dtype=dtype)
    with pytest.raises(
        DTypeError, match=f"pixel dtype .* cannot be stored as OME-Arrow; supported dtypes are {SUPPORTED_TEXT}"
    ):
        OMEArrow(arr)
    with pytest.raises(TypeError):  # DTypeError is also a TypeError
        OMEArrow(arr)
    with pytest.raises(DTypeError, match="astype"):  # and says how to fix it
        check_dtype(dtype)


def test_unsupported_cast_and_metadata_are_refused() -> None:
    img = OMEArrow(np.zeros((4, 4), np.uint16))
    with pytest.raises(DTypeError, match=f"float16 cannot be stored.*{SUPPORTED_TEXT}"):
        img.tensor_view(dtype="float16")
    with pytest.raises(DTypeError, match="int64"):
        ImageMeta(sizes={"Y": 2, "X": 2}, dtype=np.dtype("int64"))
    with pytest.raises(DTypeError, match="is not a dtype"):
        check_dtype(object())
    with pytest.raises(DTypeError, match="unknown OME pixel type 'half'"):
        from_ome_type("half")


def test_explicit_cast_only_when_asked() -> None:
    a = np.array([[0, 255], [128, 7]], np.uint8)
    img = OMEArrow(a)
    assert img.tensor_view().dtype == np.uint8
    view = img.tensor_view(layout="YX", dtype="float64")
    assert view.dtype == np.float64 and not np.shares_memory(view.to_numpy(), img.to_numpy())
    np.testing.assert_array_equal(view.to_numpy(), a.astype(np.float64))
    assert img.dtype == np.uint8 and img.to_numpy().dtype == np.uint8


def annotated_record() -> dict[str, object]:
    """A record with every piece of metadata set, built through the public dict export."""
    rec: dict[str, object] = OMEArrow(np.arange(3 * 2 * 4 * 5, dtype=np.uint16).reshape(1, 2, 3, 4, 5)).export("dict")
    pm = dict(rec["pixels_meta"])  # type: ignore[call-overload]
    pm.update(
        physical_size_x=0.65,
        physical_size_y=0.7,
        physical_size_z=2.5,
        physical_size_x_unit="nm",
        physical_size_y_unit="nm",
        physical_size_z_unit="µm",
        channels=[
            {
                "id": "Channel:0:0",
                "name": "DAPI",
                "emission_um": 0.461,
                "excitation_um": 0.358,
                "illumination": "Epifluorescence",
                "color_rgba": 0xFF0000FF,
            },
            {
                "id": "Channel:0:1",
                "name": "GFP",
                "emission_um": 0.509,
                "excitation_um": 0.488,
                "illumination": "Unknown",
                "color_rgba": 0x00FF00FF,
            },
        ],
    )
    rec.update(pixels_meta=pm, id="img-7", name="cells", acquisition_datetime="2024-01-02T03:04:05")
    return rec


@pytest.mark.parametrize("route", ["dict", "scalar", "parquet-dataset", "parquet-record"])
def test_metadata_round_trips(route: str, tmp_path: Path) -> None:
    img = OMEArrow(annotated_record())
    back = ROUTES[route](img, tmp_path)
    f32 = np.float32  # record fields are float32 in the public schema; datasets keep float64
    meta = back.meta
    assert (meta.id, meta.name, meta.image_type) == ("img-7", "cells", "image")
    assert str(meta.acquisition_datetime).startswith("2024-01-02T03:04:05")
    assert {k: f32(v) for k, v in meta.physical_size.items()} == {"X": f32(0.65), "Y": f32(0.7), "Z": f32(2.5)}
    assert dict(meta.physical_unit) == {"X": "nm", "Y": "nm", "Z": "µm"}
    assert [(c.id, c.name, c.illumination, c.color_rgba) for c in meta.channels] == [
        ("Channel:0:0", "DAPI", "Epifluorescence", 0xFF0000FF),
        ("Channel:0:1", "GFP", "Unknown", 0x00FF00FF),
    ]
    assert [f32(c.emission_um) for c in meta.channels] == [f32(0.461), f32(0.509)]
    # a channel selection keeps its channels' metadata, through a crop and a write
    crop = back.slice_lazy(1, 4, 0, 3, c_indices=[1]).collect()
    assert [c.name for c in crop.meta.channels] == ["GFP"]
    again = OMEArrow(crop.export("parquet", tmp_path / "crop.ome.parquet"))
    assert [c.name for c in again.meta.channels] == ["GFP"] and again.sizes["X"] == 3
    assert dict(again.meta.physical_unit) == {"X": "nm", "Y": "nm", "Z": "µm"}


class ArrayOnly:
    """Has ``__array__`` and nothing else."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = a

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        return self.a


class DLPackOnly:
    """Has ``__dlpack__`` and nothing else."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = a

    def __dlpack__(self, **kwargs: object) -> object:
        return self.a.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_array_likes_and_odd_memory_layouts_keep_dtype_and_values(
    dtype: str, make_pixels: Callable[..., np.ndarray]
) -> None:
    a = make_pixels((3, 8, 10), dtype, seed=8)  # ZYX
    for obj, expected in (
        (ArrayOnly(a), a),
        (DLPackOnly(a), a),
        (a[::-1, :, ::2], a[::-1, :, ::2]),
        (np.asfortranarray(a), a),
    ):
        img = OMEArrow(obj)
        assert img.dtype == np.dtype(dtype)
        same_bits(expected, np.asarray(img.tensor_view(layout="ZYX").to_numpy()))
