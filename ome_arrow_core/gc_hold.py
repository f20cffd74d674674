"""Python's cyclic garbage collector held off while a backend reads pixels (a DataLoader worker's batch, a Ray
read task's block).

A batched read makes many short-lived small objects (per chunk: projections, placements, page heads; about 700
for a batch of 32 images of two chunks each), nearly all freed by their reference counts as the read ends; yet
the collector's youngest generation ran about once per batch read in a DataLoader worker (29 young and 3 older
collections per worker and epoch of the loading benchmark's plate), and a full collection walks every object of
the process (a Ray worker's ~140,000: ~0.08 s of CPU once in every three or four 512-image reads). Held off
during the read, its objects are gone before the collector looks, and full collections become rare.

Nothing is lost: the collector is switched back on (if it was on) when the last holder of the process leaves,
and cycles made meanwhile are collected by its next run. The holders are counted once per process, whatever
backend holds (two counts would each restore what the other switched off). A forked child holds nothing: the
threads of its parent that held the collector are not in it, so it switches the collector back on and makes
its own lock (a parent's thread may have held it at the fork).
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
    """In a forked child: no holder, the collector as it was before the parent's holders, a lock of its own."""
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
