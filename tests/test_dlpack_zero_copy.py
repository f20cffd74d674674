"""Zero-copy DLPack export from Arrow memory, keep-alive, read-only capsules, and copies where promised."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrow, TensorView
from ome_arrow_core.buffers import arrow_base
from ome_arrow_core.dlpack import DLPackTensor
from ome_arrow_core.layout import AXES


def image() -> OMEArrow:
    return OMEArrow(np.arange(2 * 3 * 4 * 40 * 56, dtype=np.uint16).reshape(2, 3, 4, 40, 56), "TZCYX")


def inside(buf: pa.Buffer, ptr: int) -> bool:
    return buf.address <= ptr < buf.address + buf.size


class LegacyOnly:
    """A wrapper whose ``__dlpack__`` takes no ``max_version``: consumers fall back to the legacy capsule."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __dlpack__(self, stream: Any = None) -> Any:
        return self.inner.__dlpack__()

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.inner.__dlpack_device__()  # type: ignore[no-any-return]


def test_same_pointer_every_call_and_it_is_the_arrow_buffer() -> None:
    img = image()
    view = img.tensor_view(t=1, z=2)
    caps = [view.to_dlpack(mode="arrow") for _ in range(3)] + [view.to_dlpack()]  # arrow is the CPU default
    assert isinstance(caps[0], DLPackTensor)
    assert len({c.data_ptr for c in caps}) == 1
    buf = arrow_base(img.to_numpy())
    assert isinstance(buf, pa.Buffer) and buf.address % 64 == 0
    assert caps[0].data_ptr == buf.address + (1 * 3 * 4 + 2 * 4) * 40 * 56 * 2  # t=1, z=2, c=0 of TZCYX uint16
    out = np.from_dlpack(caps[0])
    assert out.ctypes.data == caps[0].data_ptr
    assert view.is_arrow_backed and arrow_base(view.to_numpy()) is buf


