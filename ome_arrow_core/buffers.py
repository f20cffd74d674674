"""Arrow-owned pixel memory: aligned allocation and read-only numpy views over it."""

from __future__ import annotations

import math
import threading

import numpy as np
import pyarrow as pa

from .host_memory import host_buffer

__all__ = [
    "ALIGNMENT",
    "SCRATCH_BYTES",
    "scratch_buffer",
    "arrow_empty",
    "to_arrow_memory",
    "read_only",
    "view_buffer",
    "arrow_base",
]

#: Byte alignment of every buffer we allocate (Arrow's default pool; JAX needs >= 64 to not copy).
ALIGNMENT = 64
#: Bytes of each thread's staging buffer (about a core's L2 cache: what is read into it is still cached when copied).
SCRATCH_BYTES = 1 << 20

_SCRATCH = threading.local()


def arrow_empty(shape: tuple[int, ...], dtype: np.dtype) -> tuple[np.ndarray, pa.Buffer]:
    """A writable C-contiguous array living in a fresh 64-byte aligned Arrow buffer (from the allocator of
    :func:`~.host_memory.host_memory` when one is active and the array is large)."""
    nbytes = math.prod(shape) * dtype.itemsize
    buf = host_buffer(nbytes, ALIGNMENT)  # an exporter's memory, while it asks for the read (host_memory.py)
    if buf is None:
        buf = pa.allocate_buffer(max(nbytes, 1))
    arr = np.frombuffer(buf, dtype=np.uint8, count=nbytes).view(dtype).reshape(shape)
    return arr, buf


def view_buffer(buf: pa.Buffer, dtype: np.dtype, shape: tuple[int, ...], offset: int = 0) -> np.ndarray:
    """A read-only C-order view of ``buf`` (no copy) from byte ``offset``; the view keeps ``buf`` alive. ValueError
    when ``buf`` does not hold it, as ``np.frombuffer`` says (made in one step: 1.7 against 3.1 us, every read)."""
    if offset < 0:
        raise ValueError(f"offset must be non-negative, got {offset}")
    try:
        arr = np.ndarray(shape, dtype, buffer=buf, offset=offset)
    except TypeError as exc:  # "buffer is too small for requested array"
        raise ValueError(
            f"a buffer of {len(memoryview(buf))} bytes holds no {shape} {dtype} from byte {offset}"
        ) from exc
    arr.setflags(write=False)
    return arr


def to_arrow_memory(arr: np.ndarray) -> np.ndarray:
    """Copy ``arr`` into Arrow memory (C order, aligned); the result is read-only."""
    out, buf = arrow_empty(arr.shape, arr.dtype)
    np.copyto(out, arr, casting="no")
    return view_buffer(buf, arr.dtype, arr.shape)


def read_only(arr: np.ndarray) -> np.ndarray:
    """A read-only view of ``arr`` (no copy: the caller must not change ``arr`` while it is used)."""
    view = arr.view()
    view.flags.writeable = False
    return view


def arrow_base(arr: np.ndarray) -> pa.Buffer | None:
    """The Arrow buffer ``arr`` is a view of, or None when numpy owns the memory."""
    base: object = arr
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    return base if isinstance(base, pa.Buffer) else None


def scratch_buffer() -> pa.Buffer:
    """This thread's reusable staging buffer of :data:`SCRATCH_BYTES` (64-byte aligned), made on first use and kept.

    What is written into it lasts until this thread's next use of it: views of it must not escape the function
    that took it."""
    buf: pa.Buffer | None = getattr(_SCRATCH, "buffer", None)
    if buf is None:
        buf = _SCRATCH.buffer = pa.allocate_buffer(SCRATCH_BYTES)
    return buf
