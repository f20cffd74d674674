"""Arrow string and binary columns compared in numpy, from their buffers: no Python string per value.

A read check compares the image id and dtype of every chunk row it audits with what the index says: a row group
of a plate holds 1,024 of them, and decoding each to a Python string cost ~3 microseconds a value (most of a
first read of a group). These take the values' bytes straight from the offsets and data buffers (plain, large
and dictionary-encoded columns, chunked or not); other layouts go through :func:`~.arrow_numpy.string_values`.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pyarrow as pa

from .arrow_numpy import int_values, string_values, valid_mask
from .uniques import unique, unique_inverse

__all__ = ["Packed", "packed_text", "same_text", "distinct_text"]

#: (valid, lengths, start of each value in data, data): the values at some positions, their bytes one after another.
Packed = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _ramp(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``starts[k] + 0 .. lengths[k] - 1`` for every k, concatenated."""
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    return np.repeat(starts - (ends - lengths), lengths) + np.arange(total, dtype=np.int64)


def _plain_text(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    )


def packed_text(column: pa.ChunkedArray | pa.Array, at: np.ndarray) -> Packed | None:
    """The values ``at`` (valid positions) of string or binary ``column`` as bytes one after another (null: no
    bytes, invalid), or None for a layout read otherwise (views...)."""
    at = np.asarray(at, dtype=np.int64)
    chunks = list(column.chunks) if isinstance(column, pa.ChunkedArray) else [column]
    bounds = np.cumsum([0, *(len(c) for c in chunks)])
    which = np.searchsorted(bounds, at, side="right") - 1
    valid = np.zeros(len(at), dtype=bool)
    lengths = np.zeros(len(at), dtype=np.int64)
    sources: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (positions, starts, data) per chunk
    for k in unique(which).tolist():
        c, sel = chunks[k], np.nonzero(which == k)[0]
        j = at[sel] - bounds[k]
        if pa.types.is_dictionary(c.type):
            ok = valid_mask(c)[j] if c.null_count else np.ones(len(j), dtype=bool)
            inner = packed_text(c.dictionary, int_values(c.indices)[j][ok])  # nulls: no bytes, invalid
            if inner is None:
                return None
            v, n, s, d = inner
            mine = sel[ok]
            valid[mine], lengths[mine] = v, n
            sources.append((mine, s, d))
            continue
        if not _plain_text(c.type):
            return None
        large = pa.types.is_large_string(c.type) or pa.types.is_large_binary(c.type)
        kind = np.dtype(np.int64 if large else np.int32)
        offsets = np.frombuffer(c.buffers()[1], dtype=kind, count=len(c) + 1, offset=c.offset * kind.itemsize)
        buf = c.buffers()[2]
        data = np.frombuffer(buf, dtype=np.uint8) if buf is not None else np.zeros(0, dtype=np.uint8)
        ok = valid_mask(c)[j] if c.null_count else np.ones(len(j), dtype=bool)
        starts = offsets[j].astype(np.int64)
        valid[sel], lengths[sel] = ok, np.where(ok, offsets[j + 1] - starts, 0)
        sources.append((sel, starts, data))
    begin = np.cumsum(lengths) - lengths
    out = np.zeros(int(lengths.sum()), dtype=np.uint8)
    for sel, starts, data in sources:
        n = lengths[sel]
        out[_ramp(begin[sel], n)] = data[_ramp(starts, n)]
    return valid, lengths, begin, out


#: Positions compared at a time (a block's byte indexes cost 8 bytes a byte of text: bounded, not per table).
BLOCK: Final[int] = 1 << 16


def same_text(
    a: pa.ChunkedArray | pa.Array, at_a: np.ndarray, b: pa.ChunkedArray | pa.Array, at_b: np.ndarray
) -> np.ndarray:
    """True where value ``at_a[k]`` of ``a`` equals value ``at_b[k]`` of ``b`` (two nulls are equal; a null and
    a value are not), compared byte for byte, :data:`BLOCK` positions at a time."""
    at_a, at_b = np.asarray(at_a, dtype=np.int64), np.asarray(at_b, dtype=np.int64)
    if _same_runs(a, at_a, b, at_b):  # one run each, equal in Arrow (a read's rows against their index rows)
        return np.ones(len(at_a), dtype=bool)
    if len(at_a) <= BLOCK:
        return _same_block(a, at_a, b, at_b)
    blocks = [_same_block(a, at_a[k : k + BLOCK], b, at_b[k : k + BLOCK]) for k in range(0, len(at_a), BLOCK)]
    return np.concatenate(blocks)


