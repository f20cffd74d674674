"""The helper thread of large box reads, and whether a core is free for it now (typed_chunk/box_plans.py)."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Final

from ..thread_pools import process_pool

if TYPE_CHECKING:  # concurrent.futures loads with the first helper thread
    from concurrent.futures import ThreadPoolExecutor

__all__ = ["RECHECK_NS", "helper_pool", "loader_worker", "running", "spare_core", "usable_cores"]

#: How long (ns) :func:`spare_core` reuses the machine's answer: reads in a loop look at /proc/loadavg at most this
#: often (a busy machine's answer, no helper, costs nothing; a stale idle one at most this long of a shared helper).
RECHECK_NS: Final[int] = 1_000_000

_answer: tuple[int, bool] = (-(1 << 62), False)  # (time.monotonic_ns() of the last look, its answer)
_loadavg_lock = threading.Lock()  # (the /proc/loadavg descriptor opened once)


def helper_pool() -> ThreadPoolExecutor:
    """The one worker thread that helps read a large box (made on first use, per process)."""
    return process_pool("ome-arrow-box-read", 1)


def spare_core() -> bool:
    """Whether a second thread would find a core: the process may run on two or more, is no DataLoader worker
    (:func:`loader_worker`) and, besides this thread, fewer threads are running on the machine right now than it
    has cores less one (:func:`running`). (The load average, where /proc/loadavg is not, counts this thread too: at
    most the cores less one.) The machine's answer is reused for :data:`RECHECK_NS` (reading /proc/loadavg costs
    ~5-10 us a look; only boxes of THREADED_BYTES or more ask, ~1% of reading one of 4 MiB)."""
    global _answer
    cores = usable_cores()
    if cores < 2 or loader_worker():
        return False
    now = time.monotonic_ns()
    at, answer = _answer
    if now - at < RECHECK_NS:
        return answer
    answer = _core_free(cores)
    _answer = (now, answer)
    return answer


def _core_free(cores: int) -> bool:
    """Whether, besides this thread, fewer threads run on the machine right now than ``cores`` less one."""
    now = running()
    if now is not None:
        return now - 1 <= cores - 2
    return not hasattr(os, "getloadavg") or os.getloadavg()[0] <= cores - 1


def loader_worker() -> bool:
    """Whether this process is a worker of a torch DataLoader (whose siblings read too: each stays on one thread,
    as torch's own ops do there). Looked up without importing torch."""
    worker = sys.modules.get("torch.utils.data._utils.worker")
    return worker is not None and getattr(worker, "_worker_info", None) is not None


def running() -> int | None:
    """Threads running or ready to run on the machine now, this one included (/proc/loadavg's fourth field, read
    through a descriptor opened once per process: ~5 us), or None where that is not known."""
    global _LOADAVG
    if _LOADAVG is None:
        with _loadavg_lock:
            if _LOADAVG is None:
                try:
                    _LOADAVG = os.open("/proc/loadavg", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                except OSError:
                    _LOADAVG = -1
    if _LOADAVG < 0:
        return None
    try:
        return int(os.pread(_LOADAVG, 128, 0).split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):
        return None


def usable_cores() -> int:
    """CPUs this process may run on (counted once)."""
    global _CORES
    if _CORES is None:
        _CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return _CORES


_CORES: int | None = None
_LOADAVG: int | None = None  # the descriptor of /proc/loadavg, -1 where it cannot be opened
