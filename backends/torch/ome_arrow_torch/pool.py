"""Reusable shared-memory batch buffers for DataLoader workers.

A tensor that a DataLoader worker sends to the main process must live in shared memory.
torch makes a fresh segment for every batch, and filling fresh pages (then mapping them in
the main process) costs more than reading the pixels. A worker's :class:`BatchPool` keeps
a few segments and refills one only once the main process has let go of every tensor
that used it, so a steady stream of batches maps no new memory at all.

The hand-over: a pooled batch is a :class:`PooledTensor`, a tensor that also carries its
pool and slot number, so code in the worker (a ``collate_fn``) can use it as any tensor.
Pickled to the main process it arrives as a plain tensor, and the main process records a
weak reference to its storage. Each later arrival checks those references; a slot whose
storage is gone (every tensor and view of it freed) gets its flag cleared, and only then
may its worker fill it again. A slot whose batch reaches the main process some other way
(say, as a view a ``collate_fn`` took of it) is never cleared, so never refilled. A worker
never waits: with no free slot it uses a fresh segment, as torch does.

Sending a segment costs more than its pixels: torch passes its file descriptor over a
socket (connect, authenticate, ``recvmsg``, ``mmap``) for every batch. So a DataLoader
worker sends each slot's segment (and the flag array) once; the main process keeps that
mapping, keyed by the pool's random token and the slot, and later batches of the slot
travel as ``(token, slot, shape, dtype)``. Each arrival gets a storage object of its own
over the kept mapping, so its weak reference still tells when that batch is freed. The
main process drops the mappings of pools whose worker process has exited.

DataLoader's default ``persistent_workers=False`` forks new workers every epoch, which would fill
and send fresh segments every epoch. A new worker inherits the main process's mappings, so it
adopts the pool that the previous worker of the same dataset and worker id left: it refills the
slots the main process has freed, and its batches travel as ``(token, slot, ...)`` from the start.
Only one live worker may fill a pool: the main process makes a lock for each pool it receives,
and a worker adopts a pool only when its last filler has exited and it takes that lock (released
when the worker exits); the main process drops a pool only once it takes the lock itself. A new worker has
none of an inherited slot's pages mapped in (a fork copies no page table entries of shared memory): each slot's
first batch in a process maps them in with one call (:mod:`.prefault`) instead of a page fault per 4 KiB.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import threading
from multiprocessing import util
from typing import Any

import numpy as np
import torch
from torch.multiprocessing.reductions import StorageWeakRef

from .prefault import populate

__all__ = [
    "BatchPool",
    "PooledTensor",
    "MAX_SLOTS",
    "MAX_BYTES",
    "mapped_slots",
    "received",
    "release",
    "running",
    "process_start",
]

#: Buffers one worker keeps at most (prefetched batches, the one in use, and slack).
MAX_SLOTS = 8
#: Bytes one worker keeps at most; larger batches use fresh segments.
MAX_BYTES = 512 << 20

_FREE, _BUSY = 0, 1


_ITEMSIZES: dict[torch.dtype, int] = {}


def _itemsize(dtype: torch.dtype) -> int:
    """Bytes per element of ``dtype`` (``torch.dtype.itemsize`` exists only from torch 2.1 on)."""
    size = _ITEMSIZES.get(dtype)
    if size is None:
        size = _ITEMSIZES[dtype] = torch.empty(0, dtype=dtype).element_size()
    return size


class BatchPool:
    """Shared-memory buffers of one worker process, refilled once the main process frees them."""

    def __init__(
        self, max_slots: int = MAX_SLOTS, max_bytes: int = MAX_BYTES, owner: tuple[str, int] | None = None
    ) -> None:
        """``owner``: (dataset key, worker id) of a DataLoader worker: it adopts the pool its predecessor left."""
        self.max_slots = int(max_slots)
        self.max_bytes = int(max_bytes)
        self.owner = owner
        self.pid = os.getpid()
        #: Batches served from a kept buffer / from a fresh segment (for tests and benchmarks).
        self.reused = 0
        self.fresh = 0
        #: Slots this process has mapped in (see :mod:`.prefault`): a slot inherited or made is not, until used.
        self.mapped_in: set[int] = set()
        #: Slots adopted from an exited predecessor: their pages exist (mapped in by read faults, see prefault).
        self.inherited: set[int] = set()
        self.adopted = owner is not None and self._adopt(owner)
        if not self.adopted:
            self.flags = torch.zeros(self.max_slots, dtype=torch.uint8).share_memory_()  # type: ignore[no-untyped-call]
            self._slots: list[torch.UntypedStorage] = []
            #: Names this pool in the main process, which keeps the mappings of the slots sent once.
            self.token = os.urandom(8).hex()
            self.sent: set[int] = set()

    def _adopt(self, owner: tuple[str, int]) -> bool:
        """Take over the pool of ``owner``'s exited predecessor, as this (forked) process inherited the main
        process's mappings of it; False when there is none to take."""
        for token, (pid, flags, slots, start) in list(_mapped.items()):
            claim = _claims.get(token)
            if claim is None or claim.owner != owner or len(flags) != self.max_slots or running(pid, start):
                continue
            if claim.adopter_running() or not claim.lock.acquire(block=False):
                continue
            claim.cell[0], claim.cell[1] = self.pid, process_start(self.pid) or -1
            util.Finalize(None, claim.lock.release, exitpriority=0)  # at this worker's exit: the next may adopt
            n = 0
            while n in slots and n < self.max_slots:
                n += 1
            self.flags, self.token = flags, token
            self._slots = [torch.from_numpy(slots[k]).untyped_storage() for k in range(n)]
            self.sent = set(range(n))  # mapped in the main process already
            self.inherited = set(range(n))
            return True
        return False

    def empty(self, shape: tuple[int, ...], dtype: torch.dtype) -> tuple[torch.Tensor, int | None]:
        """An uninitialised tensor in shared memory and its slot (None: a fresh, unpooled segment)."""
        nbytes = math.prod(shape) * _itemsize(dtype)
        flags = self.flags.numpy()
        for slot, storage in enumerate(self._slots):
            if flags[slot] == _FREE and storage.nbytes() >= nbytes:
                self.reused += 1
                return self._mapped(storage, nbytes, shape, dtype, slot), slot
        held = sum(s.nbytes() for s in self._slots)
        if len(self._slots) < self.max_slots and held + nbytes <= self.max_bytes:
            storage = torch.UntypedStorage._new_shared(nbytes)  # type: ignore[no-untyped-call]
            self._slots.append(storage)
            self.fresh += 1
            return self._mapped(storage, nbytes, shape, dtype, len(self._slots) - 1), len(self._slots) - 1
        self.fresh += 1
        fresh = torch.UntypedStorage._new_shared(nbytes)  # type: ignore[no-untyped-call]
        return self._mapped(fresh, nbytes, shape, dtype, None), None

    def _mapped(
        self, storage: torch.UntypedStorage, nbytes: int, shape: tuple[int, ...], dtype: torch.dtype, slot: int | None
    ) -> torch.Tensor:
        """A tensor on ``storage``, whose first ``nbytes`` this process has mapped in (one call, not a fault per page,
        the first time: the slot's, or the unpooled segment's, first batch in this process)."""
        if slot is None or slot not in self.mapped_in:
            populate(storage.data_ptr(), nbytes, present=slot in self.inherited)
            if slot is not None and nbytes == storage.nbytes():
                self.mapped_in.add(slot)
        return _on(storage, shape, dtype)

    def lease(self, tensor: torch.Tensor, slot: int | None) -> torch.Tensor:
        """What the worker yields for ``tensor``: a PooledTensor on a pooled slot, else the tensor itself.

        The slot counts as in use from now until the main process has received and freed it.
        """
        if slot is None:
            return tensor
        self.flags.numpy()[slot] = _BUSY  # (numpy's item assignment: a tenth of torch's)
        lent = tensor.as_subclass(PooledTensor)
        lent._pool = (self, slot)
        return lent


