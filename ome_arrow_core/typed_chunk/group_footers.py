"""A table's row groups read one at a time through a footer of that row group alone: no whole footer parsed.

pyarrow parses a Parquet footer whole before it reads any row group: for the images table of a million images
(977 row groups of 27 columns) that is 2 MiB of Thrift, 13-20 ms of CPU (``benchmarks/group_footer_splice.py
--images 1000000``: "whole parse") and ~20 MiB resident, for each of the tables an image needs. Where the manifest records where the footer lists each row group (``footer_spans`` of the table's
``table_groups`` entry, see :mod:`.group_sums`) and the footer's bytes matched their recorded digest in this
process, :class:`GroupFooters` reads the footer's head (schema, metadata) and tail once, and for row group ``g``
the bytes of its own entry: spliced together (:func:`~.thrift_walk.one_group_footer`) they are the footer of a
file with that one row group, whose column chunks lie where the real file has them. pyarrow then reads that row
group from the real file. Each splice is checked: one row group, of the rows the manifest records.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Final

import numpy as np
import pyarrow as pa

from .. import parquet_lite as pq
from ..boundary import reading
from ..checksums import ALGORITHM, FIX, hex_digest
from ..errors import ChecksumError, DamagedFileError
from .footer_pieces import block_span
from .group_sums import Segments, footer_verified

# imported with the module, not on a plate's first image (its classes cost ~0.4 ms to build)
from .thrift_walk import one_group_footer

__all__ = ["GroupFooters", "KEPT_GROUPS", "ALONE"]

#: One-group footers kept parsed per table (the most recently used).
KEPT_GROUPS: Final[int] = 8
#: Distinct row groups a table serves through one-group footers; past them the whole footer is parsed once and
#: serves the rest (a read through a splice costs ~0.25 ms of CPU a group more than one through the parsed footer,
#: the splice itself ~0.1 ms: benchmarks/group_footer_splice.py; random access over many groups amortizes the
#: whole parse, one image never pays it).
ALONE: Final[int] = 16


def _parse(meta: bytes) -> pq.FileMetaData:
    """Serialized FileMetaData ``meta`` parsed (as the footer of a file holding nothing else)."""
    return pq.read_metadata(pa.BufferReader(b"PAR1" + meta + len(meta).to_bytes(4, "little") + b"PAR1"))


class GroupFooters:
    """Table ``name`` of the dataset at ``root``, its footer read a row group at a time (``seg``: its recorded
    segments, with ``footer_spans`` and ``group_rows``; its footer already checked against its digest)."""

    def __init__(self, root: Path, name: str, seg: Segments) -> None:

        assert seg.footer_spans is not None and seg.group_rows is not None
        at, length, header, end, *starts = seg.footer_spans
        self.root, self.name, self.file = root, name, root / name
        self._at, self._starts = at, [*starts, end]
        #: The digests of the footer's pieces (None: the footer matched its whole digest, see :mod:`.footer_pieces`)
        #: and the entry blocks that matched theirs in this process.
        self._pieces = None if footer_verified(root, name) else seg.footer_sums
        self._block = seg.footer_block or 1
        self._checked: set[int] = set()
        self.group_rows = np.asarray(seg.group_rows, dtype=np.int64)
        with reading(root, name, "reading the table's footer"):
            fd = os.open(self.file, os.O_RDONLY)
            try:
                self._head = os.pread(fd, header, at)
                self._tail = os.pread(fd, length - end, at + end)
                last = os.pread(fd, 8, at + length)
            finally:
                os.close(fd)
            if len(self._head) != header or len(self._tail) != length - end or last != _trailer(length):
                raise DamagedFileError(
                    f"{self.file}: its footer is not where the manifest records it ({length} bytes at {at}); the "
                    "table or the manifest is damaged"
                )
        if self._pieces is not None and hex_digest(self._head, self._tail, last) != self._pieces[0]:
            raise ChecksumError(
                f"{self.file}: its footer's head and tail do not match the checksum the manifest records for them "
                f"({self._pieces[0]}); the table is damaged (or the manifest lies) and its footer was not parsed. "
                f"Fix: {FIX}"
            )
        self._kept: OrderedDict[int, pq.FileMetaData] = OrderedDict()
        self._lock = threading.Lock()
        self._served: set[int] = set()
        first = self._first()
        self.schema: pa.Schema = first.schema.to_arrow_schema()
        #: The footer's key-value metadata.
        self.metadata: dict[bytes, bytes] | None = first.metadata
        self._columns = first.num_columns

    def _first(self) -> pq.FileMetaData:
        """The footer the schema is read from: row group 0's (kept: a first image usually lies there, and is then
        read without another parse), or, without row groups or with a damaged entry 0, the footer of none."""
        if len(self.group_rows):
            try:
                return self.group_metadata(0, columns=None)
            except DamagedFileError:
                pass  # row group 0 is refused when it is read; the others still read
        with reading(self.root, self.name, "reading the table's footer"):
            return _parse(one_group_footer(self._head, None, self._tail))

    def fresh_lock(self) -> None:
        """A lock of this process's own (in a forked child: the parent's may have been held as it forked)."""
        self._lock = threading.Lock()

    def serves(self, g: int) -> bool:
        """True while row group ``g`` is to be read here: it was, or fewer than :data:`ALONE` groups were (False:
        parse the whole footer and read it from there)."""
        with self._lock:
            if g in self._served:
                return True
            if len(self._served) >= ALONE:
                return False
            self._served.add(g)
            return True

    @property
    def num_rows(self) -> int:
        """Rows of the table."""
        return int(self.group_rows.sum())

    def group_metadata(self, g: int, columns: int | None = -1) -> pq.FileMetaData:
        """The footer of a file holding row group ``g`` alone (its column chunks where this file has them;
        ``columns``: the columns it must have, -1: the schema's, None: any)."""

        with self._lock:
            hit = self._kept.get(g)
            if hit is not None:
                self._kept.move_to_end(g)
                return hit
        if not 0 <= g < len(self.group_rows):
            raise DamagedFileError(f"{self.file}: row group {g} asked for; it has {len(self.group_rows)}")
        start, stop = self._starts[g], self._starts[g + 1]
        with reading(self.root, self.name, f"reading row group {g}'s footer entry"):
            entry = self._entry(g, start, stop)
            md = _parse(one_group_footer(self._head, entry, self._tail))
            ok = (
                len(entry) == stop - start
                and md.num_row_groups == 1
                and (columns is None or md.num_columns == (self._columns if columns == -1 else columns))
                and md.row_group(0).num_rows == int(self.group_rows[g])
            )
        if not ok:
            raise DamagedFileError(
                f"{self.file}: row group {g}'s footer entry (bytes {start}..{stop} of its footer) is not the row group "
                f"of {int(self.group_rows[g])} rows the manifest records; the table or the manifest is damaged"
            )
        with self._lock:
            self._kept[g] = md
            while len(self._kept) > KEPT_GROUPS:
                self._kept.popitem(last=False)
        return md

    def _entry(self, g: int, start: int, stop: int) -> bytes:
        """The bytes of row group ``g``'s entry (``start..stop`` of the footer); recorded in pieces: its block's
        checked first (ChecksumError when they do not match)."""
        fd = os.open(self.file, os.O_RDONLY)
        try:
            if self._pieces is None:
                return os.pread(fd, stop - start, self._at + start)
            b = g // self._block
            lo, hi = block_span(self._starts, self._starts[-1], self._block, b)
            data = os.pread(fd, hi - lo, self._at + lo)
        finally:
            os.close(fd)
        with self._lock:
            checked = b in self._checked
        if not checked:
            actual = hex_digest(data)
            if len(data) != hi - lo or actual != self._pieces[1 + b]:
                raise ChecksumError(
                    f"{self.file}: its footer's entries of row groups {b * self._block}.. (bytes {lo}..{hi} of its "
                    f"footer) do not match the checksum the manifest records for them (recorded {self._pieces[1 + b]}, "
                    f"computed {actual}, {ALGORITHM}); the table is damaged (or the manifest lies) and row group {g} "
                    f"was not read. Fix: {FIX}"
                )
            with self._lock:
                self._checked.add(b)
        return data[start - lo : stop - lo]

    def read(self, g: int, columns: list[str] | None = None, dictionary: list[str] | None = None) -> pa.Table:
        """Row group ``g`` (``columns`` only; ``dictionary``: string columns read dictionary-encoded)."""
        pf = self.reader(g, dictionary)
        with reading(self.root, self.name, f"reading row group {g}"):
            return pf.read_row_group(0, columns=columns, use_threads=False)

    def reader(self, g: int, dictionary: list[str] | None = None) -> pq.ParquetFile:
        """A reader of the file whose footer holds row group ``g`` alone, as its row group 0 (``dictionary``:
        string columns read dictionary-encoded)."""
        md = self.group_metadata(g)
        with reading(self.root, self.name, f"reading row group {g}"):
            return pq.ParquetFile(self.file, metadata=md, read_dictionary=dictionary or None, **pq.LOCAL_READS)


def _trailer(length: int) -> bytes:
    return length.to_bytes(4, "little") + b"PAR1"
