"""The jax backend (ome-arrow-jax): ingest of jax arrays, to_jax on the CPU and GPU."""

from __future__ import annotations

import gc
import subprocess
import sys

import numpy as np
import pytest
from pixels import random_pixels as _pixels

jax = pytest.importorskip("jax")
ome_arrow_jax = pytest.importorskip("ome_arrow_jax")

import jax.numpy as jnp  # noqa: E402
import pyarrow as pa  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import ome_arrow_core  # noqa: E402
from ome_arrow_core import DeviceError, DTypeError, OMEArrow, TensorView  # noqa: E402
from ome_arrow_core.buffers import ALIGNMENT  # noqa: E402
from ome_arrow_core.dtypes import SUPPORTED  # noqa: E402
from ome_arrow_jax import is_compact  # noqa: E402
from ome_arrow_jax.export import gpu_devices  # noqa: E402

GPU = bool(gpu_devices())
needs_gpu = pytest.mark.skipif(not GPU, reason="needs a CUDA GPU")
no_gpu = pytest.mark.skipif(GPU, reason="checks the error raised where JAX has no GPU")

#: Dtypes JAX holds without 64-bit mode (float64 has its own tests).
DTYPES = ["float32", "uint16", "int8", "uint8", "int16", "int32", "uint32", "bool"]


def _image(dtype: str = "uint16", shape: tuple[int, ...] = (3, 2, 4, 24, 32)) -> OMEArrow:
    return OMEArrow(_pixels(shape, dtype), "TZCYX")


def _pointer(arr: jax.Array) -> int:
    return int(arr.unsafe_buffer_pointer())


def _assert_values(arr: jax.Array, view: TensorView) -> None:
    assert arr.shape == view.shape
    assert arr.dtype == view.dtype
    np.testing.assert_array_equal(np.asarray(arr), view.to_numpy())


# -- plugin ------------------------------------------------------------------------------
def test_plugin_is_listed_and_available() -> None:
    rows = [r for r in ome_arrow_core.plugins() if r.plugin == "jax"]
    assert {(r.kind, r.name) for r in rows} >= {
        ("ingest", "jax"),
        ("exporter", "jax"),
        ("exporter", "jax-cuda"),
    }
    assert all(r.available and r.install == "" for r in rows)


def test_loading_plugins_does_not_import_jax() -> None:
    code = (
        "import sys, ome_arrow_core, ome_arrow_jax.plugin\n"
        "ome_arrow_core.plugins()\n"
        "ome_arrow_core.OMEArrow(__import__('numpy').zeros((4, 4), 'uint8'))\n"
        "assert 'jax' not in sys.modules, 'jax was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_jax_arrays_resolve_to_the_jax_ingester() -> None:
    reg = ome_arrow_core.default_registry()
    assert reg.resolve_ingester(jnp.zeros((2, 2))).name == "jax"
    assert reg.resolve_ingester(np.zeros((2, 2))).name == "numpy"


# -- ingest ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_ingest_keeps_dtype_and_values(dtype: str) -> None:
    arr = _pixels((3, 16, 20), dtype)
    img = OMEArrow(jnp.asarray(arr))
    assert img.dtype == np.dtype(dtype)
    assert img.sizes == {"T": 1, "Z": 3, "C": 1, "Y": 16, "X": 20}
    np.testing.assert_array_equal(img.to_numpy()[0, 0], arr)  # TCZYX


def test_ingest_float64_in_64_bit_mode() -> None:
    arr = _pixels((5, 6), "float64")
    with jax.enable_x64(True):
        img = OMEArrow(jnp.asarray(arr))
    assert img.dtype == np.float64
    np.testing.assert_array_equal(img.to_numpy()[0, 0, 0], arr)


def test_ingest_2d_is_yx_3d_is_zyx_and_dim_order() -> None:
    assert OMEArrow(jnp.zeros((5, 7))).sizes == {"T": 1, "Z": 1, "C": 1, "Y": 5, "X": 7}
    assert OMEArrow(jnp.zeros((3, 5, 7))).sizes == {"T": 1, "Z": 3, "C": 1, "Y": 5, "X": 7}
    arr = _pixels((2, 8, 9, 3), "uint16")
    img = OMEArrow(jnp.asarray(arr), "TYXC")  # a batch goes on T
    assert img.sizes == {"T": 2, "Z": 1, "C": 3, "Y": 8, "X": 9}
    np.testing.assert_array_equal(img.to_numpy()[:, :, 0], arr.transpose(0, 3, 1, 2))  # TCZYX


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.complex64])
def test_unsupported_dtype_is_a_dtype_error(dtype: object) -> None:
    name = np.dtype(dtype).name
    with pytest.raises(DTypeError, match=f"dtype {name} cannot be stored") as info:
        OMEArrow(jnp.zeros((4, 4), dtype=dtype))
    assert "supported dtypes are " + ", ".join(SUPPORTED) in str(info.value)


def test_int64_is_a_dtype_error_in_64_bit_mode() -> None:
    with jax.enable_x64(True):
        arr = jnp.zeros((4, 4), dtype=jnp.int64)
        with pytest.raises(DTypeError, match="dtype int64 cannot be stored.*jnp.int32"):
            OMEArrow(arr)


