"""A few threads for a write's byte work: copying chunks out of the image, their XXH3-64 checksums and the CRC-32
page checksums. numpy's copies, ``xxhash`` (above 64 KiB) and ``zlib.crc32`` (above 5 KiB) release the GIL, so a
write of a large image uses more than one core, as tensorstore's does; a small one stays in the calling thread (a
hand-off costs tens of microseconds).

Work is split into contiguous parts of a range of items (chunks, row groups); each part runs whole in one thread,
and the parts' results come back in order. The pool is made on first use, once per process (a forked child makes
its own).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, TypeVar

from ..thread_pools import process_pool

if TYPE_CHECKING:
    pass

__all__ = ["THREADS", "MIN_BYTES", "start_parts"]

T = TypeVar("T")

#: Threads of the pool (the calling thread waits while they work).
THREADS: Final[int] = max(1, min(4, os.cpu_count() or 1))
#: Work on fewer bytes than this stays in the calling thread.
MIN_BYTES: Final[int] = 2 << 20


def start_parts(n: int, nbytes: int, work: Callable[[int, int], T]) -> Callable[[], list[T]]:
    """Start ``work(a, b)`` on contiguous parts ``[a, b)`` of ``range(n)`` (``nbytes``: the bytes they cover);
    returns the function that waits for the parts' results, in order (and raises the first part's error).

    Under :data:`MIN_BYTES` (or with one thread, or one item) there is one part, run in the calling thread when
    the results are asked for."""
    parts = min(THREADS, n) if nbytes >= MIN_BYTES else 1
    if parts <= 1:
        return lambda: [work(0, n)]
    bounds = [n * k // parts for k in range(parts + 1)]
    pool = process_pool("ome-arrow-write", THREADS)
    futures = [pool.submit(work, a, b) for a, b in itertools.pairwise(bounds)]
    return lambda: [f.result() for f in futures]
