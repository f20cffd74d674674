"""PNG encoding with the standard library only (zlib and struct): no matplotlib or PIL needed."""

from __future__ import annotations

import struct
import zlib

import numpy as np

from ..errors import ArgumentError

__all__ = ["encode_png", "PNG_SIGNATURE"]

#: The eight bytes every PNG file starts with.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG colour type by the number of samples per pixel: grey, grey+alpha, RGB, RGBA.
_COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}


def _chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data and the CRC-32 of type and data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(pixels: np.ndarray, *, level: int = 6) -> bytes:
    """``pixels`` (uint8, ``(H, W)`` grey or ``(H, W, S)`` with S = 1 to 4 samples) as PNG bytes.

    8 bits per sample, no interlacing, filter type 0 on every row, zlib ``level`` compression.
    """
    arr = np.asarray(pixels)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in _COLOR_TYPE or 0 in arr.shape[:2]:
        raise ArgumentError(
            f"encode_png takes a non-empty uint8 (H, W) or (H, W, 1-4) array, got {arr.dtype} {arr.shape}"
        )
    height, width, samples = arr.shape
    rows = np.empty((height, 1 + width * samples), dtype=np.uint8)
    rows[:, 0] = 0  # filter type "None"
    rows[:, 1:] = arr.reshape(height, width * samples)
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPE[samples], 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows.tobytes(), level))
        + _chunk(b"IEND", b"")
    )