# -- to_jax on the CPU ---------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "kwargs",
    [
        {"t": 0, "z": 1},  # CYX, C-contiguous
        {"layout": "TZCYX"},
        {"t": 1, "z": 0, "layout": "YXC"},  # a transposition: still zero-copy
        {"layout": "XYCZT"},
    ],
    ids=["cyx", "tzcyx", "yxc", "xyczt"],
)
def test_to_jax_is_zero_copy_for_compact_views(dtype: str, kwargs: dict) -> None:
    view = _image(dtype).tensor_view(**kwargs)
    arr = view.to_jax()
    _assert_values(arr, view)
    assert arr.devices() == {jax.devices("cpu")[0]}
    assert view.to_numpy().ctypes.data % ALIGNMENT == 0
    assert _pointer(arr) == view.to_numpy().ctypes.data, "to_jax copied a compact view"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "kwargs",
    [
        {"t": 0, "z": 1, "roi": (3, 5, 10, 7)},  # ROI crop: gaps between rows
        {"t": 2, "c": 1, "layout": "ZYX"},  # one channel of several: gaps between planes
        {"t": slice(0, 3, 2), "z": 1, "c": [0, 2], "layout": "TCYX", "roi": (1, 2, 20, 9)},
    ],
    ids=["roi", "zyx", "strided"],
)
def test_to_jax_copies_strided_views_once(dtype: str, kwargs: dict) -> None:
    view = _image(dtype).tensor_view(**kwargs)
    assert not is_compact(view.shape, view.strides)
    arr = view.to_jax()
    _assert_values(arr, view)
    assert _pointer(arr) != view.to_numpy().ctypes.data
    assert _pointer(arr) % ALIGNMENT == 0  # the copy is aligned Arrow memory JAX kept as is


def test_to_jax_of_unaligned_compact_view_is_copied_by_jax() -> None:
    view = _image("int16", (1, 3, 1, 17, 23)).tensor_view(z=1)  # starts 782 bytes into the buffer
    assert view.is_contiguous and view.to_numpy().ctypes.data % ALIGNMENT != 0
    arr = view.to_jax()
    _assert_values(arr, view)
    assert _pointer(arr) != view.to_numpy().ctypes.data


def test_to_jax_contiguous_copies_transposed_views() -> None:
    img = _image()
    plane = img.tensor_view(t=0, z=0)
    assert _pointer(plane.to_jax(contiguous=True)) == plane.to_numpy().ctypes.data
    hwc = img.tensor_view(t=0, z=0, layout="YXC")
    dense = hwc.to_jax(contiguous=True)
    assert _pointer(dense) != hwc.to_numpy().ctypes.data
    _assert_values(dense, hwc)


def test_to_jax_default_device_is_cpu() -> None:
    view = _image().tensor_view(t=0, z=0)
    assert view.to_jax().devices() == view.to_jax(device="cpu").devices() == {jax.devices("cpu")[0]}


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    layout=st.sampled_from(["TZCYX", "CYX", "YXC", "ZCYX", "XY", "CZYXT", "YX"]),
)
def test_is_compact_agrees_with_jax(data: st.DataObject, layout: str) -> None:
    img = _image("int16", (2, 3, 2, 17, 23))
    kw: dict = {"layout": layout}
    for ax, n in zip("tzc", (2, 3, 2)):
        if ax.upper() not in layout:
            kw[ax] = data.draw(st.integers(0, n - 1))
    if data.draw(st.booleans()):
        x = data.draw(st.integers(0, 22))
        y = data.draw(st.integers(0, 16))
        kw["roi"] = (x, y, data.draw(st.integers(1, 23 - x)), data.draw(st.integers(1, 17 - y)))
    view = img.tensor_view(**kw)
    arr = view.to_jax()
    _assert_values(arr, view)
    address = view.to_numpy().ctypes.data
    if is_compact(view.shape, view.strides):
        # JAX imports aligned memory as is and copies unaligned memory itself.
        direct = jnp.from_dlpack(view.to_dlpack())
        assert (_pointer(arr) == address) == (_pointer(direct) == address) == (address % ALIGNMENT == 0)
    else:  # JAX refuses these strides itself; through us it gets a compact copy
        shown = view.to_numpy()  # its strides over writable memory (JAX takes no read-only numpy array)
        span = sum((n - 1) * st for n, st in zip(shown.shape, shown.strides, strict=True)) + shown.itemsize
        same = np.lib.stride_tricks.as_strided(np.zeros(span, np.uint8).view(shown.dtype), shown.shape, shown.strides)
        with pytest.raises(jax.errors.JaxRuntimeError, match="compact"):
            jnp.from_dlpack(same)
        copied = jnp.from_dlpack(view.to_dlpack())
        assert _pointer(copied) != address
        _assert_values(copied, view)


def test_float64_needs_64_bit_mode() -> None:
    view = _image("float64").tensor_view(t=0, z=0)
    with pytest.raises(DTypeError, match="jax_enable_x64"):
        view.to_jax()
    with jax.enable_x64(True):
        arr = view.to_jax()
        _assert_values(arr, view)
        assert _pointer(arr) == view.to_numpy().ctypes.data


