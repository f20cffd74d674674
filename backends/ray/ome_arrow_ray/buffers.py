"""Pixel buffers that a Ray worker reuses from block to block, refilled only once nothing references them.

A read task's block is copied into Ray's object store when the task yields it; the
worker's own array is then garbage. Filling a fresh array costs a page fault per 4 KiB
(measured on the loading benchmark's plate: 0.9 s of CPU per 524 MB epoch with fresh
arrays, 0.5 s reading into one kept array). So each worker process keeps a few buffers and
hands one out again only when its reference count says that no array, view, Arrow buffer or
block still uses it; otherwise it allocates a fresh one, as before. Nothing is ever
overwritten while something can still see it. No Ray here.
"""

from __future__ import annotations

import math
import sys
import threading

import numpy as np

__all__ = ["BlockBuffers", "MAX_BUFFERS", "MAX_BYTES", "block_buffers"]

#: Buffers one process keeps at most (the block being filled, one Ray may still hold, slack).
MAX_BUFFERS = 3
#: Bytes one process keeps at most; larger blocks use fresh arrays.
MAX_BYTES = 256 << 20


class BlockBuffers:
    """Kept flat byte buffers; :meth:`empty` gives an array on one that nothing else references."""

    def __init__(self, max_buffers: int = MAX_BUFFERS, max_bytes: int = MAX_BYTES) -> None:
        self.max_buffers, self.max_bytes = int(max_buffers), int(max_bytes)
        self._held: list[np.ndarray] = []
        self._idle: list[int] = []  # each buffer's reference count when only this pool holds it
        self._lock = threading.Lock()
        #: Arrays served on a kept buffer / on a fresh one (for tests and benchmarks).
        self.reused = 0
        self.fresh = 0

    def _refs(self, k: int) -> int:
        return sys.getrefcount(self._held[k])

    def empty(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """An uninitialised C-contiguous ``shape`` array of ``dtype`` (its ``base`` is a kept buffer when one is idle)."""
        dtype = np.dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        with self._lock:  # the array is made before the lock is let go: its view marks the buffer busy
            k = next(
                (
                    k
                    for k in range(len(self._held))
                    if self._held[k].nbytes >= nbytes and self._refs(k) == self._idle[k]
                ),
                None,
            )
            if k is not None:
                self.reused += 1
            else:
                self.fresh += 1
                k = self._keep(nbytes)
                if k is None:
                    return np.empty(shape, dtype=dtype)
            return self._held[k][:nbytes].view(dtype).reshape(shape)

    def _keep(self, nbytes: int) -> int | None:
        """Index of a new kept buffer of ``nbytes`` (replacing an idle smaller one when full), or None."""
        if len(self._held) >= self.max_buffers:
            small = [k for k in range(len(self._held)) if self._refs(k) == self._idle[k]]
            if not small:
                return None
            k = small[0]
            del self._held[k], self._idle[k]
        if sum(b.nbytes for b in self._held) + nbytes > self.max_bytes:
            return None
        self._held.append(np.empty(nbytes, dtype=np.uint8))
        self._idle.append(self._refs(len(self._held) - 1))
        return len(self._held) - 1


_buffers: BlockBuffers | None = None
_made = threading.Lock()


def block_buffers() -> BlockBuffers:
    """This process's buffers (made on first use)."""
    global _buffers
    with _made:
        if _buffers is None:
            _buffers = BlockBuffers()
        return _buffers
