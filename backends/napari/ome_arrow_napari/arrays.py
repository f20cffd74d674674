"""Lazy array-likes for napari: ``shape``, ``dtype``, ``ndim`` and ``__getitem__`` that reads only what is asked.

napari slices a layer's data plane by plane (``data[t, z, c]`` with slices over Y and X) and
calls ``np.asarray`` on the result; each such request here becomes one selection read from the
image's pixel source: only the planes (and rows, columns, strides) requested. Nothing is read
when the array is made.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from ome_arrow_core import OMEArrow, OMEArrowDataset, SchemaError, Selection

__all__ = ["ImageArray", "StackArray"]

_AXES = "TZCYX"
#: Images of a stack kept open (metadata read) at once.
_KEEP_OPEN = 8


def _index_tuple(key: Any, ndim: int) -> tuple[Any, ...]:
    """``key`` as one entry per axis: ints, slices or integer sequences (``...`` expanded)."""
    items = key if isinstance(key, tuple) else (key,)
    if sum(1 for k in items if k is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items = items[:at] + (slice(None),) * (ndim - len(items) + 1) + items[at + 1 :]
    if len(items) > ndim:
        raise IndexError(f"too many indices: the array has {ndim} axes, {len(items)} were given")
    for k in items:
        if (
            k is None
            or isinstance(k, (bool, np.bool_))
            or not isinstance(k, (int, np.integer, slice, Sequence, np.ndarray))
        ):
            raise IndexError(f"only integers, slices, '...' and integer sequences index this array, got {k!r}")
    return items + (slice(None),) * (ndim - len(items))


def _pick(base: range | tuple[int, ...], k: Any, n: int, axis: str) -> tuple[range | tuple[int, ...], bool]:
    """Absolute storage indices of index ``k`` into ``base`` (length ``n``), and whether the axis is kept."""
    if isinstance(k, (int, np.integer)):
        i = int(k)
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of bounds for axis {axis} with size {n}")
        j = base[i]
        return range(j, j + 1), False
    if isinstance(k, slice):
        return base[k], True
    picked = [int(v) for v in np.asarray(k).reshape(-1)]
    bad = [v for v in picked if not -n <= v < n]
    if bad:
        raise IndexError(f"indices {bad} are out of bounds for axis {axis} with size {n}")
    return tuple(base[v] for v in picked), True


class _Shaped:
    """``ndim``, ``size`` and ``len`` from ``shape``, as napari asks of an array-like."""

    shape: tuple[int, ...]

    @property
    def ndim(self) -> int:
        """Number of axes."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of pixels."""
        return int(np.prod(self.shape, dtype=np.int64))

    def __len__(self) -> int:
        return self.shape[0]