def _run(column: pa.ChunkedArray | pa.Array, at: np.ndarray) -> pa.Array | None:
    """Values ``at`` of ``column`` as one slice when ``at`` is one ascending run within one chunk, else None."""
    n = len(at)
    if not n or int(at[-1]) - int(at[0]) != n - 1 or not bool((np.diff(at) == 1).all()):
        return None
    if isinstance(column, pa.ChunkedArray):
        if column.num_chunks != 1:
            return None
        column = column.chunk(0)
    if int(at[0]) < 0 or int(at[-1]) >= len(column):
        return None
    return column.slice(int(at[0]), n)


def _same_runs(
    a: pa.ChunkedArray | pa.Array, at_a: np.ndarray, b: pa.ChunkedArray | pa.Array, at_b: np.ndarray
) -> bool:
    """True when ``at_a`` and ``at_b`` are runs of one chunk each whose values are equal (nulls at the same places,
    and of one type); False when not known so (:func:`_same_block` then compares value by value)."""
    ra, rb = _run(a, at_a), _run(b, at_b)
    return ra is not None and rb is not None and ra.type == rb.type and ra.equals(rb)


def _same_block(
    a: pa.ChunkedArray | pa.Array, at_a: np.ndarray, b: pa.ChunkedArray | pa.Array, at_b: np.ndarray
) -> np.ndarray:
    pa_, pb = packed_text(a, at_a), packed_text(b, at_b)
    if pa_ is None or pb is None:  # another layout: as Python strings
        return np.array([x == y for x, y in zip(string_values(a, at_a), string_values(b, at_b))], dtype=bool)
    va, na, sa, da = pa_
    vb, nb, sb, db = pb
    same: np.ndarray = (va == vb) & (na == nb)
    rows = np.nonzero(same & va & (na > 0))[0]
    if len(rows):
        n = na[rows]
        differ = (da[_ramp(sa[rows], n)] != db[_ramp(sb[rows], n)]).astype(np.int64)
        bad = np.add.reduceat(differ, np.cumsum(n) - n) > 0
        same[rows[bad]] = False
    return same


def distinct_text(column: pa.ChunkedArray | pa.Array, at: np.ndarray) -> tuple[list[str | None], np.ndarray]:
    """The distinct values ``at`` of string or binary ``column`` (decoded as UTF-8, bad bytes replaced; None for
    null) and the code of each position among them: one Python string per distinct value (found :data:`BLOCK`
    positions at a time)."""
    at = np.asarray(at, dtype=np.int64)
    if len(at) <= BLOCK:
        return _distinct_block(column, at)
    index: dict[str | None, int] = {}
    codes = []
    for k in range(0, len(at), BLOCK):
        values, local = _distinct_block(column, at[k : k + BLOCK])
        remap = np.array([index.setdefault(v, len(index)) for v in values], dtype=np.int64)
        codes.append(remap[local])
    return list(index), np.concatenate(codes)


def _distinct_block(column: pa.ChunkedArray | pa.Array, at: np.ndarray) -> tuple[list[str | None], np.ndarray]:
    packed = packed_text(column, at)
    if packed is None or not len(at):
        values = string_values(column, at)
        return _coded(values)
    valid, lengths, begin, data = packed
    width = int(lengths.max(initial=0))
    if width > 256:  # long values: one string each
        values = string_values(column, at)
        return _coded(values)
    grid = np.zeros((len(at), width + 9), dtype=np.uint8)  # the bytes, then the length and validity: no collisions
    rows = np.repeat(np.arange(len(at)), lengths)
    grid[rows, _ramp(np.zeros(len(at), dtype=np.int64), lengths)] = data
    grid[:, width : width + 8] = lengths.astype("<i8").view(np.uint8).reshape(-1, 8)
    grid[:, width + 8] = valid
    keys = np.ascontiguousarray(grid).view(np.dtype((np.void, width + 9))).ravel()
    _, first, codes = unique_inverse(keys)
    out: list[str | None] = [
        bytes(data[int(begin[k]) : int(begin[k] + lengths[k])]).decode("utf-8", errors="replace") if valid[k] else None
        for k in first.tolist()
    ]
    return out, codes.reshape(-1).astype(np.int64)


def _coded(values: list[str | None]) -> tuple[list[str | None], np.ndarray]:
    """The distinct ``values`` in first-seen order and each value's code among them (one pass)."""
    index: dict[str | None, int] = {}
    codes = [index.setdefault(v, len(index)) for v in values]
    return list(index), np.array(codes, dtype=np.int64)
