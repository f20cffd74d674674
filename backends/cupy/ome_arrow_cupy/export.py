"""Tensor views to CUDA: pinned host staging, async copies on a non-blocking stream.

Large views are copied in blocks through rotating pinned buffers: a few threads gather
blocks from the (possibly strided) host view while earlier blocks are being copied.
"""

from __future__ import annotations

import math
import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from ome_arrow_core import TensorView
from ome_arrow_core.plugin_api import HostBlocks

from .devices import check_device, import_cupy

__all__ = [
    "export_cupy",
    "pinned_host",
    "is_pinned_host",
    "PINNED",
    "blocks",
    "block_bytes",
    "settle",
    "copy_stream",
    "gather_pool",
    "BLOCK_BYTES",
    "SPLIT_BYTES",
    "BUFFERS",
    "GATHER_THREADS",
]

#: Bytes staged per block at most, how many pinned blocks rotate, and threads gathering them.
BLOCK_BYTES = 8 * 2**20
GATHER_THREADS = min(4, os.cpu_count() or 1)
BUFFERS = GATHER_THREADS + 2
#: A view of at least twice this many bytes is cut into blocks of at least this size, one per gather thread:
#: its gathering runs on every gather thread and overlaps its copies (an 8 MiB plane was one block, gathered
#: by one thread before its one copy started). On a lent H200 (benchmarks/cuda_staging.py) an 8 MiB plane
#: took 0.84 ms in 4 blocks of 2 MiB, 1.10 ms in 8 of 1 MiB and 1.93 ms in 16 of 512 KiB: each block costs
#: a thread hand-off, and the host copy's bandwidth is reached with 2-4 threads.
SPLIT_BYTES = 2**20

Index = tuple[int | slice, ...]
_local = threading.local()
#: The live blocks of :func:`pinned_host`.
PINNED = HostBlocks()
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def gather_pool() -> ThreadPoolExecutor:
    """The shared threads that gather host blocks into pinned memory (numpy drops the GIL)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(GATHER_THREADS, thread_name_prefix="ome-arrow-cupy-gather")
        return _pool


def blocks(shape: tuple[int, ...], itemsize: int, block_bytes: int = BLOCK_BYTES) -> Iterator[Index]:
    """Indices that cut a C-order array of ``shape`` into contiguous runs of <= ``block_bytes``.

    Each index is leading ints then one slice, so it selects a C-contiguous part of a
    C-contiguous array; in order, the parts tile it exactly once. Runs are never shorter
    than one row of the last axis.
    """
    if not shape:
        yield ()
        return
    row = itemsize * math.prod(shape[1:])
    if len(shape) == 1 or row <= block_bytes:
        step = max(1, block_bytes // max(row, 1))
        for i in range(0, shape[0], step):
            yield (slice(i, min(i + step, shape[0])),)
        return
    for i in range(shape[0]):
        for sub in blocks(shape[1:], itemsize, block_bytes):
            yield (i, *sub)


def block_bytes(nbytes: int) -> int:
    """Bytes per block for a view of ``nbytes``: :data:`BLOCK_BYTES`, or less to give each gather thread one
    block (of at least :data:`SPLIT_BYTES`) when the view has at least 2 x :data:`SPLIT_BYTES`."""
    if nbytes < 2 * SPLIT_BYTES:
        return BLOCK_BYTES
    return min(BLOCK_BYTES, max(SPLIT_BYTES, -(-nbytes // GATHER_THREADS)))


def copy_stream(cp: Any, index: int) -> Any:
    """This thread's non-blocking copy stream on device ``index`` (created on first use)."""
    streams: dict[int, Any] | None = getattr(_local, "streams", None)
    if streams is None:
        streams = _local.streams = {}
    stream = streams.get(index)
    if stream is None:
        stream = streams[index] = cp.cuda.Stream(non_blocking=True)
    return stream


def pinned_host(nbytes: int) -> np.ndarray:
    """``nbytes`` of pinned host memory (CuPy's pinned pool) as a writable uint8 array, remembered while it lives
    (:data:`PINNED`): the exporter's ``host_memory``, where a lazy view exported to CUDA is read
    (ome_arrow_core/host_memory.py). DeviceError where CuPy sees no CUDA device (pinned memory needs one)."""
    cp = import_cupy()
    check_device(cp, 0)
    return PINNED.add(np.frombuffer(cp.cuda.alloc_pinned_memory(nbytes), np.uint8, nbytes))


def is_pinned_host(host: np.ndarray) -> bool:
    """True when ``host`` lies in a live block of :func:`pinned_host` (it can be copied to the device as is)."""
    return PINNED.find(host) is not None


