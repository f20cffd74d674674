"""Zero-copy and keep-alive guarantees of to_dlpack(mode="arrow"); copies where they are promised."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from ome_arrow_core import OMEArrow
from ome_arrow_core.buffers import arrow_base


def image() -> OMEArrow:
    return OMEArrow(np.arange(2 * 3 * 64 * 48, dtype=np.uint16).reshape(2, 3, 64, 48), dim_order="TCYX")


def test_same_memory_every_call_and_it_is_the_arrow_buffer() -> None:
    view = image().tensor_view(t=1, z=0)
    a, b = view.to_dlpack(), view.to_dlpack()
    assert a.data_ptr == b.data_ptr == view.to_numpy().ctypes.data
    buf = arrow_base(view.to_numpy())
    assert isinstance(buf, pa.Buffer)
    assert buf.address <= a.data_ptr < buf.address + buf.size
    assert buf.address % 64 == 0


@pytest.mark.parametrize(("kwargs", "layout"), [
    ({"t": 0, "z": 0, "roi": (5, 7, 20, 30)}, "CYX"),
    ({"t": 1, "z": 0}, "YXC"),
    ({"c": slice(None, None, 2)}, "TZCYX"),
    ({"t": 0, "z": 0, "c": 1, "roi": (1, 2, 3, 4)}, "XY"),
])
def test_strided_selections_export_without_copy(kwargs: dict[str, object], layout: str) -> None:
    img = image()
    view = img.tensor_view(layout=layout, **kwargs)  # type: ignore[arg-type]
    out = np.from_dlpack(view.to_dlpack())
    assert out.ctypes.data == view.to_numpy().ctypes.data
    assert out.strides == view.to_numpy().strides
    assert arrow_base(view.to_numpy()).address == arrow_base(img.to_numpy()).address  # the image's own buffer
    np.testing.assert_array_equal(out, view.to_numpy())


def test_keep_alive_after_view_and_image_are_gone() -> None:
    view = image().tensor_view(t=1, z=0, roi=(3, 3, 10, 10))
    expected = np.array(view.to_numpy())
    out = np.from_dlpack(view.to_dlpack())
    del view
    gc.collect()
    np.testing.assert_array_equal(out, expected)


def test_read_only_and_legacy_capsules() -> None:
    view = image().tensor_view(t=0, z=0)
    out = np.from_dlpack(view.to_dlpack())
    assert not out.flags.writeable
    with pytest.raises(ValueError):
        out[0, 0, 0] = 1
    cap = view.to_dlpack().__dlpack__()  # legacy, unversioned: what JAX asks for
    assert "dltensor" in repr(cap)
    np.testing.assert_array_equal(np.from_dlpack(view), view.to_numpy())  # the view itself is a DLPack producer


def test_numpy_mode_is_a_writable_copy_and_gathers_copy_into_arrow() -> None:
    img = image()
    view = img.tensor_view(t=0, z=0)
    out = np.from_dlpack(view.to_dlpack(mode="numpy"))
    assert out.flags.writeable and out.ctypes.data != view.to_numpy().ctypes.data
    gathered = img.tensor_view(c=[2, 0], t=0, z=0)
    exp = gathered.to_dlpack()
    assert arrow_base(exp._array) is not None  # the gathered copy lives in Arrow memory
    assert exp.data_ptr % 64 == 0
    contiguous = img.tensor_view(t=0, z=0, layout="YXC").to_dlpack(contiguous=True)
    assert np.from_dlpack(contiguous).flags.c_contiguous


def test_whole_chunk_reads_from_parquet_are_zero_copy(tmp_path: Path) -> None:
    a = np.arange(3 * 40 * 50, dtype=np.float32).reshape(3, 40, 50)
    OMEArrow(a, dim_order="CYX").export("parquet", tmp_path / "p.ome.parquet")  # one chunk per plane
    view = OMEArrow.scan(tmp_path / "p.ome.parquet").tensor_view(c=1, layout="YX").collect()
    assert view.is_arrow_backed
    assert np.from_dlpack(view.to_dlpack()).ctypes.data == view.to_numpy().ctypes.data
    np.testing.assert_array_equal(view.to_numpy(), a[1])


def test_torch_and_jax_share_memory() -> None:
    torch = pytest.importorskip("torch")
    view = image().tensor_view(t=1, z=0, roi=(2, 2, 8, 8))
    t = torch.from_dlpack(view.to_dlpack())
    assert t.data_ptr() == view.to_numpy().ctypes.data and t.dtype == torch.uint16
    jnp = pytest.importorskip("jax.numpy")
    full = image().tensor_view(t=0, z=0)
    j = jnp.from_dlpack(full.to_dlpack())
    assert j.unsafe_buffer_pointer() == full.to_numpy().ctypes.data
