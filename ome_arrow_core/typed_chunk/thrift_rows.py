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
    "varint_columns",
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
    """Each value (int64) as a thrift integer: zigzag (``zigzag``, for i16/i32/i64) then varint; vectorized,
    over as many bytes a row as the largest value takes (one when all are under 128)."""
    v = np.asarray(values, dtype=np.int64)
    u = ((v << 1) ^ (v >> 63)).view(np.uint64) if zigzag else v.view(np.uint64)
    top = int(u.max()) if len(u) else 0
    if top < 0x80:
        return Var(u.astype(np.uint8).reshape(-1, 1), np.ones(len(u), dtype=np.int64))
    width = (top.bit_length() + 6) // 7
    data = (u[:, None] >> _SHIFTS[None, :width]).astype(np.uint8) & np.uint8(0x7F)
    lens = (u[:, None] >= _LIMITS[None, : width - 1]).sum(axis=1, dtype=np.int64) + 1  # bytes: 7 bits each
    data |= (_POSITIONS[None, :width] < (lens[:, None] - 1)).view(np.uint8) << np.uint8(7)
    return Var(data, lens)


def varint_columns(values: np.ndarray, zigzag: bool = True) -> list[Var]:
    """:func:`varints` of each column of a (rows, columns) array, encoded in one pass (views of one array)."""
    v = np.asarray(values, dtype=np.int64)
    rows, cols = v.shape
    flat = varints(v.reshape(-1), zigzag)
    data = flat.data.reshape(rows, cols, flat.data.shape[1])
    lens = flat.lens.reshape(rows, cols)
    return [Var(data[:, k, :], lens[:, k]) for k in range(cols)]


_SHIFTS: Final = np.arange(_WIDE, dtype=np.uint64) * np.uint64(7)
#: A varint takes more than k + 1 bytes from 2 ** (7 (k + 1)) on.
_LIMITS: Final = np.array([1 << (7 * k) for k in range(1, _WIDE)], dtype=np.uint64)
_POSITIONS: Final = np.arange(_WIDE)


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
    (the last column: where the row ends; the next row starts there). All rows side by side, each segment
    padded to its widest (the constants laid out once, as one template row; the per-row segments copied into
    their columns at once), then the padding of the per-row segments dropped: one pass over the bytes.
    """
    n = len(segments)
    widths = np.empty(n, dtype=np.int64)
    parts: list[bytes] = []
    var_at: list[int] = []
    var_data: list[np.ndarray] = []
    var_lens: list[np.ndarray] = []
    for s, seg in enumerate(segments):
        if isinstance(seg, bytes):
            widths[s] = len(seg)
            parts.append(seg)
        else:
            w = seg.data.shape[1]
            widths[s] = w
            parts.append(bytes(w))
            var_at.append(s)
            var_data.append(seg.data)
            var_lens.append(seg.lens)
    lens = np.empty((rows, n), dtype=np.int64)
    lens[:] = widths
    if var_at:
        vlens = np.stack(var_lens, axis=1)
        lens[:, var_at] = vlens
    starts = np.zeros((rows, n + 1), dtype=np.int64)
    np.cumsum(lens, axis=1, out=starts[:, 1:])
    row_start = np.zeros(rows, dtype=np.int64)
    if rows > 1:
        np.cumsum(starts[:-1, -1], out=row_start[1:])
    starts += row_start[:, None]
    template = np.frombuffer(b"".join(parts), dtype=np.uint8)
    if rows == 0 or len(template) == 0:
        return np.empty(0, dtype=np.uint8), starts
    out = np.empty((rows, len(template)), dtype=np.uint8)
    out[:] = template
    if not var_at:
        return out.reshape(-1), starts
    first = np.zeros(n, dtype=np.int64)
    np.cumsum(widths[:-1], out=first[1:])
    at = np.asarray(var_at)
    vw = widths[at]
    within = np.arange(int(vw.sum())) - np.repeat(np.cumsum(vw) - vw, vw)  # each column's place in its segment
    cols = np.repeat(first[at], vw) + within
    out[:, cols] = np.concatenate(var_data, axis=1)
    keep = np.ones(out.shape, dtype=bool)
    keep[:, cols] = within[None, :] < np.repeat(vlens, vw, axis=1)
    return out[keep], starts
