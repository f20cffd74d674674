"""DLPack export of CPU arrays, read-only aware.

Versioned DLPack (>= 1.0) carries a read-only flag, so Arrow memory is exported as is.
Legacy consumers (no ``max_version``) cannot be told, so they get a zero-copy alias that
they must treat as read-only; numpy alone would refuse them.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

__all__ = ["DLPackTensor", "CPU_DEVICE"]

#: ``__dlpack_device__`` of host memory: (kDLCPU, 0).
CPU_DEVICE: tuple[int, int] = (1, 0)


def _writable_alias(arr: np.ndarray) -> np.ndarray:
    """A writable array over the same memory as ``arr`` that keeps ``arr`` alive."""
    if arr.flags.writeable:
        return arr
    itemsize = arr.itemsize
    addr = arr.__array_interface__["data"][0]
    lo = addr + sum(s * (n - 1) for s, n in zip(arr.strides, arr.shape) if s < 0)
    hi = addr + sum(s * (n - 1) for s, n in zip(arr.strides, arr.shape) if s > 0) + itemsize
    raw = (ctypes.c_char * (hi - lo)).from_address(lo)
    raw._owner = arr  # keeps the memory alive
    return np.ndarray(arr.shape, arr.dtype, buffer=raw, offset=addr - lo, strides=arr.strides)


class DLPackTensor:
    """A host array exported through ``__dlpack__`` without copying.

    Accepted by ``np.from_dlpack``, ``torch.from_dlpack`` and ``jax.numpy.from_dlpack``.
    The object keeps its memory alive; the consumer's tensor does too.
    """

    __slots__ = ("_array",)

    def __init__(self, array: np.ndarray) -> None:
        self._array = array

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
        if dl_device is not None and tuple(dl_device) != CPU_DEVICE:
            raise BufferError(f"DLPackTensor lives on the CPU and cannot export to device {dl_device}")
        if max_version is None or max_version[0] < 1:
            arr = np.array(self._array) if copy else _writable_alias(self._array)
            return arr.__dlpack__(stream=stream)
        return self._array.__dlpack__(stream=stream, max_version=max_version, copy=copy)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if copy:
            return np.array(self._array, dtype=dtype)
        return self._array if dtype is None else self._array.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"DLPackTensor(shape={self.shape}, dtype={self.dtype}, device=cpu)"
