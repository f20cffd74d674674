"""Rows of an uncompressed, contiguous TIFF page, read straight from the file (one read per plane)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import tifffile

__all__ = ["read_raw_rows"]


def read_raw_rows(
    tif: tifffile.TiffFile,
    offset: int,
    shaped: tuple[int, int, int, int, int],
    file_dtype: np.dtype,
    y0: int,
    y1: int,
    into: np.ndarray | None = None,
) -> np.ndarray:
    """Rows y0:y1 of the page at ``offset`` of ``tif``, shaped (S, D, Y, X, S) as tifffile's ``shaped``.

    ``into``, when given, is a C-contiguous array of the rows' size that receives them.
    """
    ss, depth, ny, nx, sc = shaped
    row = nx * sc * file_dtype.itemsize
    shape = (ss, depth, y1 - y0, nx, sc)
    if into is None:
        out = np.empty(shape, file_dtype.newbyteorder("="))
    elif into.flags.c_contiguous and into.size == math.prod(shape):
        out = into.reshape(shape)
    else:
        raise ValueError(f"rows need a C-contiguous target of shape {shape}")
    fh = tif.filehandle
    with fh.lock:
        for s in range(ss):
            for d in range(depth):
                fh.seek(offset + ((s * depth + d) * ny + y0) * row)
                fh.read_array(file_dtype, out[s, d].size, out=out[s, d])
    return out
