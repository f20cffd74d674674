"""Index-length arrays that hold only what was loaded: anonymous private mappings, released again row range by range.

A million-row index costs what is loaded: pages of an anonymous mapping become resident only once written, and
:meth:`LazyColumns.release` hands the pages of dropped rows back to the system (they read as zeros again), except
pages shared with rows still held. Nothing may read rows it does not hold (see :mod:`.aligned_index`, which pins
the groups a read uses).
"""

from __future__ import annotations

import mmap
from collections.abc import Mapping
from typing import Any, Final

import numpy as np

__all__ = ["lazy_zeros", "LazyColumns"]

_PAGE: Final[int] = mmap.PAGESIZE
_PRIVATE: Final[int] = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)
_DONTNEED: Final[int | None] = getattr(mmap, "MADV_DONTNEED", None)


def _mapping(size: int) -> mmap.mmap:
    """An anonymous mapping of ``size`` bytes, private to this process (a forked worker's writes stay its own)."""
    if _PRIVATE and hasattr(mmap, "MAP_PRIVATE"):
        return mmap.mmap(-1, max(1, size), flags=_PRIVATE)
    return mmap.mmap(-1, max(1, size))


def lazy_zeros(n: int, dtype: Any) -> np.ndarray:
    """A writable array of ``n`` zeros in an anonymous mapping: its pages become resident only once written
    (np.zeros may take them from the heap, already touched)."""
    dt = np.dtype(dtype)
    return np.frombuffer(_mapping(n * dt.itemsize), dtype=dt, count=n)


class LazyColumns:
    """Named arrays of ``n`` rows each (:func:`lazy_zeros`), whose rows can be released range by range."""

    def __init__(self, n: int, dtypes: Mapping[str, Any]) -> None:
        self.n = n
        self._maps: dict[str, mmap.mmap] = {}
        #: The arrays, by name.
        self.arrays: dict[str, np.ndarray] = {}
        for name, dtype in dtypes.items():
            dt = np.dtype(dtype)
            self._maps[name] = _mapping(n * dt.itemsize)
            self.arrays[name] = np.frombuffer(self._maps[name], dtype=dt, count=n)

    def release(self, lo: int, hi: int, held: np.ndarray) -> None:
        """Hand back the pages of rows ``lo..hi-1`` (they read as zeros again where released); a page also holding
        rows of a range still ``held`` (an (k, 2) array of [start, stop) rows) is kept. A no-op where the system
        has no ``madvise``."""
        if _DONTNEED is None or hi <= lo:
            return
        for name, m in self._maps.items():
            size = self.arrays[name].itemsize
            a, b = lo * size // _PAGE, -(-hi * size // _PAGE)  # pages touching the rows
            if lo * size % _PAGE and _overlaps(held, a * _PAGE // size, lo):
                a += 1  # its first page holds rows of a group still held
            if hi * size % _PAGE and _overlaps(held, hi, -(-b * _PAGE // size)):
                b -= 1
            if b > a:
                m.madvise(_DONTNEED, a * _PAGE, min(len(m), b * _PAGE) - a * _PAGE)


def _overlaps(held: np.ndarray, lo: int, hi: int) -> bool:
    """Whether a range of ``held`` ([start, stop) rows, one a row) meets rows ``lo..hi-1``."""
    return bool(len(held) and ((held[:, 0] < hi) & (held[:, 1] > lo)).any())
