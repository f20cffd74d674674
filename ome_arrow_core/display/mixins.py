"""Notebook display of images and views: ``_repr_png_``, ``_repr_html_`` and ``thumbnail()``.

Jupyter asks an object for every representation it has; ``_repr_mimebundle_`` answers PNG and
HTML from one rendering. When the pixels cannot be read (a damaged or missing file), the HTML
shows the error in place of the thumbnail and no PNG is offered; ``_repr_png_`` and
``thumbnail()`` raise it. A dataset's grid is :class:`.grid.DatasetThumbnails`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ArgumentError, OMEArrowError
from ..handlers import PixelSource
from ..selection import Selection
from .subjects import DEFAULT_SIZE, view_facts

__all__ = ["Thumbnailed", "thumbnail", "thumbnail_png"]

# The renderer (.rendering) and the PNG encoder (.png) load when a thumbnail is drawn: an image's class carries these
# methods, and a read never draws.


def thumbnail(obj: Any, size: int = DEFAULT_SIZE, *, t: int = 0) -> np.ndarray:
    """An ``(h, w, 3)`` uint8 RGB thumbnail of an image or view (see :mod:`.rendering`)."""
    if not isinstance(obj, Thumbnailed):
        raise ArgumentError(f"a thumbnail is drawn from an OMEArrow image or a tensor view, not {type(obj).__name__}")
    from .rendering import render

    source, sel = obj._shown()
    return render(source, sel, size=size, t=t)


def thumbnail_png(obj: Any, size: int = DEFAULT_SIZE, *, t: int = 0) -> bytes:
    """:func:`thumbnail` as PNG bytes."""
    from .png import encode_png

    return encode_png(thumbnail(obj, size, t=t))


class Thumbnailed:
    """Thumbnails for OMEArrow images and tensor views."""

    __slots__ = ()

    def _shown(self) -> tuple[PixelSource, Selection]:
        """The pixel source and selection the picture shows (a view: its selection, whatever its layout)."""
        raise NotImplementedError

    def _facts(self) -> dict[str, str]:
        """What the HTML block lists beside the picture."""
        return view_facts(self)

    def thumbnail(self, size: int = DEFAULT_SIZE, *, t: int = 0) -> np.ndarray:
        """An ``(h, w, 3)`` uint8 RGB picture: max over Z at T index ``t``, channels in their colours,
        robust auto-contrast, longest side at most ``size`` (docs/display.md)."""
        return thumbnail(self, size, t=t)

    def _repr_png_(self) -> bytes:
        return thumbnail_png(self)

    def _repr_html_(self) -> str:
        return str(self._repr_mimebundle_()["text/html"])

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from .html import facts_table, figure  # loaded when a notebook draws, not to read pixels

        png: bytes | None = None
        error = None
        try:
            png = thumbnail_png(self)
        except OMEArrowError as exc:
            error = f"{type(exc).__name__}: {exc}"
        cell = figure(png, [], error=error)
        page = f"<div style='display:flex;gap:12px;align-items:flex-start'>{cell}{facts_table(self._facts())}</div>"
        return {"text/html": page} if png is None else {"text/html": page, "image/png": png}
