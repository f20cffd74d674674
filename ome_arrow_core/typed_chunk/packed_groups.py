"""Packed chunk row groups kept decoded: a plate's small images are read a row group (of many chunks) at a time.

``write_dataset`` packs the chunks of small images many to a Parquet row group (a footer of a million row groups
would not fit in memory), so reading one image decodes its whole row group. :class:`PackedGroups` keeps the
``pixel_bytes`` of the most recently read packed groups, already compared with the index (and their checksums
are still checked on every read, as for any chunk), so neighbouring images and repeated reads do not decode the
same group again. It belongs to one opened dataset, which stands for one version of the files: a changed file is
another opened dataset, with an empty cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

import numpy as np
import pyarrow as pa

__all__ = ["KEPT_BYTES", "GROUP_BYTES", "PackedGroups"]

#: Bytes of decoded packed groups one opened dataset keeps (the most recently used).
KEPT_BYTES: Final[int] = 32 << 20
#: Groups larger than this are never kept (they would push out most of the others).
GROUP_BYTES: Final[int] = 8 << 20


class PackedGroups:
    """``pixel_bytes`` of packed row groups by (chunk file code, row group), at most :data:`KEPT_BYTES` in all."""

    def __init__(self, kept_bytes: int = KEPT_BYTES, group_bytes: int = GROUP_BYTES) -> None:
        self.kept_bytes, self.group_bytes = kept_bytes, group_bytes
        self._groups: OrderedDict[tuple[int, int], pa.Array] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def get(self, code: int, group: int) -> pa.Array | None:
        """Group ``group`` of chunk file ``code`` when kept (it becomes the most recently used)."""
        with self._lock:
            hit = self._groups.get((code, group))
            if hit is not None:
                self._groups.move_to_end((code, group))
            return hit

    def put(self, code: int, group: int, values: pa.Array) -> None:
        """Keep ``values`` (an array owning its buffers: its buffer size is what it holds) as group ``group`` of
        chunk file ``code``, dropping the least recently used beyond :attr:`kept_bytes`; a group larger than
        :attr:`group_bytes` is not kept."""
        size = values.get_total_buffer_size()
        if size > self.group_bytes:
            return
        with self._lock:
            old = self._groups.pop((code, group), None)
            if old is not None:
                self._bytes -= old.get_total_buffer_size()
            self._groups[(code, group)] = values
            self._bytes += size
            while self._bytes > self.kept_bytes and self._groups:
                _, dropped = self._groups.popitem(last=False)
                self._bytes -= dropped.get_total_buffer_size()

    def read(
        self, code: int, groups: np.ndarray, group_rows: np.ndarray, read: Callable[[np.ndarray], pa.ChunkedArray]
    ) -> pa.ChunkedArray:
        """``pixel_bytes`` of packed row groups ``groups`` (ascending; ``group_rows``: rows of every group) of chunk
        file ``code``: those kept taken from here, the others by ``read(missing)`` (one call, compared with the
        index) and kept: a group read alone as it came, those of a read of several as compacted copies."""
        wanted = groups.tolist()
        kept = [self.get(code, g) for g in wanted]
        missing = [g for g, k in zip(wanted, kept) if k is None]
        fresh: dict[int, list[pa.Array]] = {}
        if missing:
            col = read(np.asarray(missing, dtype=np.int64))
            at = 0
            for g, n in zip(missing, group_rows[missing].tolist()):
                piece = col.slice(at, n)
                at += n
                fresh[g] = piece.chunks
                if len(missing) == 1 and piece.num_chunks == 1:
                    self.put(code, g, piece.chunk(0))  # the read's own buffers, nothing else
                elif piece.nbytes <= self.group_bytes:
                    self.put(code, g, pa.concat_arrays(piece.chunks))  # compact: holds no other group
        pieces = [c for g, k in zip(wanted, kept) for c in ([k] if k is not None else fresh[g])]
        return pa.chunked_array(pieces, type=pa.large_binary())

    def clear(self) -> None:
        """Forget every group."""
        with self._lock:
            self._groups.clear()
            self._bytes = 0
