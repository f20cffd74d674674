"""What a thumbnail is drawn from: the pixel source and selection an image or a view shows, and its default size."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ArgumentError
from ..handlers import PixelSource
from ..layout import AXES, normalize_axes
from ..meta import ImageMeta
from ..selection import Selection
from ..sources import ArraySource

__all__ = ["canonical", "array_source", "view_facts", "DEFAULT_SIZE"]

#: Longest side of a thumbnail, in pixels, unless ``size=`` says otherwise.
DEFAULT_SIZE = 256


def canonical(array: np.ndarray, layout: str) -> np.ndarray:
    """``array`` in ``layout`` as a ``TZCYX`` view (axes the layout lacks get length 1)."""
    order = normalize_axes(layout)
    if "Y" not in order or "X" not in order:
        raise ArgumentError(
            f"a thumbnail needs Y and X; layout {layout!r} lacks {' and '.join(a for a in 'YX' if a not in order)}"
        )
    present = [a for a in AXES if a in order]
    arr = np.transpose(array, [order.index(a) for a in present])
    return arr.reshape([arr.shape[present.index(a)] if a in present else 1 for a in AXES])


def array_source(array: np.ndarray, layout: str) -> tuple[PixelSource, Selection]:
    """An eager view's pixels as a source: no channel metadata, so its channels take the default colours."""
    pixels = canonical(array, layout)
    meta = ImageMeta(sizes=dict(zip(AXES, pixels.shape)), dtype=pixels.dtype)
    return ArraySource(meta, pixels, "view"), Selection.full(meta.sizes)


def view_facts(view: Any) -> dict[str, str]:
    """What the HTML block says about a view: its kind, layout, shape, dtype and (lazy) selection."""
    facts = {
        "view": type(view).__name__,
        "layout": str(view.layout),
        "shape": " × ".join(map(str, view.shape)),
        "dtype": np.dtype(view.dtype).name,
    }
    selection = getattr(view, "selection", None)
    if selection is not None:
        facts["selection"] = repr(selection)
    return facts
