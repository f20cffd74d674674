"""Torch tensors never write into the image: to_torch() and torch.from_dlpack copy shared memory.

Torch has no read-only tensors and drops DLPack's read-only flag, so a zero-copy tensor
would let ``x += 1`` in a transform change what every later view reads. The safe default
is a private copy; zero-copy is what ``to_torch(mode="arrow")`` and
``torch.from_dlpack(..., copy=False)`` ask for explicitly.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ome_arrow_torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ome_arrow_core import OMEArrow, TensorView  # noqa: E402
from ome_arrow_core.dlpack import IGNORES_READ_ONLY, export_capsule  # noqa: E402

SHAPE = (2, 3, 2, 17, 23)  # TZCYX


def _source(dtype: str = "int16") -> np.ndarray:
    return (np.arange(np.prod(SHAPE)) % 251 - 100).astype(dtype).reshape(SHAPE)


def _scribble(t: torch.Tensor) -> None:
    """An in-place edit that changes every element (works for every dtype, uint16 included)."""
    t.copy_(torch.from_numpy(np.logical_not(t.numpy()).astype(t.numpy().dtype)))


class _Capsule:
    """Hands a ready-made capsule to a consumer (for legacy capsules)."""

    def __init__(self, capsule: Any) -> None:
        self.capsule = capsule

    def __dlpack__(self, **_: Any) -> Any:
        return self.capsule

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)


EXPORTS: dict[str, Callable[[TensorView], torch.Tensor]] = {
    "to_torch": lambda v: v.to_torch(),
    "to_torch_contiguous": lambda v: v.to_torch(contiguous=True),
    "from_dlpack_view": lambda v: torch.from_dlpack(v),
    "from_dlpack_capsule": lambda v: torch.from_dlpack(v.to_dlpack()),
    "from_dlpack_arrow": lambda v: torch.from_dlpack(v.to_dlpack(mode="arrow", contiguous=True)),
    "from_dlpack_copy": lambda v: torch.from_dlpack(v.to_dlpack(), copy=True),
}


def test_torch_is_the_consumer_we_copy_for() -> None:
    """If torch moves ``from_dlpack``, the copy would silently stop: this canary fails first."""
    assert torch.from_dlpack.__module__ in IGNORES_READ_ONLY


@pytest.mark.parametrize("export", sorted(EXPORTS))
@pytest.mark.parametrize("dtype", ["int16", "uint16", "float32", "bool", "uint8"])
def test_in_place_edits_never_reach_the_image(export: str, dtype: str) -> None:
    src = _source(dtype)
    img = OMEArrow(src, "TZCYX")
    view = img.tensor_view(t=1, z=2, roi=(3, 4, 11, 9), layout="YXC")
    expected = np.array(view.to_numpy())
    t = EXPORTS[export](view)
    assert t.data_ptr() != view.to_numpy().ctypes.data
    np.testing.assert_array_equal(t.numpy(), expected)
    _scribble(t)
    assert not np.array_equal(t.numpy(), expected)
    np.testing.assert_array_equal(view.to_numpy(), expected)
    np.testing.assert_array_equal(img.tensor_view(t=1, z=2, roi=(3, 4, 11, 9), layout="YXC").to_numpy(), expected)
    np.testing.assert_array_equal(img.tensor_view(layout="TZCYX").to_numpy(), src)  # the whole image: untouched


@settings(max_examples=40, deadline=None)
@given(data=st.data(), export=st.sampled_from(sorted(EXPORTS)), layout=st.sampled_from(["TZCYX", "YXC", "ZYX", "YX"]))
def test_no_export_writes_into_any_later_view(data: st.DataObject, export: str, layout: str) -> None:
    src = _source()
    img = OMEArrow(src, "TZCYX")
    kw: dict[str, Any] = {"layout": layout}
    for ax, n in zip("tzc", SHAPE[:3]):
        if ax.upper() not in layout:
            kw[ax] = data.draw(st.integers(0, n - 1))
    x, y = data.draw(st.integers(0, 22)), data.draw(st.integers(0, 16))
    kw["roi"] = (x, y, data.draw(st.integers(1, 23 - x)), data.draw(st.integers(1, 17 - y)))
    view = img.tensor_view(**kw)
    _scribble(EXPORTS[export](view))
    np.testing.assert_array_equal(img.tensor_view(layout="TZCYX").to_numpy(), src)
    np.testing.assert_array_equal(img.tensor_view(**kw).to_numpy(), view.to_numpy())


def test_tiles_and_lazy_reads_of_a_file_stay_intact(tmp_path: Path) -> None:
    src = _source("uint16")
    path = tmp_path / "w.ome.parquet"
    OMEArrow(src, "TZCYX").export("parquet", path)
    lazy = OMEArrow.scan(path).tensor_view(t=0, z=1, layout="CYX")
    first = lazy.to_torch()
    _scribble(first)
    for tile in lazy.iter_dlpack(tile_size=(8, 8), prefetch=2):
        _scribble(torch.from_dlpack(tile))
    _scribble(torch.from_dlpack(lazy.collect()))
    np.testing.assert_array_equal(lazy.to_numpy(), src[0, 1])  # the collected result is cached: still intact
    np.testing.assert_array_equal(OMEArrow.scan(path).tensor_view(t=0, z=1, layout="CYX").to_numpy(), src[0, 1])


def test_explicit_zero_copy_aliases_the_image() -> None:
    """What the opt-in promises (and why it must be read-only by contract)."""
    img = OMEArrow(_source(), "TZCYX")
    view = img.tensor_view(t=0, z=0)
    ptr = view.to_numpy().ctypes.data
    assert view.to_torch(mode="arrow").data_ptr() == ptr
    assert torch.from_dlpack(view.to_dlpack(), copy=False).data_ptr() == ptr
    assert torch.from_dlpack(view, copy=False).data_ptr() == ptr


def test_writable_copies_are_not_copied_again() -> None:
    view = OMEArrow(_source(), "TZCYX").tensor_view(t=0, z=0)
    cap = view.to_dlpack(mode="numpy")
    assert torch.from_dlpack(cap).data_ptr() == cap.data_ptr


def test_to_torch_copies_of_gathers_and_reversals() -> None:
    src = _source()
    img = OMEArrow(src, "TZCYX")
    for kw, expected in (
        ({"t": 0, "z": 0, "c": [1, 0]}, src[0, 0, [1, 0]]),
        ({"t": slice(None, None, -1), "z": 1, "layout": "TCYX"}, src[::-1, 1]),
    ):
        t = img.tensor_view(**kw).to_torch()
        np.testing.assert_array_equal(t.numpy(), expected)
        _scribble(t)
    np.testing.assert_array_equal(img.tensor_view(layout="TZCYX").to_numpy(), src)


@pytest.mark.parametrize("max_version", [None, (1, 0)])
def test_capsules_for_torch_are_copies_unless_copy_false(max_version: tuple[int, int] | None) -> None:
    arr = _source()[0, 0]
    arr.flags.writeable = False
    for consumer, copy, aliased in (
        ("torch.utils.dlpack", None, False),
        ("torch.utils.dlpack", False, True),
        ("numpy", None, True),  # honours the read-only flag (versioned), or was told to (legacy)
    ):
        cap = export_capsule(arr, consumer, max_version=max_version, copy=copy)
        out = np.from_dlpack(_Capsule(cap))
        np.testing.assert_array_equal(out, arr)
        assert (out.ctypes.data == arr.ctypes.data) is aliased
    writable = np.array(arr)
    cap = export_capsule(writable, "torch.utils.dlpack", max_version=max_version)
    assert np.from_dlpack(_Capsule(cap)).ctypes.data == writable.ctypes.data  # nothing to protect: no copy