def test_jax_from_dlpack_of_a_view() -> None:
    view = _image("float32").tensor_view(t=1, layout="ZYXC")
    for obj in (view.to_dlpack(), view):
        arr = jnp.from_dlpack(obj)
        _assert_values(arr, view)
        assert _pointer(arr) == view.to_numpy().ctypes.data


def test_donating_a_zero_copy_array_leaves_the_image_intact() -> None:
    """JAX arrays are immutable, but donation lets XLA reuse an input buffer: never ours."""
    img = _image("float32")
    view = img.tensor_view(t=1, z=0)
    expected = np.array(view.to_numpy())
    arr = view.to_jax()
    assert _pointer(arr) == view.to_numpy().ctypes.data
    out = jax.jit(lambda a: a * 0 + 5, donate_argnums=0)(arr)
    np.testing.assert_array_equal(np.asarray(out), np.full(expected.shape, 5, np.float32))
    np.testing.assert_array_equal(img.tensor_view(t=1, z=0).to_numpy(), expected)


def test_jax_array_keeps_arrow_memory_alive() -> None:
    gc.collect()
    start = pa.total_allocated_bytes()
    size = 4 * 256 * 256 * 4
    img = OMEArrow(_pixels((4, 256, 256), "float32"))  # 1 MiB of Arrow memory
    view = img.tensor_view(z=2)
    expected = np.array(view.to_numpy())
    arr = view.to_jax()
    assert _pointer(arr) == view.to_numpy().ctypes.data
    del view, img
    gc.collect()
    assert pa.total_allocated_bytes() - start >= size, "Arrow buffer was freed"
    junk = [np.full((256, 256), 7, np.float32) for _ in range(32)]
    np.testing.assert_array_equal(np.asarray(arr), expected)
    del arr, junk
    gc.collect()
    assert pa.total_allocated_bytes() - start < size, "Arrow buffer leaked"


def test_iter_dlpack_jax_tiles() -> None:
    view = _image().tensor_view(layout="TCYX", z=1)
    out = np.zeros(view.shape, dtype=np.int64)
    origins = [(t, y, x) for t in range(0, 3, 2) for y in range(0, 24, 10) for x in range(0, 32, 12)]
    tiles = view.iter_dlpack(batch_size=2, tile_size=(10, 12), mode="jax")
    for (t0, y0, x0), tile in zip(origins, tiles, strict=True):
        assert isinstance(tile, jax.Array)
        b, _, h, w = tile.shape
        out[t0 : t0 + b, :, y0 : y0 + h, x0 : x0 + w] += np.asarray(tile)
    np.testing.assert_array_equal(out, view.to_numpy())


# -- GPU -----------------------------------------------------------------------------------
@no_gpu
def test_gpu_without_a_gpu_is_a_device_error() -> None:
    with pytest.raises(DeviceError, match=r"JAX .* sees no CUDA device: its devices are .*jax\[cuda12\]"):
        _image().tensor_view(t=0, z=0).to_jax(device="cuda")


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "kwargs",
    [{"t": 0, "z": 1}, {"t": 1, "layout": "ZYXC"}, {"t": 2, "z": 0, "roi": (3, 5, 10, 7)}],
    ids=["cyx", "zyxc", "roi"],
)
def test_to_jax_gpu_values(dtype: str, kwargs: dict) -> None:
    view = _image(dtype).tensor_view(**kwargs)
    arr = view.to_jax(device="cuda")
    assert arr.devices() == {gpu_devices()[0]}
    _assert_values(arr, view)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_ingest_gpu_array(dtype: str) -> None:
    arr = _pixels((2, 3, 16, 20), dtype)
    img = OMEArrow(jax.device_put(arr, gpu_devices()[0]), "TCYX")
    assert img.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(img.to_numpy()[:, :, 0], arr)  # TCZYX, Z=1


@needs_gpu
def test_gpu_device_index_out_of_range() -> None:
    with pytest.raises(DeviceError, match="does not exist"):
        _image().tensor_view(t=0, z=0).to_jax(device=f"cuda:{len(gpu_devices())}")


def test_jnp_from_dlpack_takes_a_strided_view_as_a_compact_copy() -> None:
    a = np.arange(2 * 64 * 80, dtype=np.uint16).reshape(2, 64, 80)
    view = OMEArrow(a, dim_order="CYX").tensor_view(roi=(3, 5, 20, 10))
    assert not view.to_numpy().flags.c_contiguous  # JAX alone refuses it ("trivial (compact) striding")
    for producer in (view, view.to_dlpack()):
        got = jnp.from_dlpack(producer)
        np.testing.assert_array_equal(np.asarray(got), a[:, 5:15, 3:23])
    whole = OMEArrow(a, dim_order="CYX").tensor_view()  # compact already: no copy made for it
    assert whole.to_numpy().flags.c_contiguous
    np.testing.assert_array_equal(np.asarray(jnp.from_dlpack(whole)), a)
