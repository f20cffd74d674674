"""A small PNG decoder for the display tests (8-bit grey/RGB/RGBA, all five row filters), stdlib only.

Independent of the encoder under test: it parses chunks, checks every CRC and undoes any filter.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SAMPLES = {0: 1, 4: 2, 2: 3, 6: 4}


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def decode_png(data: bytes | Path) -> np.ndarray:
    """The pixels of an 8-bit, non-interlaced PNG as ``(H, W, S)`` uint8; AssertionError on anything wrong."""
    raw = data.read_bytes() if isinstance(data, Path) else data
    assert raw[:8] == SIGNATURE, "not a PNG signature"
    pos, idat, header = 8, b"", None
    kinds = []
    while pos < len(raw):
        (length,) = struct.unpack(">I", raw[pos : pos + 4])
        kind, body = raw[pos + 4 : pos + 8], raw[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", raw[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, f"bad CRC in {kind!r}"
        kinds.append(kind)
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and pos == len(raw), kinds
    assert header is not None
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and interlace == 0 and color in _SAMPLES
    s = _SAMPLES[color]
    rows = zlib.decompress(idat)
    stride = width * s
    assert len(rows) == height * (stride + 1)
    out = np.zeros((height, stride), dtype=np.int64)
    for y in range(height):
        kind = rows[y * (stride + 1)]
        line = np.frombuffer(rows, np.uint8, stride, y * (stride + 1) + 1).astype(np.int64)
        prev = out[y - 1] if y else np.zeros(stride, np.int64)
        cur = out[y]
        if kind == 0:
            cur[:] = line
            continue
        for x in range(stride):
            a = int(cur[x - s]) if x >= s else 0
            b, c = int(prev[x]), (int(prev[x - s]) if x >= s else 0)
            pred = (0, a, b, (a + b) // 2, _paeth(a, b, c))[kind]
            cur[x] = (int(line[x]) + pred) & 0xFF
    return out.astype(np.uint8).reshape(height, width, s)
