"""Reading an image a block of planes at a time, for writers that take it plane by plane.

A writer of a format laid out plane by plane (a TIFF's pages, a Vortex file's rows) asks for the image's YX
planes in T, Z, C order. :class:`PlaneBlocks` reads one time point's planes of a few Z at a time (about
:data:`BLOCK_BYTES`, at least one Z's channels) and serves the planes of the block it holds: a write holds one
block in memory, not the image (an image larger than memory converts), and small planes are not read one by one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .image import OMEArrow

__all__ = ["BLOCK_BYTES", "PlaneBlocks"]

#: Bytes of the image a :class:`PlaneBlocks` reads at once, unless told otherwise (at least one Z's channels).
BLOCK_BYTES = 32 << 20


class PlaneBlocks:
    """The YX planes of ``image``, read ``z_step`` Z (all channels) of one time point at a time."""

    def __init__(self, image: OMEArrow, block_bytes: int | None = None) -> None:
        sizes = image.meta.sizes
        per_z = sizes["C"] * sizes["Y"] * sizes["X"] * np.dtype(image.meta.dtype).itemsize
        budget = BLOCK_BYTES if block_bytes is None else block_bytes
        self._image = image
        #: Z planes (with all their channels) read at once.
        self.z_step = max(1, min(sizes["Z"], budget // max(1, per_z)))
        self._held: tuple[tuple[int, int], np.ndarray] | None = None  # ((t, first z), its ZCYX block)

    def plane(self, t: int, z: int, c: int) -> np.ndarray:
        """The YX plane ``(t, z, c)``, from the block held or from the block read for it (the one held is
        dropped first)."""
        first = z - z % self.z_step
        held = self._held
        if held is None or held[0] != (t, first):
            self._held = held = None
            block = self._image.tensor_view(t=t, z=slice(first, first + self.z_step), layout="ZCYX").to_numpy()
            self._held = held = ((t, first), block)
        plane: np.ndarray = held[1][z - first, c]
        return plane
