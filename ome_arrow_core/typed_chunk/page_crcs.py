"""CRC-32 page checksums of a directly written chunks file (:mod:`.direct_chunks`), for a batch of pages at once.

Parquet's page ``crc`` is the CRC-32 of the page's bytes after its header (definition levels, then values),
stored as a thrift i32. Small pages repeat (the same dtype, image id...), so each distinct one is computed once;
one-row pages of a fixed-width column come from table lookups (CRC-32 is affine in the message bits). The pixel
pages' CRC-32 is the largest single cost of writing an uncompressed image (about a sixth of its CPU time with
``zlib.crc32``): where ``isal`` is installed (the ``fast`` extra), :func:`crc32` is ISA-L's, the same function,
3x faster.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["crc32", "page_crcs", "fixed_width_crcs"]


@functools.cache
def _crc32() -> Callable[[Any, int], int]:
    import importlib

    try:
        fast: Callable[[Any, int], int] = importlib.import_module("isal.isal_zlib").crc32
    except ImportError:
        return zlib.crc32
    return fast


def crc32(data: Any, value: int = 0) -> int:
    """CRC-32 of ``data`` continuing ``value``: ``zlib.crc32``'s, computed by ISA-L where ``isal`` is installed."""
    return _crc32()(data, value)


def _signed(crc: np.ndarray) -> np.ndarray:
    """CRC-32 values (uint32) as thrift i32."""
    return crc.astype(np.uint32).view(np.int32).astype(np.int64)


def page_crcs(levels: list[bytes], values: list[bytes], after: list[list[memoryview]] | None = None) -> np.ndarray:
    """CRC-32 of each page's data (levels, values, then the bytes written after them), as thrift i32. Small
    pages repeat (the same dtype, image id...): each distinct one is computed once."""
    out = np.empty(len(levels), dtype=np.uint32)
    seen: dict[tuple[bytes, bytes], int] = {}
    fn = _crc32()
    for i, (lv, v) in enumerate(zip(levels, values)):
        crc = seen.get((lv, v))
        if crc is None:
            crc = seen[lv, v] = fn(v, fn(lv, 0))
        for b in after[i] if after is not None else ():
            crc = fn(b, crc)
        out[i] = crc
    return _signed(out)


@functools.lru_cache(maxsize=8)
def _crc_table(prefix: bytes, width: int) -> tuple[int, np.ndarray]:
    """CRC-32 of ``prefix`` + ``width`` zero bytes, and what each byte value at each of those positions flips in
    it: (width, 256) uint32 (CRC-32 is affine in the message bits)."""
    zero = bytes(len(prefix) + width)
    z = zlib.crc32(zero)
    table = np.empty((width, 256), dtype=np.uint32)
    for j in range(width):
        at = len(prefix) + j
        table[j] = [zlib.crc32(zero[:at] + bytes((b,)) + zero[at + 1 :]) ^ z for b in range(256)]
    return zlib.crc32(prefix + bytes(width)), table


def fixed_width_crcs(levels: list[bytes], counts: np.ndarray, first: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """CRC-32 (thrift i32) of each page of a fixed-width column: levels, then the group's rows (``rows``:
    (rows, width) bytes); one-row groups by table lookups, all at once."""
    out = np.empty(len(counts), dtype=np.uint32)
    one = np.flatnonzero(counts == 1)
    if len(one):
        base, table = _crc_table(levels[int(one[0])], rows.shape[1])
        crc = np.full(len(one), base, dtype=np.uint32)
        vals = rows[first[one]]
        for j in range(rows.shape[1]):
            crc ^= table[j, vals[:, j]]
        out[one] = crc
    for i in np.flatnonzero(counts != 1).tolist():
        a, n = int(first[i]), int(counts[i])
        out[i] = crc32(rows[a : a + n].tobytes(), crc32(levels[i]))
    return _signed(out)
