"""Thread pools made once per process: threads do not survive a fork, so a forked child makes its own.

The library's background threads (a stream's prefetch, a large box read's helper, a write's byte work, a remote
batch's GETs) each come from a pool of their own, made on first use (``concurrent.futures`` is imported then: a
first plane imports none of it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from .fork_locks import fork_safe_lock

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

__all__ = ["process_pool"]

_pools: dict[str, tuple[int, ThreadPoolExecutor]] = {}  # name -> (pid, pool)
_lock = fork_safe_lock(globals(), "_lock")  # a child forked while another thread held it makes its own


def process_pool(name: str, threads: int, initializer: Callable[[], None] | None = None) -> ThreadPoolExecutor:
    """This process's pool ``name`` of ``threads`` threads (named after it; each starting with ``initializer``),
    made on first use."""
    pid = os.getpid()
    got = _pools.get(name)
    if got is not None and got[0] == pid:
        return got[1]
    from concurrent.futures import ThreadPoolExecutor

    with _lock:
        got = _pools.get(name)
        if got is None or got[0] != pid:
            got = _pools[name] = (pid, ThreadPoolExecutor(threads, name, initializer))
        return got[1]
