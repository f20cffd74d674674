"""An image (or a band of its planes) packed as chunk rows: every chunk's bytes in one Arrow buffer, each checksummed.

:func:`chunk_payload` cuts the pixels; :class:`Piece` holds the result until
:class:`~.packing.ChunkPacker` batches it into a chunk table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..buffers import arrow_empty
from ..checksums import ALGORITHM, checker, checksums_of
from ..chunks import ChunkTable
from .write_threads import start_parts

__all__ = ["Piece", "chunk_payload"]


def chunk_payload(pixels: np.ndarray, table: ChunkTable) -> tuple[pa.LargeBinaryArray, int, np.ndarray]:
    """All chunks' bytes in one Arrow buffer (one memcpy pass), as a large_binary array, and each chunk's checksum."""
    tczyx = pixels.transpose(0, 2, 1, 3, 4)
    if len(table) == 1 and tczyx.shape == tuple(table.shape[0]):  # one chunk, the whole image (small images)
        data, buf = arrow_empty((tczyx.nbytes,), np.dtype(np.uint8))
        np.copyto(data.view(pixels.dtype).reshape(tczyx.shape), tczyx)
        offsets = np.array([0, tczyx.nbytes], dtype=np.int64)
        arr = pa.LargeBinaryArray.from_buffers(pa.large_binary(), 1, [None, pa.py_buffer(offsets), buf])
        return arr, tczyx.nbytes, checksums_of(data, offsets)
    sizes = np.prod(table.shape, axis=1) * pixels.dtype.itemsize
    offsets = np.zeros(len(table) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    data, buf = arrow_empty((int(offsets[-1]),), np.dtype(np.uint8))
    origin, shape = table.origin.tolist(), table.shape.tolist()

    checksum = checker(ALGORITHM, "")
    bounds = offsets.tolist()

    def part(a: int, b: int) -> np.ndarray:  # chunks a..b, each copied, then checksummed while still in cache
        sums = np.empty(b - a, dtype=np.uint64)
        for i in range(a, b):
            (t, c, z, y, x), (st, sc, sz, sy, sx) = origin[i], shape[i]
            chunk = data[bounds[i] : bounds[i + 1]]
            np.copyto(
                chunk.view(pixels.dtype).reshape(st, sc, sz, sy, sx),
                tczyx[t : t + st, c : c + sc, z : z + sz, y : y + sy, x : x + sx],
            )
            sums[i - a] = checksum(chunk)
        return sums

    sums = np.concatenate(start_parts(len(table), int(offsets[-1]), part)())
    arr = pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(table), [None, pa.py_buffer(offsets), buf])
    return arr, int(offsets[-1]), sums


@dataclass(frozen=True)
class Piece:
    """Packed chunk rows of one image (or one band of it), waiting to be written."""

    image_id: str
    dtype: str
    origin: np.ndarray  # (n, 5) TCZYX
    shape: np.ndarray  # (n, 5)
    payload: pa.LargeBinaryArray
    nbytes: int
    checksum: np.ndarray  # (n,) uint64, of each chunk's bytes
    #: A whole image small enough to share a row group with its neighbours (see :data:`SMALL_IMAGE_BYTES`).
    small: bool = False
