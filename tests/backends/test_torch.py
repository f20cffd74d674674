"""The torch backend (ome-arrow-torch): ingest of tensors, to_torch on the CPU and CUDA."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pinned_reads import PINNED_VIEWS, scanned
from pixels import random_pixels as _pixels

torch = pytest.importorskip("torch")
ome_arrow_torch = pytest.importorskip("ome_arrow_torch")

import pyarrow as pa  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import ome_arrow_core  # noqa: E402
from ome_arrow_core import DeviceError, DTypeError, OMEArrow, PluginError, Registry  # noqa: E402
from ome_arrow_core.dtypes import SUPPORTED  # noqa: E402

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
no_cuda = pytest.mark.skipif(CUDA, reason="checks the error raised where CUDA is missing")

DTYPES = ["float32", "uint16", "int8", "uint8", "int16", "int32", "uint32", "float64", "bool"]


def _image(dtype: str = "uint16", shape: tuple[int, ...] = (3, 2, 4, 24, 32)) -> OMEArrow:
    return OMEArrow(_pixels(shape, dtype), "TZCYX")


def _torch_registry() -> Registry:
    """Built-ins plus the torch plugin only, whatever else is installed."""
    from ome_arrow_torch import plugin

    reg = Registry(autoload=False)
    reg.register(plugin, name="torch")
    return reg


# -- plugin ------------------------------------------------------------------------------
def test_plugin_is_listed_and_available() -> None:
    rows = [r for r in ome_arrow_core.plugins() if r.plugin == "torch"]
    assert {(r.kind, r.name) for r in rows} >= {
        ("ingest", "torch"),
        ("exporter", "torch"),
        ("exporter", "torch-cuda"),
    }
    assert all(r.available and r.install == "" for r in rows)
    assert all(r.version == ome_arrow_torch.__version__ for r in rows)


def test_loading_plugins_does_not_import_torch() -> None:
    code = (
        "import sys, ome_arrow_core, ome_arrow_torch.plugin\n"
        "ome_arrow_core.plugins()\n"
        "ome_arrow_core.OMEArrow(__import__('numpy').zeros((4, 4), 'uint8'))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tensors_resolve_to_the_torch_ingester() -> None:
    reg = ome_arrow_core.default_registry()
    assert reg.resolve_ingester(torch.zeros(2, 2)).name == "torch"
    assert reg.resolve_ingester(torch.nn.Parameter(torch.zeros(2, 2))).name == "torch"
    assert reg.resolve_ingester(np.zeros((2, 2))).name == "numpy"


# -- ingest ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_ingest_keeps_dtype_and_values(dtype: str) -> None:
    arr = _pixels((3, 16, 20), dtype)
    img = OMEArrow(torch.from_numpy(arr))
    assert img.dtype == np.dtype(dtype)
    assert img.sizes == {"T": 1, "Z": 3, "C": 1, "Y": 16, "X": 20}
    np.testing.assert_array_equal(img.to_numpy()[0, 0], arr)  # TCZYX


def test_ingest_2d_is_yx_and_3d_is_zyx() -> None:
    assert OMEArrow(torch.zeros(5, 7)).sizes == {"T": 1, "Z": 1, "C": 1, "Y": 5, "X": 7}
    assert OMEArrow(torch.zeros(3, 5, 7)).sizes == {"T": 1, "Z": 3, "C": 1, "Y": 5, "X": 7}


def test_ingest_with_dim_order() -> None:
    arr = _pixels((2, 8, 9, 3), "uint16")
    img = OMEArrow(torch.from_numpy(arr), "TYXC")
    assert img.sizes == {"T": 2, "Z": 1, "C": 3, "Y": 8, "X": 9}
    np.testing.assert_array_equal(img.to_numpy()[:, :, 0], arr.transpose(0, 3, 1, 2))  # TCZYX


def test_ingest_batch_as_t() -> None:
    batch = torch.from_numpy(_pixels((4, 1, 8, 8), "float32"))  # NCHW
    img = OMEArrow(batch, "TCYX")
    assert img.sizes["T"] == 4
    for i, plane in enumerate(img.tensor_view(layout="TCYX").to_torch()):
        assert torch.equal(plane, batch[i])


def test_ingest_strided_grad_and_sparse_tensors() -> None:
    base = torch.from_numpy(_pixels((8, 12), "float32"))
    np.testing.assert_array_equal(OMEArrow(base.T).to_numpy()[0, 0, 0], base.T.numpy())
    np.testing.assert_array_equal(OMEArrow(base[::2, 1::3]).to_numpy()[0, 0, 0], base[::2, 1::3].numpy())
    grad = base.clone().requires_grad_(True)
    np.testing.assert_array_equal(OMEArrow(grad).to_numpy()[0, 0, 0], base.numpy())
    np.testing.assert_array_equal(OMEArrow(base.to_sparse()).to_numpy()[0, 0, 0], base.numpy())


def test_ingest_copies_the_tensor() -> None:
    t = torch.zeros(4, 4, dtype=torch.int16)
    img = OMEArrow(t)
    t += 5
    assert not img.to_numpy().any()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.int64, torch.complex64])
def test_unsupported_dtype_is_a_dtype_error(dtype: torch.dtype) -> None:
    name = str(dtype).removeprefix("torch.")
    with pytest.raises(DTypeError, match=f"dtype {name} cannot be stored") as info:
        OMEArrow(torch.zeros(4, 4, dtype=dtype))
    assert "supported dtypes are " + ", ".join(SUPPORTED) in str(info.value)
    assert "Convert explicitly" in str(info.value)


def test_meta_tensor_is_a_device_error() -> None:
    with pytest.raises(DeviceError, match="meta"):
        OMEArrow(torch.zeros(4, 4, device="meta"))


# -- to_torch on the CPU -------------------------------------------------------------------
def _assert_zero_copy(t: torch.Tensor, view: ome_arrow_core.TensorView) -> None:
    arr = view.to_numpy()
    assert tuple(t.shape) == view.shape
    assert t.stride() == view.strides
    assert t.dtype == getattr(torch, view.dtype.name)
    assert t.data_ptr() == arr.ctypes.data, "to_torch copied"
    np.testing.assert_array_equal(t.numpy(), arr)


def _assert_private_copy(t: torch.Tensor, view: ome_arrow_core.TensorView) -> None:
    arr = view.to_numpy()
    assert tuple(t.shape) == view.shape and t.dtype == getattr(torch, view.dtype.name)
    assert t.data_ptr() != arr.ctypes.data, "to_torch aliased the image"
    np.testing.assert_array_equal(t.numpy(), arr)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "kwargs",
    [
        {"t": 0, "z": 1},  # CYX, contiguous
        {"t": 1, "z": 0, "layout": "YXC"},  # transposed
        {"layout": "TZCYX"},  # everything
        {"t": 2, "c": 1, "layout": "ZYX"},  # one channel: strided over Z
        {"t": 0, "z": 1, "roi": (3, 5, 10, 7)},  # ROI crop: strided rows
        {"t": slice(0, 3, 2), "z": 1, "c": [0, 2], "layout": "TCYX", "roi": (1, 2, 20, 9)},
    ],
    ids=["cyx", "yxc", "tzcyx", "zyx", "roi", "strided"],
)
def test_to_torch_is_a_zero_copy_view(dtype: str, kwargs: dict) -> None:
    view = _image(dtype).tensor_view(**kwargs)
    assert view.is_arrow_backed
    _assert_zero_copy(view.to_torch(mode="arrow"), view)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    layout=st.sampled_from(["TZCYX", "CYX", "YXC", "ZCYX", "XY", "CZYXT", "YX"]),
)
def test_to_torch_matches_numpy_for_any_crop(data: st.DataObject, layout: str) -> None:
    img = _image("int16", (2, 3, 2, 17, 23))
    kw: dict = {"layout": layout}
    for ax, n in zip("tzc", (2, 3, 2)):
        if ax.upper() not in layout:
            kw[ax] = data.draw(st.integers(0, n - 1))
    x = data.draw(st.integers(0, 22))
    y = data.draw(st.integers(0, 16))
    kw["roi"] = (x, y, data.draw(st.integers(1, 23 - x)), data.draw(st.integers(1, 17 - y)))
    view = img.tensor_view(**kw)
    _assert_zero_copy(view.to_torch(mode="arrow"), view)
    _assert_private_copy(view.to_torch(), view)
    dense = view.to_torch(contiguous=True)
    assert dense.is_contiguous()
    np.testing.assert_array_equal(dense.numpy(), view.to_numpy())


def test_to_torch_contiguous_copies_only_strided_views() -> None:
    img = _image()
    plane = img.tensor_view(t=0, z=0)
    assert plane.to_torch(contiguous=True, mode="arrow").data_ptr() == plane.to_numpy().ctypes.data
    crop = img.tensor_view(t=0, z=0, roi=(2, 2, 8, 8))
    dense = crop.to_torch(contiguous=True, mode="arrow")
    assert dense.is_contiguous() and dense.data_ptr() != crop.to_numpy().ctypes.data
    np.testing.assert_array_equal(dense.numpy(), crop.to_numpy())


def test_to_torch_numpy_mode_is_a_writable_copy() -> None:
    view = _image("float32").tensor_view(t=0, z=0)
    before = np.array(view.to_numpy())
    t = view.to_torch(mode="numpy")
    assert t.data_ptr() != view.to_numpy().ctypes.data
    t += 1
    np.testing.assert_array_equal(view.to_numpy(), before)


def test_to_torch_does_not_warn_on_read_only_memory() -> None:
    view = _image().tensor_view(t=0, z=0)
    assert not view.to_numpy().flags.writeable
    view.to_torch()  # warnings are errors in this test run
    view.to_torch(mode="arrow")


def test_torch_from_dlpack_of_a_view() -> None:
    view = _image("float32").tensor_view(t=1, layout="ZYXC", roi=(4, 4, 9, 6))
    for obj in (view.to_dlpack(), view):
        _assert_zero_copy(torch.from_dlpack(obj, copy=False), view)


def test_tensor_keeps_arrow_memory_alive() -> None:
    gc.collect()
    start = pa.total_allocated_bytes()
    img = OMEArrow(_pixels((4, 256, 256), "float32"))  # 1 MiB of Arrow memory
    view = img.tensor_view(z=2, roi=(10, 20, 100, 50))
    expected = np.array(view.to_numpy())
    t = view.to_torch(mode="arrow")
    del view, img
    gc.collect()
    assert pa.total_allocated_bytes() - start >= 4 * 256 * 256 * 4, "Arrow buffer was freed"
    junk = [np.full((256, 256), 7, np.float32) for _ in range(32)]
    np.testing.assert_array_equal(t.numpy(), expected)
    del t, junk
    gc.collect()
    assert pa.total_allocated_bytes() - start < 4 * 256 * 256 * 4, "Arrow buffer leaked"


def test_iter_dlpack_tiles_on_cpu() -> None:
    view = _image().tensor_view(layout="TCYX", z=1)
    out = np.zeros(view.shape, dtype=np.int64)
    tiles = view.iter_dlpack(batch_size=2, tile_size=(10, 12))
    for (t0, y0, x0), tile in zip(_tile_origins(view.shape, 2, (10, 12)), tiles, strict=True):
        t = torch.from_dlpack(tile)
        b, _, h, w = t.shape
        out[t0 : t0 + b, :, y0 : y0 + h, x0 : x0 + w] += t.numpy()
    np.testing.assert_array_equal(out, view.to_numpy())


def _tile_origins(shape: tuple[int, ...], batch: int, tile: tuple[int, int]) -> list[tuple[int, int, int]]:
    n_t, _, n_y, n_x = shape
    return [(t, y, x) for t in range(0, n_t, batch) for y in range(0, n_y, tile[0]) for x in range(0, n_x, tile[1])]


# -- CUDA ----------------------------------------------------------------------------------
def test_generic_cuda_dlpack_resolves_to_torch() -> None:
    reg = _torch_registry()
    for dtype in SUPPORTED:
        assert reg.resolve_exporter("cuda", np.dtype(dtype), None).name == "torch-cuda"
        assert reg.resolve_exporter("cuda", np.dtype(dtype), "torch").name == "torch-cuda"
    with pytest.raises(PluginError, match="cupy"):
        reg.resolve_exporter("cuda", np.dtype("uint16"), "cupy")  # never a torch tensor


@no_cuda
def test_cuda_without_a_gpu_is_a_device_error() -> None:
    img = OMEArrow(_pixels((2, 16, 16), "uint16"), registry=_torch_registry())
    view = img.tensor_view(z=0)
    with pytest.raises(DeviceError, match="CUDA is not available"):
        view.to_torch(device="cuda")
    with pytest.raises(DeviceError, match="CUDA is not available"):
        view.to_dlpack(device="cuda")
    with pytest.raises(DeviceError, match="CUDA is not available"):
        next(view.iter_dlpack(device="cuda"))


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "kwargs",
    [{"t": 0, "z": 1}, {"t": 1, "layout": "ZYXC"}, {"t": 2, "z": 0, "roi": (3, 5, 10, 7)}],
    ids=["cyx", "zyxc", "roi"],
)
def test_to_torch_cuda_values(dtype: str, kwargs: dict) -> None:
    view = _image(dtype).tensor_view(**kwargs)
    t = view.to_torch(device="cuda")
    assert t.device == torch.device("cuda", 0)
    assert tuple(t.shape) == view.shape and t.is_contiguous()
    assert t.dtype == getattr(torch, dtype)
    np.testing.assert_array_equal(t.cpu().numpy(), view.to_numpy())


@needs_cuda
def test_to_dlpack_cuda_is_a_torch_cuda_tensor() -> None:
    img = OMEArrow(_pixels((2, 3, 2, 24, 32), "float32"), "TZCYX", registry=_torch_registry())
    view = img.tensor_view(t=0, layout="ZCYX", roi=(1, 1, 16, 16))
    t = view.to_dlpack(device="cuda")
    assert isinstance(t, torch.Tensor) and t.is_cuda and tuple(t.shape) == view.shape
    np.testing.assert_array_equal(torch.from_dlpack(t).cpu().numpy(), view.to_numpy())


@needs_cuda
def test_iter_dlpack_cuda_tiles() -> None:
    view = _image("uint16", (4, 1, 2, 40, 50)).tensor_view(layout="TCYX", z=0)
    out = torch.zeros(view.shape, dtype=torch.int32, device="cuda")
    seen = 0
    tiles = view.iter_dlpack(batch_size=3, tile_size=(16, 20), device="cuda", prefetch=2)
    for (t0, y0, x0), tile in zip(_tile_origins(view.shape, 3, (16, 20)), tiles, strict=True):
        t = torch.from_dlpack(tile)
        assert t.is_cuda and t.dtype == torch.uint16
        b, _, h, w = t.shape
        out[t0 : t0 + b, :, y0 : y0 + h, x0 : x0 + w] += t.to(torch.int32)
        seen += t.numel()
    assert seen == int(np.prod(view.shape))
    np.testing.assert_array_equal(out.cpu().numpy(), view.to_numpy().astype(np.int32))


@needs_cuda
def test_iter_dlpack_cuda_stacks() -> None:
    view = _image("int16", (1, 3, 1, 64, 40)).tensor_view(layout="ZYX", t=0, c=0)
    stacks = [torch.from_dlpack(s) for s in view.iter_dlpack(tile_size=(32, 20), stack=3, device="cuda", mode="torch")]
    assert [tuple(s.shape) for s in stacks] == [(3, 3, 32, 20), (1, 3, 32, 20)]
    assert all(s.is_cuda for s in stacks)
    host = view.to_numpy()
    tiles = [host[:, y : y + 32, x : x + 20] for y in (0, 32) for x in (0, 20)]
    np.testing.assert_array_equal(torch.cat(stacks).cpu().numpy(), np.stack(tiles))


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_ingest_cuda_tensor(dtype: str) -> None:
    arr = _pixels((2, 3, 16, 20), dtype)
    img = OMEArrow(torch.from_numpy(arr).cuda(), "TCYX")
    assert img.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(img.to_numpy()[:, :, 0], arr)  # TCZYX, Z=1


@needs_cuda
def test_cuda_device_index_out_of_range() -> None:
    view = _image().tensor_view(t=0, z=0)
    with pytest.raises(DeviceError, match="does not exist"):
        view.to_torch(device=f"cuda:{torch.cuda.device_count()}")


# -- reads into torch's pinned memory (Exporter.host_memory) -----------------------------------------------------------
def test_the_cuda_exporter_offers_torch_pinned_memory() -> None:
    from ome_arrow_torch.export import pinned_host

    exporter = _torch_registry().resolve_exporter("cuda", np.dtype("uint16"), "torch")
    assert exporter.host_memory is pinned_host
    assert _torch_registry().resolve_exporter("cpu", np.dtype("uint16"), "torch").host_memory is None


def test_a_remembered_block_keeps_the_tensor_its_array_holds() -> None:
    """pinned_host's bookkeeping without pinning (no GPU needed): after the caller drops its tensor, the block is
    still found with a live tensor of its memory, so pinned_tensor views it instead of staging a copy."""
    from ome_arrow_torch.export import PINNED, pinned_tensor, remembered

    block = torch.arange(4096 + 64, dtype=torch.uint8)
    arr = remembered(block, 4096)
    del block
    gc.collect()
    found = PINNED.find(arr)
    assert found is not None and isinstance(found[1], torch.Tensor) and found[1].data_ptr() <= arr.ctypes.data
    host = arr[:2048].view(np.uint16).reshape(32, 32)
    tensor = pinned_tensor(host)
    assert tensor is not None and tensor.data_ptr() == host.ctypes.data
    np.testing.assert_array_equal(tensor.numpy(), host)
    start = arr.ctypes.data
    del arr, host, found, tensor
    gc.collect()
    assert PINNED.lookup(start, 1) is None


def test_memory_that_pinned_host_did_not_give_is_not_pinned() -> None:
    from ome_arrow_torch.export import pinned_tensor

    arr = np.zeros((4, 256, 256), np.uint16)
    assert pinned_tensor(arr) is None and pinned_tensor(arr[:, ::2]) is None and pinned_tensor(arr[:0]) is None


@no_cuda
@pytest.mark.parametrize("call", ["to_torch", "to_dlpack"])
def test_a_lazy_read_for_cuda_without_a_gpu_is_a_device_error(tmp_path: Path, call: str) -> None:
    """The read asks the exporter for pinned memory before the export checks the device: that ask says it too."""
    img, _ = scanned(tmp_path, _torch_registry())
    view = img.tensor_view(t=0, z=1, layout="CYX")
    with pytest.raises(DeviceError, match="CUDA is not available"):
        getattr(view, call)(device="cuda")
    np.testing.assert_array_equal(view.to_numpy(), img.to_numpy()[0, :, 1])  # the view still reads on the CPU


@needs_cuda
@PINNED_VIEWS
@pytest.mark.parametrize("how", ["to_torch", "to_dlpack"])
def test_a_lazy_view_is_read_into_pinned_memory_and_copied_from_there(
    tmp_path: Path, kwargs: dict, pinned: bool, as_is: bool, how: str
) -> None:
    from ome_arrow_torch import export

    img, host = scanned(tmp_path, _torch_registry())
    view = img.tensor_view(**kwargs)
    got = getattr(view, how)(device="cuda")
    read = view.to_numpy()  # the read the export made (collected once)
    in_block = export.PINNED.find(read) is not None
    assert in_block is pinned and (export.pinned_tensor(read) is not None) is as_is
    assert isinstance(got, torch.Tensor) and got.is_cuda and got.is_contiguous()
    np.testing.assert_array_equal(got.cpu().numpy(), read)
    np.testing.assert_array_equal(read, OMEArrow(host).tensor_view(**kwargs).to_numpy())
    start = read.ctypes.data
    del view, read
    gc.collect()
    assert export.PINNED.lookup(start, 1) is None  # the pinned block went back with the view


@needs_cuda
def test_pinned_reads_dropped_before_their_copies_finish_are_not_reused_early(tmp_path: Path) -> None:
    """Each plane's read is dropped right after its asynchronous copy is queued; torch's host allocator must keep
    its block until that copy is done, so every device tensor holds its own plane."""
    img, host = scanned(tmp_path, _torch_registry())
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        torch.cuda._sleep(50_000_000)  # keep the stream busy: the copies queue behind it
        got = [img.tensor_view(t=t, z=z, layout="CYX").to_torch(device="cuda") for t in range(2) for z in range(3)]
        gc.collect()
    torch.cuda.synchronize()
    for (t, z), tensor in zip([(t, z) for t in range(2) for z in range(3)], got, strict=True):
        np.testing.assert_array_equal(tensor.cpu().numpy(), host[t, :, z])


def test_pinned_host_arrays_are_aligned_and_map_back_to_their_tensor(monkeypatch: pytest.MonkeyPatch) -> None:
    """pinned_host's bookkeeping on the CPU: torch's pinned allocation stood in for by CPU tensors, the first one
    8 bytes off alignment (no GPU here; the GPU tests above run the real allocator)."""
    from ome_arrow_torch import export

    real_empty = torch.empty
    made: list[torch.Tensor] = []

    def empty(n: int, *, dtype: torch.dtype, pin_memory: bool) -> torch.Tensor:
        assert pin_memory
        base = real_empty(n + 128, dtype=dtype)
        at = -base.data_ptr() % 64 + (8 if not made else 0)  # the first block misaligned
        made.append(base[at : at + n])
        return made[-1]

    monkeypatch.setattr(export, "check_cuda", lambda index: None)
    monkeypatch.setattr(torch, "empty", empty)
    block = export.pinned_host(4096)
    assert len(made) == 2 and block.ctypes.data % 64 == 0 and block.nbytes == 4096  # padded on its second try
    block[:] = np.arange(4096) % 251
    plane = block[64:].view(np.uint16).reshape(8, 252)
    t = export.pinned_tensor(plane)
    assert t is not None and t.dtype == torch.uint16 and tuple(t.shape) == (8, 252)
    assert t.data_ptr() == plane.ctypes.data and made[-1].untyped_storage().data_ptr() == t.untyped_storage().data_ptr()
    np.testing.assert_array_equal(t.numpy(), plane)
    odd = export.pinned_tensor(block[1:3])  # bytes at any offset
    assert odd is not None and odd.tolist() == block[1:3].tolist()
    assert export.pinned_tensor(block[65:].view(np.uint8)[:8].view(np.uint16)) is None  # odd offset for uint16
    assert export.pinned_tensor(plane[:, ::2]) is None  # strided: staged
    assert export.pinned_tensor(np.zeros(8, np.uint16)) is None  # memory it never gave