@st.composite
def strided_request(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """Only ranges (views): ints, forward slices and crops, and a layout keeping every multi-index axis."""
    kwargs: dict[str, Any] = {}
    for ax, n in zip("tzc", (2, 3, 4)):
        kind = draw(st.sampled_from(["all", "int", "slice"]))
        if kind == "int":
            kwargs[ax] = draw(st.integers(0, n - 1))
        elif kind == "slice":
            start = draw(st.integers(0, n - 1))
            kwargs[ax] = slice(start, draw(st.integers(start + 1, n)), draw(st.integers(1, 2)))
    y0, x0 = draw(st.integers(0, 39)), draw(st.integers(0, 55))
    kwargs["roi"] = (x0, y0, draw(st.integers(1, 56 - x0)), draw(st.integers(1, 40 - y0)))
    layout = "".join(draw(st.permutations(AXES)))
    return kwargs, layout


@settings(max_examples=80, deadline=None)
@given(request=strided_request())
def test_crops_and_layouts_export_without_copy(request: tuple[dict[str, Any], str]) -> None:
    kwargs, layout = request
    img = image()
    view = img.tensor_view(layout=layout, **kwargs)
    arr = view.to_numpy()
    assert arrow_base(arr) is arrow_base(img.to_numpy())  # a view of the image's own buffer
    assert view.strides == tuple(s // 2 for s in arr.strides)
    out = np.from_dlpack(view.to_dlpack())
    assert out.ctypes.data == arr.ctypes.data and out.strides == arr.strides
    np.testing.assert_array_equal(out, arr)


def test_torch_shares_memory_and_strides() -> None:
    torch = pytest.importorskip("torch")
    img = image()
    view = img.tensor_view(t=1, z=0, roi=(3, 5, 20, 10), layout="YXC")
    t = torch.from_dlpack(view.to_dlpack(), copy=False)  # zero-copy is asked for explicitly
    assert t.data_ptr() == view.to_numpy().ctypes.data
    assert tuple(t.stride()) == view.strides and tuple(t.shape) == view.shape
    assert t.dtype == torch.uint16
    np.testing.assert_array_equal(t.numpy(), view.to_numpy())


def test_gathers_and_reversed_selections_are_copied_once_into_arrow_memory() -> None:
    img = image()
    for kwargs in ({"c": [2, 0], "t": 0, "z": 0}, {"t": slice(None, None, -1), "z": 0, "layout": "TCYX"}):
        view = img.tensor_view(**kwargs)
        cap = view.to_dlpack()
        assert cap.data_ptr % 64 == 0 and arrow_base(np.asarray(cap)) is not None
        assert not np.shares_memory(np.from_dlpack(cap), img.to_numpy())
        assert min(np.from_dlpack(cap).strides) > 0
        np.testing.assert_array_equal(np.from_dlpack(cap), view.to_numpy())


def test_torch_gets_reversed_selections_without_crashing() -> None:
    """torch aborts the whole process on negative DLPack strides, so this runs in a child process."""
    pytest.importorskip("torch")
    code = textwrap.dedent("""
        import numpy as np, torch
        from ome_arrow_core import OMEArrow
        a = np.arange(2 * 3 * 4 * 5 * 6, dtype=np.uint16).reshape(2, 3, 4, 5, 6)
        view = OMEArrow(a, "TZCYX").tensor_view(t=slice(None, None, -1), z=0, c=slice(None, None, -2), layout="TCYX")
        for copy in (None, False):
            t = torch.from_dlpack(view.to_dlpack(), copy=copy)
            assert np.array_equal(t.numpy(), a[::-1, 0, ::-2]), "wrong values"
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_keep_alive_after_view_and_image_are_gone() -> None:
    img = image()
    view = img.tensor_view(t=1, z=2, roi=(7, 9, 30, 20), layout="CYX")
    expected = np.array(view.to_numpy())
    consumers = [np.from_dlpack(view.to_dlpack())]
    torch = None
    try:
        import torch
    except ImportError:
        pass
    if torch is not None:
        consumers.append(torch.from_dlpack(view.to_dlpack(), copy=False))
    del view, img
    gc.collect()
    np.zeros(10_000_000, np.uint8).fill(0xFF)  # churn memory a little
    for out in consumers:
        np.testing.assert_array_equal(np.asarray(out), expected)


def test_keep_alive_of_scanned_reads(tmp_path: Path) -> None:
    a = np.random.default_rng(0).integers(0, 65535, size=(3, 64, 80), dtype=np.uint16)
    path = tmp_path / "k.ome.parquet"
    OMEArrow(a, "CYX").export("parquet", path)
    scan = OMEArrow.scan(path)
    out = np.from_dlpack(scan.tensor_view(c=1, layout="YX").to_dlpack())
    del scan
    gc.collect()
    np.testing.assert_array_equal(out, a[1])


def test_versioned_capsules_are_read_only() -> None:
    view = image().tensor_view(t=0, z=0)
    out = np.from_dlpack(view.to_dlpack())
    assert not out.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        out[0, 0, 0] = 1
    cap = view.to_dlpack().__dlpack__(max_version=(1, 0))
    assert "dltensor_versioned" in repr(cap)
    assert not np.from_dlpack(view).flags.writeable  # the view itself is a producer too


def test_legacy_capsules_alias_the_same_memory() -> None:
    img = image()
    view = img.tensor_view(t=1, z=1, roi=(2, 2, 10, 10))
    cap = view.to_dlpack()
    legacy = cap.__dlpack__()  # no max_version: what older consumers ask for
    assert "dltensor" in repr(legacy) and "versioned" not in repr(legacy)
    out = np.from_dlpack(LegacyOnly(cap))
    assert out.ctypes.data == cap.data_ptr
    np.testing.assert_array_equal(out, view.to_numpy())
    copied = np.from_dlpack(
        LegacyOnly(
            type(
                "C",
                (),
                {
                    "__dlpack__": lambda self, **kw: cap.__dlpack__(copy=True),
                    "__dlpack_device__": lambda self: (1, 0),
                },
            )()
        )
    )
    assert copied.ctypes.data != cap.data_ptr
    np.testing.assert_array_equal(copied, view.to_numpy())


def test_torch_takes_legacy_capsules_zero_copy() -> None:
    torch = pytest.importorskip("torch")
    view = image().tensor_view(t=1, z=1, roi=(2, 2, 10, 10))
    t = torch.utils.dlpack.from_dlpack(view.to_dlpack().__dlpack__())
    assert t.data_ptr() == view.to_numpy().ctypes.data
    np.testing.assert_array_equal(t.numpy(), view.to_numpy())


def test_other_devices_are_refused_by_the_cpu_capsule() -> None:
    cap = image().tensor_view(t=0, z=0).to_dlpack()
    assert cap.__dlpack_device__() == (1, 0)
    with pytest.raises(BufferError, match="lives on the CPU"):
        cap.__dlpack__(dl_device=(2, 0))


def test_numpy_mode_is_a_writable_copy() -> None:
    img = image()
    view = img.tensor_view(t=0, z=0, layout="YXC")
    out = np.from_dlpack(view.to_dlpack(mode="numpy"))
    assert out.flags.writeable and not np.shares_memory(out, img.to_numpy())
    out[...] = 0
    assert img.to_numpy()[0, 0].any()  # the image is untouched
    c = np.from_dlpack(view.to_dlpack(mode="numpy", contiguous=True))
    assert c.flags.c_contiguous and c.flags.writeable


def test_contiguous_requests_copy_only_when_needed() -> None:
    img = image()
    plane = img.tensor_view(t=0, z=0)  # CYX of one t and z: already contiguous
    assert plane.is_contiguous
    assert plane.to_dlpack(contiguous=True).data_ptr == plane.to_dlpack().data_ptr
    hwc = img.tensor_view(t=0, z=0, layout="HWC")
    assert not hwc.is_contiguous
    cap = hwc.to_dlpack(contiguous=True)
    out = np.from_dlpack(cap)
    assert out.flags.c_contiguous and cap.data_ptr % 64 == 0 and not out.flags.writeable
    np.testing.assert_array_equal(out, hwc.to_numpy())
    assert hwc.to_numpy(contiguous=True).flags.c_contiguous


def test_views_are_read_only_even_after_a_cast() -> None:
    img = image()
    for view in (img.tensor_view(t=0, z=0), img.tensor_view(t=0, z=0, dtype="float32"), img.tensor_view(c=[1, 0])):
        assert not view.to_numpy().flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            view.to_numpy()[(0,) * view.ndim] = 1
    assert not img.to_numpy().flags.writeable


def test_numpy_protocols_share_memory() -> None:
    view = image().tensor_view(t=0, z=0)
    assert np.shares_memory(np.asarray(view), view.to_numpy())
    assert not np.shares_memory(np.array(view, copy=True), view.to_numpy())
    assert np.asarray(view.to_dlpack()).ctypes.data == view.to_dlpack().data_ptr
    assert isinstance(view, TensorView) and view.device == "cpu" and view.__dlpack_device__() == (1, 0)
    assert view.nbytes == 4 * 40 * 56 * 2 and view.ndim == 3


@pytest.mark.parametrize("compression", [None, "lz4", "zstd"])
def test_whole_chunk_scans_are_zero_copy_views(compression: str | None, tmp_path: Path) -> None:
    a = np.random.default_rng(1).normal(size=(2, 3, 48, 64)).astype(np.float32)  # ZCYX
    path = tmp_path / "p.ome.parquet"
    # one chunk per plane, three chunks per row group: the read buffer holds more than the plane
    OMEArrow(a, "ZCYX").export("parquet", path, compression=compression, rows_per_group=3)
    scan = OMEArrow.scan(path)
    view = scan.tensor_view(z=1, c=1, layout="YX").collect()
    assert view.is_arrow_backed
    assert scan.source.chunks_read == 1
    buf = arrow_base(view.to_numpy())
    assert buf.size >= 3 * view.nbytes  # a view into what Parquet decoded, not a copy of it
    cap = view.to_dlpack()
    assert inside(buf, cap.data_ptr) and cap.data_ptr == view.to_numpy().ctypes.data
    assert np.from_dlpack(cap).ctypes.data == cap.data_ptr
    np.testing.assert_array_equal(np.from_dlpack(cap), a[1, 1])
    assert not np.from_dlpack(cap).flags.writeable


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64", "bool"])
def test_every_dtype_exports_zero_copy(dtype: str) -> None:
    a = (np.arange(2 * 12 * 10) % 7 - 3).astype(dtype).reshape(2, 12, 10)
    view = OMEArrow(a, "CYX").tensor_view(roi=(1, 2, 8, 9), layout="YXC")
    cap = view.to_dlpack()
    out = np.from_dlpack(cap)
    assert out.dtype == np.dtype(dtype) and out.ctypes.data == view.to_numpy().ctypes.data
    np.testing.assert_array_equal(out, a[:, 2:11, 1:9].transpose(1, 2, 0))
    legacy = np.from_dlpack(LegacyOnly(view.to_dlpack()))
    assert legacy.dtype == np.dtype(dtype) and legacy.ctypes.data == cap.data_ptr


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64", "bool"])
def test_every_dtype_reaches_torch_zero_copy(dtype: str) -> None:
    torch = pytest.importorskip("torch")
    a = (np.arange(2 * 12 * 10) % 7 - 3).astype(dtype).reshape(2, 12, 10)
    view = OMEArrow(a, "CYX").tensor_view(roi=(1, 2, 8, 9), layout="YXC")
    t = torch.from_dlpack(view.to_dlpack(), copy=False)
    assert t.data_ptr() == view.to_numpy().ctypes.data
    np.testing.assert_array_equal(t.numpy(), a[:, 2:11, 1:9].transpose(1, 2, 0))