class ImageArray(_Shaped):
    """One image (a lazy :class:`OMEArrow`) as an array over ``axes`` (its axes of length > 1, plus Y and X)."""

    def __init__(self, image: OMEArrow, axes: str | None = None) -> None:
        self.image = image
        sizes = image.sizes
        self.axes = axes if axes is not None else "".join(a for a in _AXES if sizes[a] > 1 or a in "YX")
        self.shape: tuple[int, ...] = tuple(sizes[a] for a in self.axes)
        self.dtype = np.dtype(image.dtype)

    def __repr__(self) -> str:
        return f"ImageArray(axes={self.axes!r}, shape={self.shape}, dtype={self.dtype})"

    def __getitem__(self, key: Any) -> np.ndarray:
        items = dict(zip(self.axes, _index_tuple(key, self.ndim)))
        base = self.image.selection
        parts: dict[str, range | tuple[int, ...]] = {}
        kept: list[str] = []
        flips: list[str] = []
        for ax in _AXES:
            cur = base.axis(ax)
            idx, keep = _pick(cur, items.get(ax, 0), len(cur), ax)
            if isinstance(idx, range) and idx.step < 0:  # read forwards, then reverse
                idx = idx[::-1]
                flips.append(ax)
            parts[ax] = idx
            if keep and ax in self.axes:
                kept.append(ax)
        if any(len(parts[a]) == 0 for a in _AXES):
            return np.empty([len(parts[a]) for a in kept], dtype=self.dtype)
        y, x = parts["Y"], parts["X"]
        if not isinstance(y, range) or not isinstance(x, range):  # gathered rows or columns: read the span, then take
            return self._gathered(parts, kept, flips)
        sel = Selection(t=parts["T"], z=parts["Z"], c=parts["C"], y=y, x=x)
        return self._shaped(np.asarray(self.image.source.read(sel)), kept, flips)

    def _gathered(self, parts: dict[str, range | tuple[int, ...]], kept: list[str], flips: list[str]) -> np.ndarray:
        spans: dict[str, range] = {}
        takes: dict[str, list[int]] = {}
        for ax in "YX":
            idx = parts[ax]
            lo, hi = min(idx), max(idx) + 1
            spans[ax] = range(lo, hi)
            takes[ax] = [i - lo for i in idx]
        sel = Selection(t=parts["T"], z=parts["Z"], c=parts["C"], y=spans["Y"], x=spans["X"])
        pixels = np.asarray(self.image.source.read(sel))
        pixels = np.take(np.take(pixels, takes["Y"], axis=3), takes["X"], axis=4)
        return self._shaped(pixels, kept, flips)

    @staticmethod
    def _shaped(pixels: np.ndarray, kept: list[str], flips: list[str]) -> np.ndarray:
        index = tuple(slice(None, None, -1) if ax in flips else slice(None) for ax in _AXES)
        pixels = pixels[index]
        drop = tuple(i for i, ax in enumerate(_AXES) if ax not in kept)
        return np.squeeze(pixels, axis=drop) if drop else pixels

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = self[...]
        return out if dtype is None else out.astype(dtype)


class StackArray(_Shaped):
    """Equal images of a dataset stacked on a first axis; image ``i`` is opened when it is sliced."""

    def __init__(self, dataset: OMEArrowDataset, axes: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.dataset = dataset
        self.axes = axes
        self.shape = (len(dataset), *shape)
        self.dtype = np.dtype(dtype)
        self._open: OrderedDict[int, ImageArray] = OrderedDict()

    def image(self, i: int) -> ImageArray:
        """Image ``i`` as an :class:`ImageArray` (the last few opened are kept, so paging through
        planes does not reopen them)."""
        got = self._open.pop(i, None)
        if got is None:
            got = ImageArray(self.dataset[i], self.axes)
            if got.shape != self.shape[1:] or got.dtype != self.dtype:
                raise SchemaError(
                    f"image {i} of the dataset is {got.shape} {got.dtype}, the stack is of "
                    f"{self.shape[1:]} {self.dtype}: the dataset changed since it was opened"
                )
        self._open[i] = got
        while len(self._open) > _KEEP_OPEN:
            self._open.popitem(last=False)
        return got

    def __repr__(self) -> str:
        return f"StackArray(images={self.shape[0]}, axes={self.axes!r}, shape={self.shape}, dtype={self.dtype})"

    def __getitem__(self, key: Any) -> np.ndarray:
        first, *rest = _index_tuple(key, self.ndim)
        n = self.shape[0]
        if isinstance(first, (int, np.integer)):
            if not -n <= int(first) < n:
                raise IndexError(f"image {int(first)} is out of bounds: the dataset holds {n} images")
            return self.image(int(first) % n)[tuple(rest)]
        picked = range(n)[first] if isinstance(first, slice) else [int(v) for v in np.asarray(first).reshape(-1)]
        parts = [self.image(int(i) % n)[tuple(rest)] for i in picked]
        if not parts:
            probe = self.image(0)[tuple(rest)]
            return np.empty((0, *probe.shape), dtype=self.dtype)
        return np.stack(parts)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = self[...]
        return out if dtype is None else out.astype(dtype)
