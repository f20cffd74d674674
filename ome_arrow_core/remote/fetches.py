"""Several ranged GETs of one object side by side: a batch's runs of bytes fetched at once, not one after another.

An object store answers each GET after a round trip (tens of milliseconds on S3), so a batch of images that lie
apart (``ds.read`` of random images) costs its number of runs times that round trip when they are fetched in turn.
:func:`fetch_spans` keeps up to :data:`THREADS` of them in flight (the calling thread waits; one run stays in it).
The pool is made on first use, once per process (a forked child makes its own).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

from ..fork_locks import fork_safe_lock

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

__all__ = ["THREADS", "fetch_spans"]

#: Ranged GETs in flight at once (they wait on the network, not on a core).
THREADS: Final[int] = 8

_pool_of: tuple[int, ThreadPoolExecutor] | None = None  # (pid, pool)
_lock = fork_safe_lock(globals(), "_lock")  # a child forked while another thread held it makes its own


def _pool() -> ThreadPoolExecutor:
    global _pool_of
    from concurrent.futures import ThreadPoolExecutor

    pid = os.getpid()
    with _lock:
        if _pool_of is None or _pool_of[0] != pid:
            _pool_of = (pid, ThreadPoolExecutor(THREADS, "ome-arrow-fetch"))
        return _pool_of[1]


def fetch_spans(read_at: Callable[[int, int], bytes], spans: Sequence[tuple[int, int]]) -> list[bytes]:
    """``read_at(start, length)`` of each of ``spans`` (``(start, length)``), in order, up to :data:`THREADS` at once.
    Every request has ended when this returns or raises (the first failure, in the order of ``spans``)."""
    if len(spans) <= 1:
        return [read_at(a, n) for a, n in spans]
    from concurrent.futures import wait

    futures = [_pool().submit(read_at, a, n) for a, n in spans]
    wait(futures)
    return [f.result() for f in futures]
