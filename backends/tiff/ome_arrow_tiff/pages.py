"""The pages a TIFF writer writes, read from the image a block at a time.

A TZCYX image is written one YX plane a page, in T, Z, C order (each pyramid level likewise, in SubIFDs).
:class:`Pages` takes each page from a block of the image (``plugin_api.PlaneBlocks``: one time point's planes of
a few Z) when tifffile asks for it, and again when the file is read back to compare, so a write holds one block
and a page's reductions in memory, not the image: an image larger than memory converts. Level ``k``'s plane is
level 0's halved ``k`` times (:func:`.levels.downsample`, which works plane by plane, so the levels are those a
whole-image pyramid gives).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

import numpy as np

from ome_arrow_core.plugin_api import PlaneBlocks

from .levels import downsample

if TYPE_CHECKING:
    from ome_arrow_core import OMEArrow

__all__ = ["Pages"]


class Pages:
    """The planes of ``image`` and of its ``levels - 1`` reductions, as pages (``byteorder``: the file's)."""

    def __init__(self, image: OMEArrow, levels: int, byteorder: Literal["<", ">", "="] = "=") -> None:
        sizes = image.meta.sizes
        self._index = [(t, z, c) for t in range(sizes["T"]) for z in range(sizes["Z"]) for c in range(sizes["C"])]
        #: The pixels' dtype in the file's byte order (what tifffile takes from an iterator).
        self.dtype = np.dtype(image.meta.dtype).newbyteorder(byteorder)
        y, x = sizes["Y"], sizes["X"]
        self._blocks = PlaneBlocks(image)
        #: Each level's TZCYX shape.
        self.shapes: list[tuple[int, ...]] = []
        for _ in range(levels):
            self.shapes.append((sizes["T"], sizes["Z"], sizes["C"], y, x))
            y, x = -(-y // 2), -(-x // 2)

    def __len__(self) -> int:
        """Pages a level has."""
        return len(self._index)

    @property
    def nbytes(self) -> int:
        """The pixel bytes of every level together."""
        return sum(int(np.prod(s)) for s in self.shapes) * self.dtype.itemsize

    def plane(self, level: int, page: int) -> np.ndarray:
        """Page ``page`` of level ``level``: a YX plane of the image (reduced ``level`` times)."""
        arr = self._blocks.plane(*self._index[page])
        for _ in range(level):
            arr = downsample(arr)
        return arr

    def items(self, level: int, tile: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
        """What tifffile's ``data=`` iterator yields for level ``level``: each page in the file's byte order, or
        with ``tile``, each page's tiles in row-major order (edge tiles short: tifffile pads them)."""
        for page in range(len(self)):
            plane = self.plane(level, page).astype(self.dtype, copy=False)
            if tile is None:
                yield plane
                continue
            h, w = tile
            for y in range(0, plane.shape[0], h):
                for x in range(0, plane.shape[1], w):
                    yield plane[y : y + h, x : x + w]
