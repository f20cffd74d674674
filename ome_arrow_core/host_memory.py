"""Where a read places its pixels: Arrow's memory pool, or host memory an exporter copies from fastest.

A GPU exporter may offer host memory it copies to its device from without staging (page-locked, "pinned"
memory: ``Exporter.host_memory``). While :func:`host_memory` is active (a lazy view exported to such an exporter's
device activates it around its read), each read output of at least :data:`HOST_MIN_BYTES` is allocated there, so
the copy to the device reads the pixels where the read left them. Outside it, and for smaller outputs, reads use
Arrow's pool as always. Pixels and checks are the same either way. :class:`HostBlocks` remembers the blocks an
allocator handed out, so the exporter can tell a view that lies in one (and copy it as it is) from any other.
"""

from __future__ import annotations

import bisect
import contextlib
import threading
import weakref
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, Final

import numpy as np
import pyarrow as pa

from .errors import OMEArrowError, PluginError

__all__ = ["HOST_MIN_BYTES", "HostAllocator", "HostBlocks", "host_memory", "host_buffer"]

#: ``allocate(nbytes)``: a writable buffer of at least ``nbytes`` bytes (any object with the buffer protocol),
#: aligned to 64 bytes; it stays allocated while the object lives.
HostAllocator = Callable[[int], Any]
#: Outputs smaller than this come from Arrow's pool even while an allocator is active (a small copy gains
#: nothing from it, and pinned memory is scarce).
HOST_MIN_BYTES: Final[int] = 1 << 20

_ALLOCATOR: ContextVar[HostAllocator | None] = ContextVar("ome_arrow_core.host_memory", default=None)


@contextlib.contextmanager
def host_memory(allocate: HostAllocator | None) -> Iterator[None]:
    """Within this block (this thread or task), reads allocate their outputs with ``allocate`` (None: Arrow's)."""
    token = _ALLOCATOR.set(allocate)
    try:
        yield
    finally:
        _ALLOCATOR.reset(token)


def host_buffer(nbytes: int, alignment: int) -> pa.Buffer | None:
    """A writable Arrow buffer of at least ``nbytes`` from the active allocator; None when none is active or
    ``nbytes`` is under :data:`HOST_MIN_BYTES`. PluginError when the allocator fails with a foreign error (our own
    errors pass) or its memory does not fit."""
    allocate = _ALLOCATOR.get()
    if allocate is None or nbytes < HOST_MIN_BYTES:
        return None
    try:
        mem = allocate(nbytes)
    except OMEArrowError:  # the plugin's own (a DeviceError: no GPU to pin memory for)
        raise
    except Exception as exc:  # its failure, not the file's: the read's boundary would call the file damaged
        raise PluginError(
            f"the host memory allocator {allocate!r} failed to allocate {nbytes} bytes "
            f"({type(exc).__name__}: {exc}); the read needs it to place its pixels where the exporter copies from"
        ) from exc
    try:
        buf = pa.py_buffer(mem)
    except TypeError as exc:
        raise PluginError(
            f"the host memory allocator {allocate!r} returned a {type(mem).__name__}, which is not a buffer ({exc}); "
            "it must return a writable buffer (bytearray, numpy array, pinned memory...) of the bytes asked"
        ) from exc
    if not buf.is_mutable or buf.size < nbytes or buf.address % alignment:
        raise PluginError(
            f"the host memory allocator {allocate!r} returned {buf.size} bytes at address {buf.address:#x} "
            f"({'writable' if buf.is_mutable else 'read-only'}) for {nbytes} bytes; it must return a writable "
            f"buffer of at least the bytes asked, aligned to {alignment} bytes"
        )
    return buf


class HostBlocks:
    """The live blocks a host-memory allocator handed out, by address (thread-safe).

    :meth:`add` remembers a block (the uint8 array an allocator returns, which keeps its memory alive) until that
    array is freed, with an optional owner held weakly (a framework's tensor the array keeps alive); :meth:`find`
    says which block an array's bytes lie in. A read's output holds the array it was allocated as (through the
    Arrow buffer wrapping it); a numpy view made of the array directly refers to the array's own base instead, so
    it does not keep the block remembered (an array then found in no block is copied the usual way). A block is
    forgotten before its memory can be freed, and live blocks never overlap: a lookup is a binary search.
    """

    def __init__(self) -> None:
        self._starts: list[int] = []  # sorted
        self._blocks: dict[int, tuple[int, weakref.ref[Any] | None]] = {}  # start -> (end, owner)
        self._lock = threading.Lock()

    def add(self, block: np.ndarray, owner: object | None = None) -> np.ndarray:
        """Remember ``block`` (and ``owner``, weakly) while ``block`` lives; return ``block``."""
        start = block.ctypes.data
        with self._lock:
            if start not in self._blocks:
                bisect.insort(self._starts, start)
            self._blocks[start] = (start + block.nbytes, None if owner is None else weakref.ref(owner))
        weakref.finalize(block, self._forget, start)
        return block

    def find(self, arr: np.ndarray) -> tuple[int, object | None] | None:
        """``(offset, owner)`` of the live block all of ``arr``'s bytes lie in (whatever its strides; the offset is
        its first element's), or None when they lie in none (or ``arr`` is empty); ``owner`` is None when none was
        given or it is gone."""
        if not arr.nbytes:
            return None
        first = arr.ctypes.data
        if arr.flags.c_contiguous:  # (what exporters ask about) its bytes are one run from the first
            return self.lookup(first, arr.nbytes)
        spans = [(n - 1) * s for n, s in zip(arr.shape, arr.strides)]
        low = first + sum(d for d in spans if d < 0)
        found = self.lookup(low, first + sum(d for d in spans if d > 0) + arr.itemsize - low)
        return None if found is None else (found[0] + first - low, found[1])

    def lookup(self, address: int, nbytes: int) -> tuple[int, object | None] | None:
        """:meth:`find` for the ``nbytes`` bytes at ``address``."""
        with self._lock:
            i = bisect.bisect_right(self._starts, address) - 1
            if i < 0:
                return None
            start = self._starts[i]
            end, owner = self._blocks[start]
        if address + nbytes > end:
            return None
        return address - start, None if owner is None else owner()

    def __len__(self) -> int:
        with self._lock:
            return len(self._blocks)

    def _forget(self, start: int) -> None:
        with self._lock:
            if self._blocks.pop(start, None) is not None:
                del self._starts[bisect.bisect_left(self._starts, start)]
