"""One view for a batch of images: each image's selection, and the layout, dtype and shape they must share."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np

from ..arguments import whole_numbers
from ..errors import ArgumentError, SchemaError, SelectionError
from ..layout import normalize_axes
from ..meta import ImageMeta
from ..selection import Selection
from ..view_spec import ViewSpec, channels_read
from .views import layout_shape

__all__ = ["BatchPlan", "MixedDtypes", "plan_batch", "checked_out", "different_shapes", "OutArray"]

#: Where a batched read puts its result: an array, a function ``(shape, dtype) -> array`` that
#: gives one once the shape is known (a pooled or pinned buffer), or None for a new array.
OutArray: TypeAlias = np.ndarray | Callable[[tuple[int, ...], np.dtype], np.ndarray] | None


class MixedDtypes(SchemaError):
    """The images of a batch are stored in different dtypes: ``dtypes`` has each one's (in batch order), so a read
    that casts them all to one can read each dtype's images together."""

    def __init__(self, message: str, dtypes: list[np.dtype]) -> None:
        super().__init__(message)
        self.dtypes = dtypes

    def __reduce__(self) -> tuple[type[MixedDtypes], tuple[str, list[np.dtype]]]:
        # pickled with both arguments: raised in a worker (Ray task, dask process) it reaches the caller as itself
        return type(self), (str(self), self.dtypes)


@dataclass(frozen=True)
class BatchPlan:
    """What a batched read reads: one selection per image, in one layout, of one dtype."""

    selections: list[Selection]
    layout: str
    dtype: np.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        """The stacked result's shape: the batch, then one image's selection in :attr:`layout`."""
        return (len(self.selections), *layout_shape(self.selections[0], self.layout))


def plan_batch(
    view: ViewSpec,
    keys: Sequence[Hashable],
    meta_of: Callable[[int], ImageMeta],
    rois: Sequence[Sequence[int] | None] | None,
    paths: Callable[[], list[str]],
    indices: Sequence[int] | None = None,
) -> BatchPlan:
    """The selections of ``view`` for images ``0..len(keys)-1`` (``rois``: one crop each, within the view).

    Images with equal ``keys`` share their metadata (``meta_of(n)`` is asked for the first of each);
    ``paths()`` names the files when their dtypes or shapes differ, ``indices`` the images in a SelectionError (their
    dataset indices; default: their places in the batch). SchemaError when layouts, dtypes or shapes differ.
    """
    if rois is not None and len(rois) != len(keys):
        raise ArgumentError(f"rois has {len(rois)} entries for {len(keys)} images; give one per image")
    bases: dict[Hashable, tuple[Selection, str, np.dtype]] = {}
    sels: list[Selection] = []
    for n, key in enumerate(keys):
        try:
            base = bases.get(key)
            if base is None:
                meta = meta_of(n)
                sel0 = view.selection(Selection.full(meta.sizes), meta)
                lay = normalize_axes(view.layout_for(sel0))
                base = bases[key] = (channels_read(sel0, lay, view.channel_policy), lay, meta.dtype)
            crop = rois[n] if rois is not None else None
            if crop is None:
                sels.append(base[0])
            else:
                x0, y0, w, h = whole_numbers(crop, f"rois[{n}]=(x, y, w, h)")
                sels.append(base[0].select(y=range(y0, y0 + h), x=range(x0, x0 + w)))
        except SelectionError as exc:  # which of the batch's images it does not fit (a bad argument is no image's)
            if isinstance(exc, (ArgumentError, TypeError)):
                raise
            raise type(exc)(f"image {n if indices is None else indices[n]}: {exc}") from exc
    layouts = {b[1] for b in bases.values()}
    dtypes = {b[2] for b in bases.values()}
    if len(dtypes) > 1:
        raise MixedDtypes(
            f"the images have different dtypes {sorted(d.name for d in dtypes)} (in {', '.join(paths())}); "
            "pass dtype= to read them as one, or read them one by one",
            [bases[key][2] for key in keys],
        )
    if len(layouts) > 1:
        raise SchemaError(f"the images' default layouts differ ({sorted(layouts)}); pass layout=")
    shapes = {s.shape for s in {id(s): s for s in sels}.values()}  # images of one base share its selection
    if len(shapes) > 1:
        raise different_shapes(shapes, f" (TZCYX; in {', '.join(paths())})")
    return BatchPlan(sels, layouts.pop(), dtypes.pop())


def different_shapes(shapes: Iterable[tuple[int, ...]], where: str = "") -> SchemaError:
    """The error of a batch whose images' selections have different ``shapes`` (``where``: their axes and files)."""
    return SchemaError(
        f"the selected images have different shapes {sorted(shapes)}{where}; crop them to a common shape with roi= "
        "(or rois=), or read them one by one"
    )


def checked_out(out: OutArray, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """``out`` (or what ``out(shape, dtype)`` gives) if it is a writable ``shape`` array of ``dtype``
    (ArgumentError if not: an argument, not a file, is wrong); a new one when None."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        if not callable(out):
            raise ArgumentError(
                f"out must be a writable {shape} {dtype} numpy array or a function (shape, dtype) -> array, "
                f"got {type(out).__name__}"
            )
        out = out(shape, np.dtype(dtype))
        if not isinstance(out, np.ndarray):
            raise ArgumentError(f"out({shape}, {dtype}) must give a numpy array, got {type(out).__name__}")
    if out.shape != shape or out.dtype != dtype or not out.flags.writeable:
        writable = "" if out.flags.writeable else " read-only"
        raise ArgumentError(
            f"out must be a writable {shape} {dtype} array, got a{writable} {out.shape} {out.dtype} one"
        )
    return out
