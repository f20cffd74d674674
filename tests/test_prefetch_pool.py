"""Prefetching runs in one shared pool of threads per process (iteration.prefetched): results stay in order, a
stream iterated inside a prefetch thread runs in place (it cannot starve the pool it runs in), and a forked
child gets its own threads."""

from __future__ import annotations

import multiprocessing
import sys
import threading
from collections.abc import Callable
from functools import partial

import pytest

from ome_arrow_core.iteration import PREFETCH_THREADS, prefetched


def square(i: int) -> int:
    return i * i


def test_results_come_in_order_for_any_prefetch() -> None:
    tasks = [partial(square, i) for i in range(40)]
    for prefetch in (0, 1, 2, PREFETCH_THREADS, 3 * PREFETCH_THREADS):
        assert list(prefetched(tasks, prefetch)) == [i * i for i in range(40)]


def test_streams_nested_in_prefetch_threads_run_in_place() -> None:
    """Each inner stream runs in the thread of the task that iterates it (were it queued on the pool, streams
    nested in every thread would wait on each other for ever)."""
    seen: list[tuple[str, list[str]]] = []
    lock = threading.Lock()

    def inner_thread() -> str:
        return threading.current_thread().name

    def outer(i: int) -> int:
        inner: list[Callable[[], str]] = [inner_thread] * 5
        names = list(prefetched(inner, 2))
        with lock:
            seen.append((threading.current_thread().name, names))
        return i

    tasks = [partial(outer, i) for i in range(6)]
    assert list(prefetched(tasks, 2)) == list(range(6))
    assert len(seen) == 6
    for name, names in seen:
        assert name.startswith("ome-arrow-prefetch")
        assert names == [name] * 5


def _child(out: multiprocessing.queues.Queue[list[int]]) -> None:  # type: ignore[name-defined]
    out.put(list(prefetched([partial(square, i) for i in range(10)], 2)))


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
# JAX, when another test loaded it, warns at every fork; the child here only prefetches
@pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_forked_child_prefetches_with_its_own_threads() -> None:
    assert list(prefetched([partial(square, i) for i in range(10)], 2)) == [i * i for i in range(10)]  # parent's pool
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q,))
    p.start()
    got = q.get(timeout=120)
    p.join()
    assert p.exitcode == 0
    assert got == [i * i for i in range(10)]