def _pinned(cp: Any, size: int, n: int) -> list[Any]:
    """``n`` pinned host buffers of at least ``size`` bytes, this thread's, reused from call to call (each
    allocation and each event creation is a driver call: per plane they cost more than a third of its copy)."""
    bufs: list[Any] = getattr(_local, "pinned", [])
    if len(bufs) < n or any(b.size() < size for b in bufs[:n]):
        bufs = _local.pinned = [cp.cuda.alloc_pinned_memory(size) for _ in range(max(n, len(bufs)))]
    return bufs[:n]


def _events(cp: Any, index: int, n: int, use: str = "copied") -> list[Any]:
    """``n`` events on device ``index`` for ``use``, this thread's, reused from call to call (recorded anew)."""
    cache: dict[tuple[str, int], list[Any]] | None = getattr(_local, "events", None)
    if cache is None:
        cache = _local.events = {}
    events = cache.setdefault((use, index), [])
    while len(events) < n:
        events.append(cp.cuda.Event(block=False, disable_timing=True))
    return events[:n]


def _stage(buf: Any, src: np.ndarray) -> np.ndarray:
    """Copy ``src`` into the pinned buffer ``buf``; return the staged C-contiguous array."""
    staging = np.frombuffer(buf, dtype=src.dtype, count=src.size).reshape(src.shape)
    np.copyto(staging, src, casting="no")
    return staging


def _copy(cp: Any, host: np.ndarray, out: Any, stream: Any, index: int) -> None:
    """Copy ``host`` into ``out`` (on device ``index``) on ``stream`` through rotating pinned buffers; wait for it.

    Block ``k`` is gathered into buffer ``k % n`` by the thread pool, once the copy that last read that
    buffer has finished (its event); copies are queued in order as their blocks are ready.
    """
    parts = list(blocks(host.shape, host.itemsize, block_bytes(host.nbytes)))
    size = max(host[idx].nbytes for idx in parts)
    n = min(max(BUFFERS, 2), len(parts))
    pinned = _pinned(cp, size, n)
    if n == 1:
        out.set(_stage(pinned[0], host), stream=stream)
        stream.synchronize()
        return
    pool = gather_pool()
    copied = _events(cp, index, n)

    def refill(k: int) -> np.ndarray:
        copied[k % n].synchronize()  # the copy of block k - n, the last to read this buffer, is done
        return _stage(pinned[k % n], host[parts[k]])

    pending: deque[Future[np.ndarray]] = deque(pool.submit(_stage, pinned[k], host[parts[k]]) for k in range(n))
    try:
        for k, idx in enumerate(parts):
            out[idx].set(pending.popleft().result(), stream=stream)
            if k + n < len(parts):
                copied[k % n].record(stream)
                pending.append(pool.submit(refill, k + n))
    except BaseException as exc:
        settle(pending, stream, exc)
        raise
    stream.synchronize()


def settle(pending: Iterable[Future[Any]], stream: Any, error: BaseException) -> None:
    """After ``error``: cancel or wait for the gathers still pending (no thread may still write into the buffer
    we drop) and wait for the copies queued (none may still read it). A synchronisation that fails too (CUDA's
    errors are sticky) is added to ``error`` as a note, never raised in its place."""
    pending = list(pending)
    for fut in pending:
        fut.cancel()
    for fut in pending:
        if not fut.cancelled():
            fut.exception()
    try:
        stream.synchronize()
    except Exception as sync_error:
        error.add_note(f"then synchronising the copy stream failed too: {type(sync_error).__name__}: {sync_error}")


def export_cupy(view: TensorView, *, contiguous: bool = False, device_index: int = 0, **_: Any) -> Any:
    """Copy ``view`` to ``cuda:{device_index}`` and return a C-contiguous ``cupy.ndarray``.

    A view read into pinned memory (:func:`pinned_host`: a lazy view's read) is copied from there; other
    host pixels are gathered straight from the (possibly strided) view into pinned memory
    and copied asynchronously on a non-blocking stream that first waits for the current
    stream's queued work (the memory pool may hand back memory that work still uses). The
    copy stream is synchronised before returning, so the array is complete on any stream.
    ``contiguous`` is accepted for the exporter protocol: the result is always a C-order copy.
    Raises DeviceError when the device does not exist.
    """
    cp = import_cupy()
    check_device(cp, device_index)
    host = view.to_numpy()
    with cp.cuda.Device(device_index):
        out = cp.empty(host.shape, dtype=host.dtype)  # from the current stream's pool arena
        if out.size == 0:
            return out
        stream = copy_stream(cp, device_index)
        (queued,) = _events(cp, device_index, 1, "queued")
        queued.record(cp.cuda.get_current_stream())
        stream.wait_event(queued)
        if host.flags.c_contiguous and is_pinned_host(host):  # read into pinned memory: copied as it is
            out.set(host, stream=stream)
            stream.synchronize()
        else:
            _copy(cp, host, out, stream, device_index)
    return out
