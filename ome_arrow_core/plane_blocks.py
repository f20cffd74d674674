"""Reading an image a block of planes at a time, for writers that must not read it whole.

A writer of a format laid out plane by plane (a TIFF's pages, a Vortex file's rows) asks for the image's YX
planes in T, Z, C order; one laid out in chunks of several Z (OME-Zarr) takes blocks of whole chunk depths.
:class:`PlaneBlocks` reads one time point's planes of a few Z at a time (about :data:`BLOCK_BYTES`, at least
one Z's channels, or one chunk depth's with ``z_align``) and serves the planes of the block it holds
(:meth:`~PlaneBlocks.plane`) or the blocks themselves in order (:meth:`~PlaneBlocks.blocks`): a write holds one
block in memory, not the image (an image larger than memory converts), and small planes are not read one by one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from .errors import ArgumentError

if TYPE_CHECKING:
    from .image import OMEArrow

__all__ = ["BLOCK_BYTES", "PlaneBlocks"]

#: Bytes of the image a :class:`PlaneBlocks` reads at once, unless told otherwise (at least one Z's channels).
BLOCK_BYTES = 32 << 20


class PlaneBlocks:
    """The YX planes of ``image``, read ``z_step`` Z (all channels) of one time point at a time.

    ``block_bytes``: the budget of a block (default :data:`BLOCK_BYTES`); ``z_align``: ``z_step`` is a multiple of
    it (a chunk depth: blocks of whole chunks), or the image's whole Z when that is less.
    """

    def __init__(self, image: OMEArrow, block_bytes: int | None = None, *, z_align: int = 1) -> None:
        if isinstance(z_align, bool) or not isinstance(z_align, (int, np.integer)) or z_align < 1:
            raise ArgumentError(f"PlaneBlocks(z_align={z_align!r}): expected a positive int (a chunk depth in Z)")
        sizes = image.meta.sizes
        per_z = sizes["C"] * sizes["Y"] * sizes["X"] * np.dtype(image.meta.dtype).itemsize
        budget = BLOCK_BYTES if block_bytes is None else block_bytes
        align = int(z_align)
        self._image = image
        self._sizes = (sizes["T"], sizes["Z"])
        #: Z planes (with all their channels) read at once.
        self.z_step = min(sizes["Z"], align * max(1, budget // max(1, align * per_z)))
        self._held: tuple[tuple[int, int], np.ndarray] | None = None  # ((t, first z), its ZCYX block)

    def _read(self, t: int, first: int) -> np.ndarray:
        """The ZCYX block of time point ``t`` from Z ``first``."""
        block: np.ndarray = self._image.tensor_view(t=t, z=slice(first, first + self.z_step), layout="ZCYX").to_numpy()
        return block

    def plane(self, t: int, z: int, c: int) -> np.ndarray:
        """The YX plane ``(t, z, c)``, from the block held or from the block read for it (the one held is
        dropped first)."""
        first = z - z % self.z_step
        held = self._held
        if held is None or held[0] != (t, first):
            self._held = held = None
            self._held = held = ((t, first), self._read(t, first))
        plane: np.ndarray = held[1][z - first, c]
        return plane

    def blocks(self) -> Iterator[tuple[int, range, np.ndarray]]:
        """Every block in T, Z order, each read once and not held here: its time point, its Z range and its ZCYX
        pixels."""
        n_t, n_z = self._sizes
        for t in range(n_t):
            for first in range(0, n_z, self.z_step):
                yield t, range(first, min(n_z, first + self.z_step)), self._read(t, first)
