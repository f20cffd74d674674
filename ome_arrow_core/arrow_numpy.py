"""Arrow integer columns as numpy arrays straight from their buffers.

pyarrow's ``to_numpy`` imports pandas and ``fill_null``/``is_valid`` load the compute
kernels, each ~40-50 MiB resident the first time: too much for reading one crop. These
read the data and validity buffers directly (primitive integer types only).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

__all__ = [
    "as_list",
    "int_values",
    "valid_mask",
    "int_array",
    "binary_lengths",
    "string_values",
    "plain_values",
    "int_column",
]


def _chunks(column: pa.ChunkedArray | pa.Array) -> list[pa.Array]:
    return list(column.chunks) if isinstance(column, pa.ChunkedArray) else [column]


def valid_mask(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """True where ``column`` is not null."""
    parts = []
    for c in _chunks(column):
        if not c.null_count:
            parts.append(np.ones(len(c), dtype=bool))
        elif c.type == pa.null():
            parts.append(np.zeros(len(c), dtype=bool))
        else:
            bits = np.unpackbits(np.frombuffer(c.buffers()[0], dtype=np.uint8), bitorder="little")
            parts.append(bits[c.offset : c.offset + len(c)].astype(bool))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


def int_values(column: pa.ChunkedArray | pa.Array, null: int = 0) -> np.ndarray:
    """The values of integer ``column`` (``null`` where null), zero-copy for one chunk without nulls."""
    parts = []
    for c in _chunks(column):
        if c.type == pa.null() or c.buffers()[1] is None:
            parts.append(np.full(len(c), null, dtype=np.int64))
            continue
        if not pa.types.is_integer(c.type):
            raise TypeError(f"int_values takes integer columns, got {c.type}")
        width = c.type.bit_width // 8
        values = np.frombuffer(c.buffers()[1], dtype=c.type.to_pandas_dtype(), count=len(c), offset=c.offset * width)
        if c.null_count:
            values = np.where(valid_mask(c), values, null)
        parts.append(values)
    if not parts:
        return np.zeros(0, dtype=column.type.to_pandas_dtype() if pa.types.is_integer(column.type) else np.int64)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def int_array(values: np.ndarray) -> pa.Array:
    """``values`` as an Arrow int64 array (for ``take``), without ``pa.array``, which imports pandas."""
    data = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(data), [None, pa.py_buffer(data)])


def binary_lengths(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """The byte length of each value of binary or string ``column`` (0 where null), from its offsets."""
    parts = []
    for c in _chunks(column):
        large = pa.types.is_large_binary(c.type) or pa.types.is_large_string(c.type)
        if not (large or pa.types.is_binary(c.type) or pa.types.is_string(c.type)):
            import pyarrow.compute as pc  # other layouts (views, fixed size): the kernel

            parts.append(pc.binary_length(c).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64))
            continue
        if not len(c):
            continue
        kind = np.int64 if large else np.int32
        offsets = np.frombuffer(c.buffers()[1], dtype=kind, count=len(c) + 1, offset=c.offset * np.dtype(kind).itemsize)
        lengths = np.diff(offsets).astype(np.int64)
        parts.append(np.where(valid_mask(c), lengths, 0) if c.null_count else lengths)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _is_text(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    )


def string_values(column: pa.ChunkedArray | pa.Array, at: np.ndarray) -> list[str | None]:
    """Values ``at`` (positions) of string or binary ``column`` (dictionary-encoded or not) as Python strings
    (binary decoded as UTF-8, bad bytes replaced), read from its buffers: no take kernel, only those decoded."""
    at = np.asarray(at, dtype=np.int64)
    chunks = _chunks(column)
    starts = np.cumsum([0, *(len(c) for c in chunks)])
    if len(at) and (int(at.min()) < 0 or int(at.max()) >= int(starts[-1])):
        raise IndexError(f"positions {at.tolist()[:5]} of a column of {int(starts[-1])} values")
    which = np.searchsorted(starts, at, side="right") - 1
    out: list[str | None] = [None] * len(at)
    for k in sorted(set(which.tolist())):
        c = chunks[k]
        sel = np.nonzero(which == k)[0]
        j = at[sel] - starts[k]
        valid = valid_mask(c)[j] if c.null_count else np.ones(len(j), dtype=bool)
        if pa.types.is_dictionary(c.type):
            codes = int_values(c.indices)[j]
            for s, v in zip(sel[valid].tolist(), string_values(c.dictionary, codes[valid])):
                out[s] = v
        elif _is_text(c.type):
            large = pa.types.is_large_string(c.type) or pa.types.is_large_binary(c.type)
            kind = np.dtype(np.int64 if large else np.int32)
            offsets = np.frombuffer(c.buffers()[1], dtype=kind, count=len(c) + 1, offset=c.offset * kind.itemsize)
            data = c.buffers()[2]
            raw = memoryview(data) if data is not None else memoryview(b"")
            for s, lo, hi in zip(sel[valid].tolist(), offsets[j[valid]].tolist(), offsets[j[valid] + 1].tolist()):
                out[s] = bytes(raw[lo:hi]).decode("utf-8", errors="replace")
        else:  # other layouts (views, ...): Arrow's own conversion of this chunk
            values = c.to_pylist()
            for s, jj in zip(sel.tolist(), j.tolist()):
                out[s] = _text(values[jj])
    return out


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def plain_values(column: pa.Array) -> np.ndarray:
    """The values of a numeric or boolean ``column`` without nulls, from its buffers (zero-copy for numbers);
    other columns through ``to_numpy`` (which imports pandas)."""
    kind = column.type
    if column.null_count or not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        return np.asarray(column.to_numpy(zero_copy_only=False))
    if pa.types.is_boolean(kind):
        bits = np.unpackbits(np.frombuffer(column.buffers()[1], dtype=np.uint8), bitorder="little")
        return bits[column.offset : column.offset + len(column)].astype(bool)
    dtype = np.dtype(kind.to_pandas_dtype())
    return np.frombuffer(column.buffers()[1], dtype=dtype, count=len(column), offset=column.offset * dtype.itemsize)


def int_column(column: pa.ChunkedArray | pa.Array, null: int = 0) -> np.ndarray:
    """Column ``column`` as int64 (``null`` where null): integer columns from their buffers (:func:`int_values`),
    other types (a file storing floats where integers belong) converted as numpy's ``astype`` converts them."""
    if all(pa.types.is_integer(c.type) or c.type == pa.null() for c in _chunks(column)):
        return int_values(column, null).astype(np.int64)
    return np.asarray(column.fill_null(null).to_numpy(zero_copy_only=False)).astype(np.int64)


def as_list(column: pa.Array) -> list[Any]:
    """``column.to_pylist()``, the same Python values made in C for dictionary-encoded strings (each distinct value
    once) and integers, floats and bools without nulls (from their buffers: ``to_numpy`` loads pandas)."""
    kind = column.type
    if pa.types.is_dictionary(kind) and (
        pa.types.is_string(kind.value_type) or pa.types.is_large_string(kind.value_type)
    ):
        distinct = np.empty(len(column.dictionary) + 1, dtype=object)  # the last: None, for nulls (code -1)
        distinct[:-1] = column.dictionary.to_pylist()
        picked: list[Any] = distinct[int_values(column.indices, -1)].tolist()
        return picked
    plain = pa.types.is_integer(kind) or pa.types.is_boolean(kind)
    if (plain or (pa.types.is_floating(kind) and not pa.types.is_float16(kind))) and not column.null_count:
        return plain_values(column).tolist()  # type: ignore[no-any-return]
    return column.to_pylist()  # type: ignore[no-any-return]