def _on(storage: torch.UntypedStorage, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    return torch.empty(0, dtype=dtype).set_(storage, 0, shape)  # type: ignore[call-overload,no-any-return]


class PooledTensor(torch.Tensor):
    """A batch in a worker's pooled buffer; pickled to the main process it arrives as a plain tensor.

    Operations on it give plain tensors (``__torch_function__`` is disabled for the subclass).
    """

    __torch_function__ = torch._C._disabled_torch_function_impl  # type: ignore[assignment]
    _pool: tuple[BatchPool, int]

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        from torch.utils.data import get_worker_info

        pool, slot = self._pool
        plain = self.as_subclass(torch.Tensor)
        if get_worker_info() is None:  # not on its way to the DataLoader's main process
            return (_received, (plain, pool.flags, slot))
        if slot in pool.sent:
            return (_received_again, (pool.token, slot, tuple(plain.shape), plain.dtype, pool.pid))
        pool.sent.add(slot)
        return (_received, (plain, pool.flags, slot, pool.token, pool.pid, pool.owner))


class _Claim:
    """Who may fill a pool whose filler exited: the worker of the same ``owner`` that takes ``lock`` (made in the
    main process, inherited by the workers forked after it); ``cell`` holds its pid and start time."""

    def __init__(self, owner: tuple[str, int]) -> None:
        self.owner = owner
        self.lock = multiprocessing.Lock()
        self.cell: Any = multiprocessing.RawArray("q", 2)
        #: The exited adopter seen holding the lock by the last look of the main process (see _forget_exited).
        self.suspect = 0

    def adopter_running(self) -> bool:
        pid, start = int(self.cell[0]), int(self.cell[1])
        return pid > 0 and running(pid, start if start >= 0 else None)


_held: list[tuple[StorageWeakRef, torch.Tensor, int]] = []
_held_lock = threading.Lock()
#: Main process: pooled batches received with their segment / on a segment received before.
received = {"segments": 0, "on_kept": 0}
#: Main process: token -> (worker pid, flags, {slot: the slot's segment as a uint8 array}, the worker's start time
#: (see :func:`process_start`)).
_mapped: dict[str, tuple[int, torch.Tensor, dict[int, np.ndarray], int | None]] = {}
#: Main process: token -> who may adopt the pool once its worker has exited (pools of DataLoader workers only).
_claims: dict[str, _Claim] = {}


def _received(
    tensor: torch.Tensor,
    flags: torch.Tensor,
    slot: int,
    token: str | None = None,
    pid: int = 0,
    owner: tuple[str, int] | None = None,
) -> torch.Tensor:
    """Unpickling a PooledTensor (main process): free the slots nobody holds any more, watch this one.

    With a ``token`` (sent by a DataLoader worker) the slot's segment is kept for its later batches; with an
    ``owner`` the pool may be adopted by that owner's next worker.
    """
    if token is not None:
        whole = torch.empty(0, dtype=torch.uint8).set_(tensor.untyped_storage())
        with _held_lock:
            _forget_exited()
            if token not in _mapped:
                _mapped[token] = (pid, flags, {}, process_start(pid))
                if owner is not None:
                    _claims[token] = _Claim(owner)
            _mapped[token][2][slot] = whole.numpy()
            received["segments"] += 1
        return _received_again(token, slot, tuple(tensor.shape), tensor.dtype, pid)
    release()
    return _watch(tensor, flags, slot)


def _received_again(token: str, slot: int, shape: tuple[int, ...], dtype: torch.dtype, pid: int = 0) -> torch.Tensor:
    """Unpickling a batch of a slot whose segment the main process already maps: a tensor on it (``pid``: the
    worker that filled it, which may have adopted the pool)."""
    release()
    with _held_lock:
        entry = _mapped.get(token)
        if entry is not None and pid and entry[0] != pid:
            entry = _mapped[token] = (pid, entry[1], entry[2], process_start(pid))
    if entry is None or slot not in entry[2]:
        raise RuntimeError(
            "a pooled batch arrived for a shared-memory slot this process never received; pooled batches "
            "from ome_arrow_torch DataLoader workers can only be unpickled by the DataLoader's own process"
        )
    nbytes = math.prod(shape) * _itemsize(dtype)
    # from_numpy: a storage object of this batch's own (its weak reference dies with the batch)
    tensor = torch.from_numpy(entry[2][slot][:nbytes]).view(dtype).view(shape)
    received["on_kept"] += 1
    return _watch(tensor, entry[1], slot)


def _watch(tensor: torch.Tensor, flags: torch.Tensor, slot: int) -> torch.Tensor:
    with _held_lock:
        _held.append((StorageWeakRef(tensor.untyped_storage()), flags, slot))  # type: ignore[no-untyped-call]
    return tensor


def _forget_exited() -> None:
    """Drop the kept segments of pools whose worker process has exited and that no live worker adopted (call with
    the lock held). A dropped pool's claim stays taken: a worker forked before cannot adopt it any more."""
    for token, (pid, _, _, start) in list(_mapped.items()):
        if running(pid, start):
            continue
        claim = _claims.get(token)
        if claim is not None and (claim.adopter_running() or not claim.lock.acquire(block=False)):
            holder = int(claim.cell[0])
            if claim.adopter_running() or holder <= 0 or claim.suspect != holder:
                # adopted: its new worker's first batch is on its way (or it has taken the lock and not yet said
                # so: looked at again next time)
                claim.suspect = holder
                continue
            # the same exited adopter holds the lock at two looks: it died before releasing it
        del _mapped[token]
        _claims.pop(token, None)


def process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot, from ``/proc``); None where it cannot be told."""
    stat = _proc_stat(pid)
    return int(stat[19]) if stat is not None and len(stat) > 19 else None


def running(pid: int, start: int | None = None) -> bool:
    """Whether process ``pid`` is still running: not gone, not a zombie (exited, not yet reaped by its parent) and,
    with ``start`` (:func:`process_start` when it was seen), not another process that reuses its number."""
    stat = _proc_stat(pid)
    if stat is not None:
        if stat[0] in ("Z", "X", "x"):  # zombie, dead
            return False
        return start is None or len(stat) <= 19 or int(stat[19]) == start
    if os.path.isdir("/proc/self"):  # /proc is there, the process is not
        return False
    try:  # no /proc (macOS): signal 0 tells only whether the number is taken, zombies included
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first), or None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode("ascii", "replace")
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def mapped_slots() -> int:
    """Slots whose segment this (main) process keeps for later batches (for tests and benchmarks)."""
    with _held_lock:
        return sum(len(slots) for _, _, slots, _ in _mapped.values())


def release() -> int:
    """Clear the flags of received batches whose storage is gone; returns how many are still held."""
    with _held_lock:
        kept = []
        for ref, flags, slot in _held:
            if ref.expired():  # type: ignore[no-untyped-call]
                flags.numpy()[slot] = _FREE
            else:
                kept.append((ref, flags, slot))
        _held[:] = kept
        return len(kept)


# Before a fork (a DataLoader starting workers) the slots of batches freed since the last arrival are marked free,
# so that the new workers, adopting their predecessors' pools, find them free.
os.register_at_fork(before=release)
