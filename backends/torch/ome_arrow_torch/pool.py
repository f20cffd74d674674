"""Reusable shared-memory batch buffers for DataLoader workers.

A tensor that a DataLoader worker sends to the main process must live in shared memory.
torch makes a fresh segment for every batch, and filling fresh pages (then mapping them in
the main process) costs more than reading the pixels. A worker's :class:`BatchPool` keeps
a few segments and refills one only once the main process has let go of every tensor
that used it, so a steady stream of batches maps no new memory at all.

The hand-over: a pooled batch is a :class:`PooledTensor`, a tensor that also carries the
worker's flag array and its slot number, so code in the worker (a ``collate_fn``) can
use it as any tensor. Pickled to the main process it arrives as a plain tensor, and the
main process records a weak reference to its storage. Each later arrival checks those
references; a slot whose storage is gone (every tensor and view of it freed) gets its
flag cleared, and only then may its worker fill it again. A slot whose batch reaches the
main process some other way (say, as a view a ``collate_fn`` took of it) is never
cleared, so never refilled. A worker never waits: with no free slot it uses a fresh
segment, as torch does.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import torch
from torch.multiprocessing.reductions import StorageWeakRef

__all__ = ["BatchPool", "PooledTensor", "MAX_SLOTS", "MAX_BYTES"]

#: Buffers one worker keeps at most (prefetched batches, the one in use, and slack).
MAX_SLOTS = 8
#: Bytes one worker keeps at most; larger batches use fresh segments.
MAX_BYTES = 512 << 20

_FREE, _BUSY = 0, 1


class BatchPool:
    """Shared-memory buffers of one worker process, refilled once the main process frees them."""

    def __init__(self, max_slots: int = MAX_SLOTS, max_bytes: int = MAX_BYTES) -> None:
        self.max_slots = int(max_slots)
        self.max_bytes = int(max_bytes)
        self.flags = torch.zeros(self.max_slots, dtype=torch.uint8).share_memory_()  # type: ignore[no-untyped-call]
        self._slots: list[torch.UntypedStorage] = []
        #: Batches served from a kept buffer / from a fresh segment (for tests and benchmarks).
        self.reused = 0
        self.fresh = 0

    def empty(self, shape: tuple[int, ...], dtype: torch.dtype) -> tuple[torch.Tensor, int | None]:
        """An uninitialised tensor in shared memory and its slot (None: a fresh, unpooled segment)."""
        nbytes = int(np.prod(shape, dtype=np.int64)) * torch.empty(0, dtype=dtype).element_size()
        flags = self.flags.numpy()
        for slot, storage in enumerate(self._slots):
            if flags[slot] == _FREE and storage.nbytes() >= nbytes:
                self.reused += 1
                return _on(storage, shape, dtype), slot
        held = sum(s.nbytes() for s in self._slots)
        if len(self._slots) < self.max_slots and held + nbytes <= self.max_bytes:
            storage = torch.UntypedStorage._new_shared(nbytes)  # type: ignore[no-untyped-call]
            self._slots.append(storage)
            self.fresh += 1
            return _on(storage, shape, dtype), len(self._slots) - 1
        self.fresh += 1
        return _on(torch.UntypedStorage._new_shared(nbytes), shape, dtype), None  # type: ignore[no-untyped-call]

    def lease(self, tensor: torch.Tensor, slot: int | None) -> torch.Tensor:
        """What the worker yields for ``tensor``: a PooledTensor on a pooled slot, else the tensor itself.

        The slot counts as in use from now until the main process has received and freed it.
        """
        if slot is None:
            return tensor
        self.flags[slot] = _BUSY
        lent = tensor.as_subclass(PooledTensor)
        lent._pool = (self.flags, slot)
        return lent


def _on(storage: torch.UntypedStorage, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    return torch.empty(0, dtype=dtype).set_(storage, 0, shape)  # type: ignore[call-overload,no-any-return]


class PooledTensor(torch.Tensor):
    """A batch in a worker's pooled buffer; pickled to the main process it arrives as a plain tensor.

    Operations on it give plain tensors (``__torch_function__`` is disabled for the subclass).
    """

    __torch_function__ = torch._C._disabled_torch_function_impl  # type: ignore[assignment]
    _pool: tuple[torch.Tensor, int]

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        flags, slot = self._pool
        return (_received, (self.as_subclass(torch.Tensor), flags, slot))


_held: list[tuple[StorageWeakRef, torch.Tensor, int]] = []
_held_lock = threading.Lock()


def _received(tensor: torch.Tensor, flags: torch.Tensor, slot: int) -> torch.Tensor:
    """Unpickling a PooledTensor (main process): free the slots nobody holds any more, watch this one."""
    release()
    with _held_lock:
        _held.append((StorageWeakRef(tensor.untyped_storage()), flags, slot))  # type: ignore[no-untyped-call]
    return tensor


def release() -> int:
    """Clear the flags of received batches whose storage is gone; returns how many are still held."""
    with _held_lock:
        kept = []
        for ref, flags, slot in _held:
            if ref.expired():  # type: ignore[no-untyped-call]
                flags[slot] = _FREE
            else:
                kept.append((ref, flags, slot))
        _held[:] = kept
        return len(kept)
