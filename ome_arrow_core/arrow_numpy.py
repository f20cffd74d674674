"""Arrow integer columns as numpy arrays straight from their buffers.

pyarrow's ``to_numpy`` imports pandas and ``fill_null``/``is_valid`` load the compute
kernels, each ~40-50 MiB resident the first time: too much for reading one crop. These
read the data and validity buffers directly (primitive integer types only).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = ["int_values", "valid_mask"]


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
