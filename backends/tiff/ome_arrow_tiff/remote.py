"""TIFF files on remote storage: a seekable file over ranged reads, for tifffile to parse and read.

tifffile reads a TIFF's header and IFDs in many small reads; :class:`RangeFile` serves reads
smaller than a block from cached, aligned blocks (one ranged GET per 64 KiB block), and reads
larger ones (strips, tiles, rows of a plane) with one ranged GET each. Before a crop's strips
or tiles are read, :meth:`RangeFile.prefetch` merges their byte ranges that lie within a gap of
each other into one GET, so neighbouring segments cost one request.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Final

__all__ = ["RangeFile", "merge_ranges"]

BLOCK: Final[int] = 64 << 10
#: Byte ranges closer than this are fetched in one request (the gap's bytes are cheaper than a request).
GAP: Final[int] = 256 << 10
_BLOCKS_KEPT: Final[int] = 64


def merge_ranges(ranges: Sequence[tuple[int, int]], gap: int = GAP) -> list[tuple[int, int]]:
    """``(start, stop)`` ranges sorted and merged where they overlap or lie within ``gap`` bytes of each other."""
    merged: list[tuple[int, int]] = []
    for start, stop in sorted(r for r in ranges if r[1] > r[0]):
        if merged and start - merged[-1][1] <= gap:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    return merged


class RangeFile(io.RawIOBase):
    """A read-only, seekable binary file over a pyarrow random-access file (one ranged read per fetch)."""

    def __init__(self, raw: Any, size: int, name: str) -> None:
        super().__init__()
        self._raw, self._size, self.name = raw, int(size), name
        self._pos = 0
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._spans: list[tuple[int, bytes]] = []  # prefetched (start, data)
        self._lock = threading.Lock()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + int(offset))
        return self._pos

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
            self._blocks.clear()
            self._spans.clear()
        super().close()

    def read(self, size: int | None = -1) -> bytes:
        start = self._pos
        stop = self._size if size is None or size < 0 else min(self._size, start + size)
        if stop <= start:
            return b""
        data = self._prefetched(start, stop)
        if data is None:
            data = self._cached(start, stop) if stop - start < BLOCK else self._fetch(start, stop - start)
        self._pos = start + len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def prefetch(self, ranges: Sequence[tuple[int, int]]) -> None:
        """Fetch ``ranges`` (merged within :data:`GAP`) for the reads that follow; replaces earlier prefetches."""
        self._spans = [(a, self._fetch(a, b - a)) for a, b in merge_ranges(ranges)]

    def drop_prefetched(self) -> None:
        self._spans = []

    def _prefetched(self, start: int, stop: int) -> bytes | None:
        for at, data in self._spans:
            if at <= start and stop <= at + len(data):
                return data[start - at : stop - at]
        return None

    def _cached(self, start: int, stop: int) -> bytes:
        first, last = start // BLOCK, (stop - 1) // BLOCK
        with self._lock:
            missing = [b for b in range(first, last + 1) if b not in self._blocks]
        if missing:  # the missing blocks are adjacent (a read spans at most two): one request
            lo, hi = missing[0] * BLOCK, min(self._size, (missing[-1] + 1) * BLOCK)
            data = self._fetch(lo, hi - lo)
            with self._lock:
                for b in missing:
                    self._blocks[b] = data[b * BLOCK - lo : (b + 1) * BLOCK - lo]
        with self._lock:
            parts = []
            for b in range(first, last + 1):
                self._blocks.move_to_end(b)
                parts.append(self._blocks[b])
            while len(self._blocks) > _BLOCKS_KEPT:
                self._blocks.popitem(last=False)
        joined = b"".join(parts)
        return joined[start - first * BLOCK : stop - first * BLOCK]

    def _fetch(self, start: int, length: int) -> bytes:
        return bytes(self._raw.read_at(length, start))
