"""A dataset at a glance: thumbnails of its first images with their ids and metadata columns.

:class:`DatasetThumbnails` gives datasets ``thumbnails()``, ``_repr_png_`` and ``_repr_html_``; an image that
cannot be read shows its error (a dark red cell in the PNG) and the others are still drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy as np

from ..errors import OMEArrowError
from .html import figure
from .png import encode_png
from .rendering import render

__all__ = ["GRID_IMAGES", "GRID_SIZE", "Cell", "cells", "mosaic", "grid_html", "DatasetThumbnails"]

#: Images shown (the first ones), and the longest side of each of their thumbnails.
GRID_IMAGES = 12
GRID_SIZE = 128
#: Metadata columns shown under each thumbnail (the first ones of ``extra_columns``).
_COLUMNS = 4
_GAP = 4
_BACKGROUND = 24
#: A cell whose image could not be read is filled with this colour in the mosaic.
_FAILED = (96, 0, 0)


class DatasetLike(Protocol):
    """What the grid needs of a dataset."""

    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> Any: ...
    def metadata(self, i: int) -> dict[str, Any]: ...
    @property
    def extra_columns(self) -> list[str]: ...


@dataclass(frozen=True)
class Cell:
    """One image of the grid: its thumbnail (None when it could not be read), caption and error."""

    picture: np.ndarray | None
    caption: list[str]
    failure: OMEArrowError | None = None

    @property
    def error(self) -> str | None:
        """The failure as one line (type and message), None when the image was drawn."""
        return None if self.failure is None else f"{type(self.failure).__name__}: {self.failure}"


def cells(ds: DatasetLike, k: int = GRID_IMAGES, size: int = GRID_SIZE) -> list[Cell]:
    """The first ``k`` images of ``ds`` rendered; an image that cannot be read gets its error instead."""
    out = []
    extras = list(ds.extra_columns)[:_COLUMNS]
    for i in range(min(k, len(ds))):
        row = ds.metadata(i)
        image_id = row.get("image_id")
        caption = [f"{i}: {image_id}" if image_id is not None else str(i)] + [f"{c}={row.get(c)}" for c in extras]
        try:
            img = ds[i]
            out.append(Cell(render(img.source, img.selection, size=size), caption))
        except OMEArrowError as exc:
            out.append(Cell(None, caption, exc))
    return out


def mosaic(grid: list[Cell], size: int = GRID_SIZE) -> np.ndarray:
    """The cells' thumbnails in rows of up to four, ``size`` pixels apart, as one RGB uint8 picture."""
    cols = max(1, min(4, len(grid)))
    rows = max(1, math.ceil(len(grid) / cols))
    out = np.full((rows * (size + _GAP) + _GAP, cols * (size + _GAP) + _GAP, 3), _BACKGROUND, dtype=np.uint8)
    for n, cell in enumerate(grid):
        top, left = _GAP + (n // cols) * (size + _GAP), _GAP + (n % cols) * (size + _GAP)
        if cell.picture is None:
            out[top : top + size, left : left + size] = _FAILED
        else:
            h, w = cell.picture.shape[:2]
            out[top : top + h, left : left + w] = cell.picture
    return out


def grid_html(grid: list[Cell], total: int) -> str:
    """The cells as HTML figures, with a line saying how many images the dataset holds."""
    figures = "".join(
        figure(None if c.picture is None else encode_png(c.picture), c.caption, error=c.error) for c in grid
    )
    head = f"<div style='font-size:12px'>OMEArrowDataset: {total} image(s); the first {len(grid)} shown</div>"
    return f"<div>{head}<div>{figures}</div></div>"


class DatasetThumbnails:
    """A grid of a dataset's first images: ``thumbnails()``, ``_repr_png_`` and ``_repr_html_``."""

    __slots__ = ()

    def thumbnails(self, k: int = GRID_IMAGES, size: int = GRID_SIZE) -> np.ndarray:
        """The first ``k`` images' thumbnails (longest side ``size``) in rows of four, as one RGB uint8
        picture; an image that cannot be read is a dark red cell."""
        return mosaic(cells(cast(DatasetLike, self), k, size), size)

    def _repr_png_(self) -> bytes:
        return encode_png(self.thumbnails())

    def _repr_html_(self) -> str:
        return str(self._repr_mimebundle_()["text/html"])

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        ds = cast(DatasetLike, self)
        grid = cells(ds, GRID_IMAGES, GRID_SIZE)
        return {"text/html": grid_html(grid, len(ds)), "image/png": encode_png(mosaic(grid, GRID_SIZE))}
