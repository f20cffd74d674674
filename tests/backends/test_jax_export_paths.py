"""to_jax's three paths: zero-copy import of aligned compact memory (writable or not), JAX's own copy of small
strided views, and numpy's copy into aligned memory for large ones; lifetime and read-only intent on each."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("ome_arrow_jax")

import pyarrow as pa  # noqa: E402

from ome_arrow_core import OMEArrow, OMEArrowDataset, TensorView, write_dataset  # noqa: E402
from ome_arrow_jax.export import ALIGNMENT, SMALL_COPY  # noqa: E402


def _pointer(arr: Any) -> int:
    return int(arr.unsafe_buffer_pointer())


def _source(shape: tuple[int, ...] = (2, 3, 2, 40, 48), dtype: str = "uint16") -> np.ndarray:
    return np.random.default_rng(3).integers(0, 250, size=shape).astype(dtype)


def _mapped(tmp: Path, data: np.ndarray) -> pa.Buffer:
    """An immutable, page-aligned Arrow buffer of ``data``'s bytes (a memory-mapped file)."""
    path = tmp / "pixels.bin"
    path.write_bytes(data.tobytes())
    buf = pa.memory_map(str(path), "r").read_buffer(data.nbytes)
    assert not buf.is_mutable and buf.address % ALIGNMENT == 0
    return buf


def test_immutable_aligned_memory_is_imported_without_a_copy(tmp_path: Path) -> None:
    data = _source((5, 64, 32), "float32")
    view = TensorView(np.frombuffer(_mapped(tmp_path, data), dtype=np.float32).reshape(data.shape), "ZYX")
    out = view.to_jax()
    assert _pointer(out) == view.to_numpy().ctypes.data
    assert not view.to_numpy().flags.writeable  # still read-only on our side
    del view
    gc.collect()
    np.testing.assert_array_equal(np.asarray(out), data)


@pytest.mark.parametrize("layout", ["TZCYX", "YXC"], ids=["c_order", "transposed"])
def test_writable_aligned_memory_is_aliased_and_stays_read_only(layout: str) -> None:
    src = _source()
    img = OMEArrow(src, "TZCYX")
    view = img.tensor_view(layout=layout) if layout == "TZCYX" else img.tensor_view(t=1, z=0, layout=layout)
    arr = view.to_numpy()
    out = view.to_jax()
    assert _pointer(out) == arr.ctypes.data
    assert not arr.flags.writeable and not view.to_numpy().flags.writeable
    expected = np.array(arr)
    del img, view, arr
    gc.collect()
    junk = [np.full((64, 64), 9, np.uint16) for _ in range(64)]
    np.testing.assert_array_equal(np.asarray(out), expected)
    del junk


@pytest.mark.parametrize("roi", [(3, 5, 9, 7), (1, 1, 46, 38)], ids=["tiny", "most"])
def test_small_strided_views_are_copied_once(roi: tuple[int, int, int, int]) -> None:
    src = _source()
    view = OMEArrow(src, "TZCYX").tensor_view(t=1, z=2, roi=roi, layout="CYX")
    assert view.nbytes <= SMALL_COPY and not view.is_contiguous
    out = view.to_jax()
    x, y, w, h = roi
    np.testing.assert_array_equal(np.asarray(out), src[1, 2, :, y : y + h, x : x + w])
    assert _pointer(out) != view.to_numpy().ctypes.data and _pointer(out) % ALIGNMENT == 0


def test_large_strided_views_are_copied_once_into_aligned_memory() -> None:
    gc.collect()
    start = pa.total_allocated_bytes()
    src = _source((1, 1, 2, 640, 512))
    view = OMEArrow(src, "TZCYX").tensor_view(c=1, roi=(10, 20, 480, 600), layout="YX")
    assert view.nbytes > SMALL_COPY and not view.is_contiguous
    out = view.to_jax()
    np.testing.assert_array_equal(np.asarray(out), src[0, 0, 1, 20:620, 10:490])
    assert _pointer(out) != view.to_numpy().ctypes.data and _pointer(out) % ALIGNMENT == 0
    del view
    gc.collect()
    copied = pa.total_allocated_bytes() - start
    assert copied >= 480 * 600 * 2, "the copy JAX imported was freed under it"
    del out
    gc.collect()
    assert pa.total_allocated_bytes() - start < 480 * 600 * 2, "the copy leaked"


def test_large_transposed_views_with_contiguous_are_copied_in_c_order() -> None:
    src = _source((1, 1, 3, 300, 200))
    view = OMEArrow(src, "TZCYX").tensor_view(t=0, z=0, layout="YXC")
    assert view.nbytes > SMALL_COPY
    out = view.to_jax(contiguous=True)
    assert _pointer(out) != view.to_numpy().ctypes.data
    np.testing.assert_array_equal(np.asarray(out), src[0, 0].transpose(1, 2, 0))


def test_file_lazy_and_dataset_views_outlive_their_images(tmp_path: Path) -> None:
    src = _source()
    path = tmp_path / "img.ome.parquet"
    OMEArrow(src, "TZCYX").export("parquet", path)
    ds = write_dataset([src], tmp_path / "ds", dim_order="TZCYX", progress=False)
    views = {
        "file": OMEArrow(path).tensor_view(t=1, z=2, layout="CYX"),
        "lazy": OMEArrow.scan(path).tensor_view(t=1, z=2, layout="CYX"),
        "dataset": OMEArrowDataset.scan(ds)[0].tensor_view(t=1, z=2, roi=(2, 3, 30, 20), layout="CYX"),
    }
    outs = {k: v.to_jax() for k, v in views.items()}
    del views
    gc.collect()
    junk = [np.full((64, 64), 9, np.uint16) for _ in range(64)]
    np.testing.assert_array_equal(np.asarray(outs["file"]), src[1, 2])
    np.testing.assert_array_equal(np.asarray(outs["lazy"]), src[1, 2])
    np.testing.assert_array_equal(np.asarray(outs["dataset"]), src[1, 2, :, 3:23, 2:32])
    np.testing.assert_array_equal(OMEArrow.scan(path).tensor_view(layout="TZCYX").to_numpy(), src)
    del junk
