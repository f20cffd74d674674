"""Prefetching runs in one shared pool of threads per process (iteration.prefetched): results stay in order, a
stream iterated inside a prefetch thread runs in place (it cannot starve the pool it runs in), a task no pool
thread has started when it is wanted is run by the caller, and a forked child gets its own threads."""

from __future__ import annotations

import multiprocessing
import sys
import threading
from collections.abc import Callable
from functools import partial

import pytest

from ome_arrow_core.iteration import PREFETCH_THREADS, prefetch_pool, prefetched


def square(i: int) -> int:
    return i * i


def test_results_come_in_order_for_any_prefetch() -> None:
    tasks = [partial(square, i) for i in range(40)]
    for prefetch in (0, 1, 2, PREFETCH_THREADS, 3 * PREFETCH_THREADS):
        assert list(prefetched(tasks, prefetch)) == [i * i for i in range(40)]


def test_streams_nested_in_prefetch_threads_run_in_place() -> None:
    """Each inner stream run by a pool thread runs in that thread (were it queued on the pool, streams nested in
    every thread would wait on each other for ever). The first outer task runs in the caller and holds it until
    a pool thread has taken one of the others, so some are run by the pool whatever the machine's load."""
    seen: list[tuple[str, list[str]]] = []
    lock = threading.Lock()
    pooled = threading.Event()

    def inner_thread() -> str:
        return threading.current_thread().name

    def outer(i: int) -> int:
        name = threading.current_thread().name
        if name.startswith("ome-arrow-prefetch"):
            pooled.set()
        elif i == 0:
            assert pooled.wait(timeout=120)
        inner: list[Callable[[], str]] = [inner_thread] * 5
        names = list(prefetched(inner, 2))
        with lock:
            seen.append((name, names))
        return i

    tasks = [partial(outer, i) for i in range(6)]
    assert list(prefetched(tasks, 2)) == list(range(6))
    assert len(seen) == 6
    in_pool = [(name, names) for name, names in seen if name.startswith("ome-arrow-prefetch")]
    assert in_pool
    for name, names in in_pool:
        assert names == [name] * 5


def test_tasks_no_pool_thread_started_are_run_by_the_caller() -> None:
    """A task that no pool thread has started when its turn comes is run by the caller (here every pool thread is
    held by other work until the stream has ended: waiting on the pool would never end)."""
    pool = prefetch_pool()
    started = threading.Barrier(PREFETCH_THREADS + 1)
    release = threading.Event()

    def hold() -> None:
        started.wait(timeout=120)
        release.wait(timeout=120)

    held = [pool.submit(hold) for _ in range(PREFETCH_THREADS)]
    started.wait(timeout=120)  # every pool thread is held
    out: list[list[str]] = []
    caller = threading.Thread(target=lambda: out.append(list(prefetched([current_name] * 5, 2))))
    caller.start()
    caller.join(timeout=60)
    release.set()
    caller.join()
    for fut in held:
        fut.result()
    assert out == [[caller.name] * 5]


def current_name() -> str:
    return threading.current_thread().name


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
