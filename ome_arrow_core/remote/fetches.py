"""Several ranged GETs of one object side by side: a batch's runs of bytes fetched at once, not one after another.

An object store answers each GET after a round trip (tens of milliseconds on S3), so a batch of images that lie
apart (``ds.read`` of random images) costs its number of runs times that round trip when they are fetched in turn.
:func:`fetch_spans` keeps up to :data:`THREADS` of them in flight (the calling thread waits; one run stays in it),
in waves of at most :data:`WAVE_BYTES` (a large read holds no more than that beyond its output).
The pool is made on first use, once per process (a forked child makes its own).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Final

from ..thread_pools import process_pool

__all__ = ["THREADS", "WAVE_BYTES", "fetch_spans"]

#: Ranged GETs in flight at once (they wait on the network, not on a core).
THREADS: Final[int] = 8
#: The most bytes one wave of GETs fetches before its spans are consumed (a larger span is a wave of its own).
WAVE_BYTES: Final[int] = 32 << 20


def fetch_spans(
    read_at: Callable[[int, int], bytes], spans: Sequence[tuple[int, int]], wave_bytes: int = WAVE_BYTES
) -> Iterator[bytes]:
    """``read_at(start, length)`` of each of ``spans`` (``(start, length)``), yielded in order: fetched in waves of
    neighbouring spans of at most ``wave_bytes`` in all (a larger span alone), up to :data:`THREADS` at once, so
    at most one wave's bytes wait to be consumed. Every request of a wave has ended when its first span is yielded,
    or its first failure (in the order of ``spans``) raised."""
    k = 0
    while k < len(spans):
        j, total = k + 1, spans[k][1]
        while j < len(spans) and total + spans[j][1] <= wave_bytes:
            total += spans[j][1]
            j += 1
        if j - k == 1:
            yield read_at(*spans[k])
        else:
            from concurrent.futures import wait

            futures = [process_pool("ome-arrow-fetch", THREADS).submit(read_at, a, n) for a, n in spans[k:j]]
            wait(futures)
            for f in futures:
                yield f.result()
        k = j
