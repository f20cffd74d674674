"""Batches and tiles: the windows a view is streamed in, and background prefetch."""

from __future__ import annotations

import itertools
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from .arguments import seed_generator, whole_number
from .errors import SelectionError
from .selection import AxisIndex
from .thread_pools import process_pool

if TYPE_CHECKING:  # concurrent.futures loads with the first prefetch: a first plane has none
    from concurrent.futures import Future, ThreadPoolExecutor

__all__ = [
    "Window",
    "windows",
    "prefetched",
    "grouped",
    "flattened",
    "Failed",
    "Warned",
    "windows_one_by_one",
    "GROUP_ITEMS",
    "GROUP_BYTES",
    "PREFETCH_THREADS",
    "prefetch_pool",
]

#: One item: for some axes of a view, the indices it takes (other axes: all).
Window = dict[str, AxisIndex]
T = TypeVar("T")
V = TypeVar("V")
#: Items a stream reads together at most (one batched read of their chunks; see :func:`grouped`) ... (64: a
#: 2048x2048 uint16 plane of 256x256 tiles is one group, read with no hand-off to a prefetch thread; in groups of 16
#: its stream with prefetch=2 took 11-28% more CPU, about what prefetch=0 saves there: docs/benchmarks.md)
GROUP_ITEMS = 64
#: ... and bytes of pixels: a group is at most this large (or one item).
GROUP_BYTES = 8 << 20


def _spans(n: int, step: int) -> list[range]:
    return [range(i, min(n, i + step)) for i in range(0, n, step)]


def windows(
    sizes: Mapping[str, int],
    *,
    batch_size: int | None = None,
    tiles: Mapping[str, int] | None = None,
    shuffle: bool = False,
    seed: int | None = None,
) -> list[Window]:
    """The windows of a view with axis ``sizes`` (layout axes only).

    Batches of ``batch_size`` run over T (the whole T axis per item when None). ``tiles``
    maps axes to tile lengths; edge tiles are smaller, never padded. With ``shuffle`` the
    T indices are permuted before batching (gathered batches) and tile order is permuted.
    """
    rng = seed_generator(seed) if shuffle else None  # (making one costs more than the windows)
    per_axis: list[list[tuple[str, AxisIndex]]] = []
    if "T" in sizes:
        n_t = sizes["T"]
        if batch_size is not None:
            batch_size = whole_number(batch_size, "batch_size")
        if batch_size is not None and batch_size < 1:
            raise SelectionError(f"batch_size must be >= 1, got {batch_size}")
        step = batch_size or n_t
        if rng is not None:
            order = [int(i) for i in rng.permutation(n_t)]
            per_axis.append([("T", tuple(order[i : i + step])) for i in range(0, n_t, step)])
        else:
            per_axis.append([("T", r) for r in _spans(n_t, step)])
    for ax, size in (tiles or {}).items():
        if ax not in sizes:
            raise SelectionError(f"cannot tile over {ax}: the view's layout has no {ax} axis")
        size = whole_number(size, f"tile size along {ax}")
        if size < 1:
            raise SelectionError(f"tile size along {ax} must be >= 1, got {size}")
        per_axis.append([(ax, r) for r in _spans(sizes[ax], size)])
    items = [dict(combo) for combo in itertools.product(*per_axis)]
    if rng is not None and tiles:
        items = [items[i] for i in rng.permutation(len(items))]
    return items


#: Threads the shared prefetch pool runs at most (each stream keeps ``prefetch`` of its items ahead in it).
PREFETCH_THREADS = 4
_in_pool = threading.local()


def prefetch_pool() -> ThreadPoolExecutor:
    """The process's prefetch threads, started once (starting two threads per stream cost ~0.2 ms a plane)."""
    return process_pool("ome-arrow-prefetch", PREFETCH_THREADS, _mark_prefetch_thread)


def _mark_prefetch_thread() -> None:
    _in_pool.active = True


def prefetched(tasks: Sequence[Callable[[], T]], prefetch: int) -> Iterator[T]:
    """Run ``tasks`` in order, keeping up to ``prefetch`` of them running ahead in the shared prefetch threads.

    The first task runs in the calling thread (its result is wanted at once: a hand-off would only add a
    wake-up) while the next ``prefetch`` start in the pool; a task that no thread has started by the time its
    result is wanted is taken back and run in the calling thread too (on a busy machine a wake-up costs more
    than the task). A stream iterated inside a prefetch thread runs its tasks in place (its items waiting on
    threads that wait on them could otherwise exhaust the pool).
    """
    if prefetch <= 0 or getattr(_in_pool, "active", False) or len(tasks) < 2:
        for task in tasks:
            yield task()
        return
    pool = prefetch_pool()
    pending: deque[tuple[Future[T], Callable[[], T]]] = deque()
    it = iter(tasks)
    first = next(it)
    try:
        for task in itertools.islice(it, prefetch):
            pending.append((pool.submit(task), task))
        yield first()
        while pending:
            fut, task = pending.popleft()
            nxt = next(it, None)
            if nxt is not None:
                pending.append((pool.submit(nxt), nxt))
            yield task() if fut.cancel() else fut.result()
    finally:
        for fut, _ in pending:
            fut.cancel()


def grouped(items: Sequence[T], item_bytes: int) -> list[list[T]]:
    """``items`` in order, cut into runs of at most :data:`GROUP_ITEMS` items and :data:`GROUP_BYTES` bytes
    (``item_bytes`` each; a run holds at least one item) that a stream reads together."""
    size = max(1, min(GROUP_ITEMS, GROUP_BYTES // max(item_bytes, 1)))
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


class Failed(NamedTuple):
    """An item of a group that could not be made: :func:`flattened` raises ``error`` in its place."""

    error: Exception


class Warned(NamedTuple):
    """A note at the head of a group: :func:`flattened` issues it as a ``category`` warning in its turn, from the
    consuming thread (not the prefetch thread that made the group)."""

    message: str
    category: type[Warning]


def windows_one_by_one(make: Callable[[Window], V], items: Sequence[Window]) -> list[V | Exception]:
    """``make(w)`` for each of ``items``, ending with the exception of the first that raises (if any)."""
    out: list[V | Exception] = []
    for w in items:
        try:
            out.append(make(w))
        except Exception as exc:
            out.append(exc)
            break
    return out


def flattened(groups: Iterator[list[Any]]) -> Iterator[Any]:
    """The items of ``groups`` one by one (a :class:`Failed` one raises its error, a :class:`Warned` one warns, in
    their turn); closing this closes ``groups`` (stopping its reads in flight)."""
    try:
        for group in groups:
            for item in group:
                if isinstance(item, Failed):
                    raise item.error
                if isinstance(item, Warned):
                    warnings.warn(item.message, item.category, stacklevel=2)
                    continue
                yield item
    finally:
        close = getattr(groups, "close", None)
        if close is not None:
            close()
