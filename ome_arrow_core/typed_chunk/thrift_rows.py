"""Thrift compact-protocol bytes for many similar structs at once: one per row group of a Parquet file.

A Parquet writer emits, per row group, the same structs (page headers, ``ColumnChunk`` entries of the footer)
that differ only in a few numbers and byte strings. Here each such struct is described once as a list of
segments: constant bytes, or one value per row (a varint, or a byte string); :func:`assemble` lays the rows
out one after another in one numpy pass per segment, instead of encoding each struct in Python.

Field headers use the short form (delta 1-15 from the previous field id), so the constants below are the
literal bytes of the compact protocol (``(delta << 4) | type``), written next to the fields they open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

__all__ = [
    "I16",
    "I32",
    "I64",
    "BINARY",
    "LIST",
    "STRUCT",
    "STOP",
    "Var",
    "Segment",
    "head",
    "uvarint",
    "zigzag_bytes",
    "binary",
    "varints",
    "byte_strings",
    "fixed",
    "assemble",
]

TRUE, I16, I32, I64, BINARY, LIST, STRUCT = 1, 4, 5, 6, 8, 9, 12
STOP: Final[bytes] = b"\x00"
#: Bytes a 64-bit varint takes at most.
_WIDE: Final[int] = 10


def head(delta: int, kind: int) -> bytes:
    """A short-form field header: ``delta`` (1-15) from the previous field id, and the field's type."""
    assert 0 < delta < 16
    return bytes(((delta << 4) | kind,))


def uvarint(n: int) -> bytes:
    """Unsigned LEB128 varint of ``n`` (>= 0)."""
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def zigzag_bytes(n: int) -> bytes:
    """A thrift i16/i32/i64 value: zigzag, then varint."""
    return uvarint((n << 1) ^ (n >> 63))


def binary(b: bytes) -> bytes:
    """A thrift binary/string value: varint length, then the bytes."""
    return uvarint(len(b)) + b


@dataclass(frozen=True)
class Var:
    """One byte string per row: row ``i`` is ``data[i, :lens[i]]``."""

    data: np.ndarray  # (rows, width) uint8
    lens: np.ndarray  # (rows,) int64


Segment = bytes | Var


def varints(values: np.ndarray, zigzag: bool = True) -> Var:
    """Each value (int64) as a thrift integer: zigzag (``zigzag``, for i16/i32/i64) then varint; vectorized."""
    v = np.asarray(values, dtype=np.int64)
    u = ((v << 1) ^ (v >> 63)).view(np.uint64) if zigzag else v.view(np.uint64)
    shifts = np.arange(_WIDE, dtype=np.uint64) * np.uint64(7)
    groups = (u[:, None] >> shifts[None, :]) & np.uint64(0x7F)
    # bytes needed: 1 + the index of the last non-zero 7-bit group
    nonzero = groups != 0
    lens = np.where(nonzero.any(axis=1), _WIDE - np.argmax(nonzero[:, ::-1], axis=1), 1).astype(np.int64)
    more = np.arange(_WIDE)[None, :] < (lens[:, None] - 1)
    data = (groups | (more.astype(np.uint64) << np.uint64(7))).astype(np.uint8)
    return Var(data, lens)


def byte_strings(items: Sequence[bytes]) -> Var:
    """Each byte string as-is (no length prefix)."""
    lens = np.fromiter((len(b) for b in items), dtype=np.int64, count=len(items))
    width = int(lens.max()) if len(items) else 0
    data = np.zeros((len(items), max(width, 1)), dtype=np.uint8)
    flat = np.frombuffer(b"".join(items), dtype=np.uint8)
    mask = np.arange(data.shape[1])[None, :] < lens[:, None]
    data[mask] = flat
    return Var(data, lens)


def fixed(rows: np.ndarray) -> Var:
    """Rows of a (rows, width) uint8 array, all of that width."""
    data = np.ascontiguousarray(rows, dtype=np.uint8)
    return Var(data, np.full(len(data), data.shape[1], dtype=np.int64))


def assemble(segments: Sequence[Segment], rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The segments of each row, concatenated, rows one after another.

    Returns the bytes (uint8) and the start of each segment of each row in them, ``(rows, len(segments) + 1)``
    (the last column: where the row ends; the next row starts there).
    """
    lens = np.empty((rows, len(segments)), dtype=np.int64)
    for s, seg in enumerate(segments):
        lens[:, s] = len(seg) if isinstance(seg, bytes) else seg.lens
    starts = np.zeros((rows, len(segments) + 1), dtype=np.int64)
    np.cumsum(lens, axis=1, out=starts[:, 1:])
    row_start = np.zeros(rows, dtype=np.int64)
    if rows > 1:
        np.cumsum(starts[:-1, -1], out=row_start[1:])
    starts += row_start[:, None]
    out = np.empty(int(starts[-1, -1]) if rows else 0, dtype=np.uint8)
    for s, seg in enumerate(segments):
        if isinstance(seg, bytes):
            if seg:
                out[starts[:, s, None] + np.arange(len(seg))[None, :]] = np.frombuffer(seg, dtype=np.uint8)
        else:
            mask = np.arange(seg.data.shape[1])[None, :] < seg.lens[:, None]
            out[(starts[:, s, None] + np.arange(seg.data.shape[1])[None, :])[mask]] = seg.data[mask]
    return out, starts
