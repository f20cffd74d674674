"""to_torch on every kind of view: the default copy never writes into the image, and the zero-copy mode aliases
the view's memory, keeps it alive and leaves it read-only on our side.

Kinds: an in-memory image, a struct-record file and a typed-chunk file opened eagerly, a lazy (scanned) view,
a crop of a dataset image, a window of a view, and strided, gathered and reversed selections.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ome_arrow_torch")

import pyarrow as pa  # noqa: E402

from ome_arrow_core import OMEArrow, OMEArrowDataset, TensorView, write_dataset  # noqa: E402
from ome_arrow_torch.export import capsule_importer  # noqa: E402

SHAPE = (2, 3, 2, 19, 23)  # TZCYX
SEL: dict[str, Any] = {"t": 1, "z": 2, "roi": (3, 4, 11, 9), "layout": "YXC"}


def _source(dtype: str = "uint16", seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 200, size=SHAPE).astype(dtype)


def _scribble(t: torch.Tensor) -> None:
    """``t += 1`` in the tensor's memory, for every dtype (torch has no uint16 add: through ``t.numpy()``, the
    same memory; bool flips): every element changes."""
    mem = t.numpy()
    if mem.dtype == np.bool_:
        np.logical_not(mem, out=mem)
    else:
        mem += 1


#: kind -> (tmp_path, src) -> (make the view, read the whole image afresh). Each view selects SEL's pixels.
Kind = Callable[[Path, np.ndarray], tuple[Callable[[], Any], Callable[[], np.ndarray]]]


def _memory(tmp: Path, src: np.ndarray) -> tuple[Callable[[], Any], Callable[[], np.ndarray]]:
    img = OMEArrow(src, "TZCYX")
    return lambda: img.tensor_view(**SEL), lambda: img.tensor_view(layout="TZCYX").to_numpy()


def _file(layout: str | None) -> Kind:
    def make(tmp: Path, src: np.ndarray) -> tuple[Callable[[], Any], Callable[[], np.ndarray]]:
        path = tmp / "img.ome.parquet"
        OMEArrow(src, "TZCYX").export("parquet", path, **({"layout": layout} if layout else {}))
        img = OMEArrow(path)
        return lambda: img.tensor_view(**SEL), lambda: OMEArrow(path).tensor_view(layout="TZCYX").to_numpy()

    return make


def _lazy(tmp: Path, src: np.ndarray) -> tuple[Callable[[], Any], Callable[[], np.ndarray]]:
    path = tmp / "img.ome.parquet"
    OMEArrow(src, "TZCYX").export("parquet", path)
    img = OMEArrow.scan(path)
    return lambda: img.tensor_view(**SEL), lambda: OMEArrow.scan(path).tensor_view(layout="TZCYX").to_numpy()


def _dataset(tmp: Path, src: np.ndarray) -> tuple[Callable[[], Any], Callable[[], np.ndarray]]:
    out = write_dataset([_source(seed=9), src], tmp / "ds", dim_order="TZCYX", progress=False)
    ds = OMEArrowDataset.scan(out)
    return lambda: ds[1].tensor_view(**SEL), lambda: OMEArrowDataset.scan(out)[1].tensor_view(layout="TZCYX").to_numpy()


def _window(tmp: Path, src: np.ndarray) -> tuple[Callable[[], Any], Callable[[], np.ndarray]]:
    img = OMEArrow(src, "TZCYX")
    sel = {k: v for k, v in SEL.items() if k != "roi"}

    def view() -> TensorView:
        x, y, w, h = SEL["roi"]
        return img.tensor_view(**sel).select_window(Y=range(y, y + h), X=range(x, x + w))

    return view, lambda: img.tensor_view(layout="TZCYX").to_numpy()


KINDS: dict[str, Kind] = {
    "memory": _memory,
    "record_file": _file("record"),
    "typed_file": _file(None),
    "lazy": _lazy,
    "dataset_crop": _dataset,
    "window": _window,
}

EXPORTS: dict[str, Callable[[Any], torch.Tensor]] = {
    "to_torch": lambda v: v.to_torch(),
    "to_torch_contiguous": lambda v: v.to_torch(contiguous=True),
    "from_dlpack": lambda v: torch.from_dlpack(v.to_dlpack()),
}


def _pixels_of(view: Any) -> np.ndarray:
    return view.collect().to_numpy() if hasattr(view, "collect") else view.to_numpy()


@pytest.mark.parametrize("export", sorted(EXPORTS))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_default_exports_never_write_into_any_later_read(tmp_path: Path, kind: str, export: str) -> None:
    src = _source()
    view_of, whole = KINDS[kind](tmp_path, src)
    expected = src[1, 2, :, 4:13, 3:14].transpose(1, 2, 0)  # SEL's pixels, YXC
    view = view_of()
    np.testing.assert_array_equal(view.to_numpy(), expected)
    t = EXPORTS[export](view)
    assert t.data_ptr() != _pixels_of(view).ctypes.data
    _scribble(t)
    _scribble(EXPORTS[export](view))  # a second export of the same (lazy: collected) view
    assert not np.array_equal(t.numpy(), expected)
    np.testing.assert_array_equal(view.to_numpy(), expected)  # the same view, read again
    np.testing.assert_array_equal(view_of().to_numpy(), expected)  # a new view of the same image
    np.testing.assert_array_equal(whole(), src)  # the whole image, read afresh


@pytest.mark.parametrize(
    "sel",
    [
        {"t": slice(0, 2), "z": slice(0, 3, 2), "c": 1, "layout": "TZYX", "roi": (2, 1, 9, 7)},  # steps
        {"t": 0, "z": [2, 0], "layout": "ZCYX"},  # a gather
        {"t": slice(None, None, -1), "z": 1, "layout": "TCYX"},  # reversed
        {"t": 1, "layout": "XYCZ"},  # a permutation
    ],
    ids=["stepped", "gathered", "reversed", "permuted"],
)
def test_strided_selections_stay_intact(sel: dict[str, Any]) -> None:
    src = _source("int16")
    img = OMEArrow(src, "TZCYX")
    view = img.tensor_view(**sel)
    expected = np.array(view.to_numpy())
    for t in (view.to_torch(), view.to_torch(contiguous=True), torch.from_dlpack(view)):
        _scribble(t)
    np.testing.assert_array_equal(view.to_numpy(), expected)
    np.testing.assert_array_equal(img.tensor_view(**sel).to_numpy(), expected)
    np.testing.assert_array_equal(img.tensor_view(layout="TZCYX").to_numpy(), src)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_zero_copy_aliases_and_outlives_every_kind_of_view(tmp_path: Path, kind: str) -> None:
    src = _source("float32")
    view_of, _ = KINDS[kind](tmp_path, src)
    view = view_of()
    arr = _pixels_of(view)
    t = view.to_torch(mode="arrow")
    assert t.data_ptr() == arr.ctypes.data, "mode='arrow' copied"
    assert tuple(t.stride()) == tuple(s // arr.itemsize for s in arr.strides)
    assert not arr.flags.writeable and not view.to_numpy().flags.writeable  # read-only on our side still
    expected = np.array(arr)
    del view, view_of, arr
    gc.collect()
    junk = [np.full((64, 64), 7, np.float32) for _ in range(64)]  # would reuse freed memory
    np.testing.assert_array_equal(t.numpy(), expected)
    del junk


def test_zero_copy_keeps_the_arrow_buffer_alive_until_the_tensor_goes() -> None:
    gc.collect()
    start = pa.total_allocated_bytes()
    size = 8 * 128 * 128 * 4
    img = OMEArrow(np.random.default_rng(1).random((8, 128, 128), dtype=np.float32), "ZYX")
    view = img.tensor_view(z=3, roi=(5, 6, 70, 50))
    t = view.to_torch(mode="arrow")
    del img, view
    gc.collect()
    assert pa.total_allocated_bytes() - start >= size, "the Arrow buffer was freed under the tensor"
    del t
    gc.collect()
    assert pa.total_allocated_bytes() - start < size, "the tensor leaked the Arrow buffer"


def test_zero_copy_of_immutable_memory() -> None:
    """Memory nothing may write (an Arrow buffer over ``bytes``): aliased all the same, and kept alive."""
    data = np.arange(6 * 8, dtype=np.int16).reshape(6, 8)
    buf = pa.py_buffer(data.tobytes())
    assert not buf.is_mutable
    view = TensorView(np.frombuffer(buf, dtype=np.int16).reshape(6, 8)[1:5, 2:7], "YX")
    t = view.to_torch(mode="arrow")
    assert t.data_ptr() == view.to_numpy().ctypes.data
    del view, buf
    gc.collect()
    np.testing.assert_array_equal(t.numpy(), data[1:5, 2:7])
    copy = TensorView(np.frombuffer(pa.py_buffer(data.tobytes()), dtype=np.int16).reshape(6, 8), "YX").to_torch()
    _scribble(copy)  # the default copy is writable memory of its own
    np.testing.assert_array_equal(copy.numpy(), data + 1)


def test_zero_copy_of_reversed_and_gathered_views() -> None:
    src = _source("int16")
    img = OMEArrow(src, "TZCYX")
    reversed_ = img.tensor_view(t=slice(None, None, -1), z=1, layout="TCYX")
    t = reversed_.to_torch(mode="arrow")  # torch cannot hold negative strides: one copy, no crash
    np.testing.assert_array_equal(t.numpy(), src[::-1, 1])
    assert all(s >= 0 for s in t.stride())
    gathered = img.tensor_view(t=0, z=[2, 0], layout="ZCYX")  # a gather is the view's own array: aliased
    g = gathered.to_torch(mode="arrow")
    assert g.data_ptr() == gathered.to_numpy().ctypes.data
    np.testing.assert_array_equal(g.numpy(), src[0, [2, 0]])


def test_the_capsule_importer_aliases_like_torch_from_dlpack() -> None:
    """The importer used (torch's C importer when it passes the probe) gives what torch.from_dlpack gives."""
    importer = capsule_importer()
    arr = _source("float32")[1, 2, 0, 3:9, 4:15]
    arr.flags.writeable = False
    for fn in (importer, torch.utils.dlpack.from_dlpack):
        t = fn(arr.__dlpack__(max_version=(1, 0)))
        assert t.data_ptr() == arr.ctypes.data and tuple(t.shape) == arr.shape
        assert tuple(t.stride()) == tuple(s // arr.itemsize for s in arr.strides)
        np.testing.assert_array_equal(t.numpy(), arr)
    assert not arr.flags.writeable
