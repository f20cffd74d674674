"""DLPack export of CPU arrays, read-only aware.

Versioned DLPack (>= 1.0) carries a read-only flag, so Arrow memory is exported as is.
Legacy consumers (no ``max_version``; JAX today) cannot be told, so they get a zero-copy
alias that they must treat as read-only (JAX arrays are immutable); numpy alone would
refuse them. Consumers known to ignore the flag (``torch.from_dlpack``: torch has no
read-only tensors) get a private copy unless they pass ``copy=False``, so writing to the
tensor they build never changes the image behind later views.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from .buffers import arrow_base

__all__ = [
    "DLPackTensor",
    "CPU_DEVICE",
    "IGNORES_READ_ONLY",
    "NEEDS_COMPACT",
    "export_capsule",
    "caller_module",
    "handed_over",
    "is_compact",
]

#: ``__dlpack_device__`` of host memory: (kDLCPU, 0).
CPU_DEVICE: tuple[int, int] = (1, 0)

#: Modules whose ``from_dlpack`` drops DLPack's read-only flag and hands out a writable tensor.
#: A read-only capsule requested from one of them (``copy=None``) is a copy; ``copy=False`` aliases.
IGNORES_READ_ONLY: Final[frozenset[str]] = frozenset({"torch.utils.dlpack"})
#: Modules whose ``from_dlpack`` takes only compact tensors (:func:`is_compact`): JAX refuses a strided crop
#: ("UNIMPLEMENTED: Only DLPack tensors with trivial (compact) striding"). One asked for another gets a
#: C-contiguous copy (``copy=None``); ``copy=False`` raises BufferError saying so.
NEEDS_COMPACT: Final[frozenset[str]] = frozenset({"jax._src.dlpack"})


def handed_over(exported: Any, consumer: str, **kwargs: Any) -> Any:
    """``exported.__dlpack__(**kwargs)`` for a producer wrapping an export (a view's ``to_dlpack()``): a host
    :class:`DLPackTensor` is asked on behalf of ``consumer``, the module that called the producer."""
    if isinstance(exported, DLPackTensor):
        return exported.capsule(consumer, **kwargs)
    return exported.__dlpack__(**kwargs)


def is_compact(shape: Sequence[int], strides: Sequence[int]) -> bool:
    """True when element ``strides`` are a transposition of a dense buffer's (no gaps, no broadcasting; axes of
    length 1 may have any stride): what JAX (XLA's ``StridesToLayout``) imports without a copy."""
    order = sorted(range(len(shape)), key=lambda i: (strides[i], -i))
    expected = 1
    for i in order:
        if shape[i] > 1 and strides[i] != expected:
            return False
        expected *= shape[i]
    return True


def caller_module(depth: int = 1) -> str:
    """Module name of the function ``depth`` frames above the caller (the DLPack consumer)."""
    return str(sys._getframe(depth + 1).f_globals.get("__name__", ""))


def _writable_alias(arr: np.ndarray) -> np.ndarray:
    """A writable array over the same memory as ``arr`` that keeps ``arr`` alive."""
    if arr.flags.writeable:
        return arr
    addr = arr.__array_interface__["data"][0]
    buf = arrow_base(arr)
    if buf is not None and buf.is_mutable:  # every buffer we allocate: numpy can view it writable
        return np.ndarray(arr.shape, arr.dtype, buffer=buf, offset=addr - buf.address, strides=arr.strides)
    itemsize = arr.itemsize
    lo = addr + sum(s * (n - 1) for s, n in zip(arr.strides, arr.shape) if s < 0)
    hi = addr + sum(s * (n - 1) for s, n in zip(arr.strides, arr.shape) if s > 0) + itemsize
    raw = (ctypes.c_char * (hi - lo)).from_address(lo)
    raw._owner = arr  # keeps the memory alive
    return np.ndarray(arr.shape, arr.dtype, buffer=raw, offset=addr - lo, strides=arr.strides)


def export_capsule(
    arr: np.ndarray,
    consumer: str,
    *,
    stream: Any = None,
    max_version: tuple[int, int] | None = None,
    dl_device: tuple[int, int] | None = None,
    copy: bool | None = None,
) -> Any:
    """The DLPack capsule of host array ``arr`` for ``consumer`` (the calling module's name).

    ``copy=True`` copies; ``copy=False`` never does; ``copy=None`` copies only read-only
    memory asked for by a consumer in :data:`IGNORES_READ_ONLY` and strided memory asked for by one in
    :data:`NEEDS_COMPACT`.
    """
    if dl_device is not None and tuple(dl_device) != CPU_DEVICE:
        raise BufferError(f"DLPackTensor lives on the CPU and cannot export to device {dl_device}")
    if copy is None and consumer in IGNORES_READ_ONLY and not arr.flags.writeable:
        copy = True
    b = arr.itemsize
    if consumer in NEEDS_COMPACT and not is_compact(arr.shape, [s // b if s % b == 0 else -1 for s in arr.strides]):
        if copy is False:
            raise BufferError(f"{consumer} takes only C-contiguous tensors and this one is strided; copy=False refused")
        arr, copy = np.ascontiguousarray(arr), False  # the copy is the consumer's own
    if max_version is None or max_version[0] < 1:
        out = np.array(arr) if copy else _writable_alias(arr)
        return out.__dlpack__(stream=stream)
    return arr.__dlpack__(stream=stream, max_version=max_version, copy=copy)


class DLPackTensor:
    """A host array exported through ``__dlpack__`` without copying.

    Accepted by ``np.from_dlpack``, ``torch.from_dlpack`` and ``jax.numpy.from_dlpack``.
    The object keeps its memory alive; the consumer's tensor does too. ``torch.from_dlpack``
    gets a copy of read-only memory unless called with ``copy=False`` (see :func:`export_capsule`).
    """

    __slots__ = ("_array",)

    def __init__(self, array: np.ndarray) -> None:
        self._array = array

    @property
    def array(self) -> np.ndarray:
        """The exported array itself (read-only unless the export made a writable copy)."""
        return self._array

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the exported tensor."""
        return self._array.shape

    @property
    def dtype(self) -> np.dtype:
        """Numpy dtype of the exported tensor."""
        return self._array.dtype

    @property
    def data_ptr(self) -> int:
        """Address of the first element (for zero-copy checks)."""
        return int(self._array.__array_interface__["data"][0])

    def __dlpack_device__(self) -> tuple[int, int]:
        return CPU_DEVICE

    def __dlpack__(
        self,
        *,
        stream: Any = None,
        max_version: tuple[int, int] | None = None,
        dl_device: tuple[int, int] | None = None,
        copy: bool | None = None,
    ) -> Any:
        consumer = sys._getframe(1).f_globals.get("__name__", "")  # caller_module(), inlined: on every export
        return export_capsule(
            self._array,
            consumer,
            stream=stream,
            max_version=max_version,
            dl_device=dl_device,
            copy=copy,
        )

    def capsule(self, consumer: str, **kwargs: Any) -> Any:
        """``__dlpack__(**kwargs)`` on behalf of ``consumer`` (a module name), for producers that wrap this one."""
        return export_capsule(self._array, consumer, **kwargs)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if copy:
            return np.array(self._array, dtype=dtype)
        return self._array if dtype is None else self._array.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"DLPackTensor(shape={self.shape}, dtype={self.dtype}, device=cpu)"
