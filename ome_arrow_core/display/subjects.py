"""What a thumbnail is drawn from: an image, a lazy view or an eager view, as a pixel source and a selection."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ArgumentError
from ..handlers import PixelSource
from ..layout import AXES, normalize_axes
from ..meta import ImageMeta
from ..selection import Selection
from ..sources import ArraySource
from .html import image_facts

__all__ = ["source_of", "canonical", "facts_of"]


def canonical(array: np.ndarray, layout: str) -> np.ndarray:
    """``array`` in ``layout`` as a ``TZCYX`` view (axes the layout lacks get length 1)."""
    order = normalize_axes(layout)
    if "Y" not in order or "X" not in order:
        raise ArgumentError(f"a thumbnail needs Y and X; layout {layout!r} lacks "
                            f"{' and '.join(a for a in 'YX' if a not in order)}")
    present = [a for a in AXES if a in order]
    arr = np.transpose(array, [order.index(a) for a in present])
    return arr.reshape([arr.shape[present.index(a)] if a in present else 1 for a in AXES])


def source_of(obj: Any) -> tuple[PixelSource, Selection]:
    """The pixel source and selection of an OMEArrow image, a LazyTensorView or a TensorView.

    A view shows its selection (its T, Z, C and crop) whatever its layout; an eager view's
    pixels carry no channel metadata, so its channels take the default colours.
    """
    from ..image import OMEArrow
    from ..lazy import LazyTensorView
    from ..view import TensorView

    if isinstance(obj, (OMEArrow, LazyTensorView)):
        return obj.source, obj.selection
    if isinstance(obj, TensorView):
        pixels = canonical(obj.to_numpy(), obj.layout)
        meta = ImageMeta(sizes=dict(zip(AXES, pixels.shape)), dtype=pixels.dtype)
        return ArraySource(meta, pixels, "view"), Selection.full(meta.sizes)
    raise ArgumentError(f"a thumbnail is drawn from an OMEArrow image or a tensor view, not {type(obj).__name__}")


def facts_of(obj: Any) -> dict[str, str]:
    """What the HTML block says about ``obj``: an image's metadata, or a view's layout, shape and selection."""
    from ..image import OMEArrow

    if isinstance(obj, OMEArrow):
        return {**image_facts(obj.meta), "lazy": str(obj.is_lazy)}
    facts = {"view": type(obj).__name__, "layout": str(obj.layout), "shape": " × ".join(map(str, obj.shape)),
             "dtype": np.dtype(obj.dtype).name}
    selection = getattr(obj, "selection", None)
    if selection is not None:
        facts["selection"] = repr(selection)
    return facts
