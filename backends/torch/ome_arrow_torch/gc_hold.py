"""Python's cyclic garbage collector held off while a DataLoader worker reads a batch of pixels.

A batched read makes many short-lived small objects (per chunk: projections, placements,
page heads; about 700 for a batch of 32 images of two chunks each), so the collector's
youngest generation ran about once per batch read in a DataLoader worker (measured: 29 young
and 3 older collections per worker and epoch of the loading benchmark's plate, 0.15-0.25 ms
each), though nearly all of those objects are freed by their reference counts as the read
ends. Held off during the read, they are gone before the collector looks. Nothing is lost:
the collector is switched back on (if it was on) when the last holder of the process leaves,
and cycles made meanwhile are collected by its next run. (``ome_arrow_ray.gc_hold`` does the same for Ray's
read tasks; backends share no private core module.)
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_held"]

_lock = threading.Lock()
_holders = 0
_was_enabled = False


def _child() -> None:
    """A forked child holds nothing: the threads of its parent that held the collector off are not in it (nor do
    they hold its lock: the child makes its own)."""
    global _holders, _lock
    _lock = threading.Lock()
    if _holders:
        _holders = 0
        if _was_enabled:
            gc.enable()


os.register_at_fork(after_in_child=_child)


@contextmanager
def gc_held() -> Iterator[None]:
    """Automatic collection off inside (several threads may hold it); back as it was when the last one leaves."""
    global _holders, _was_enabled
    with _lock:
        if _holders == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _was_enabled:
                gc.enable()
