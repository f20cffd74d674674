"""Parquet page headers (Thrift compact protocol), and where each chunk's ``pixel_bytes`` page lies in a chunks file.

Only what locating a page needs: :func:`page_header` parses a ``PageHeader`` (type, sizes,
crc, and the data page, dictionary page or V2 data page header), skipping fields it does not
know. :func:`page_ranges` reads a chunks file's footer once, at write time, and records, for
each row group, where the compressed bytes of its ``pixel_bytes`` page start and how long they
are, so that readers can fetch a chunk with one positioned read (see ``page_reads``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from ..errors import DamagedFileError

__all__ = [
    "PageHeader",
    "ShortHeader",
    "PageRanges",
    "page_header",
    "page_ranges",
    "CODECS",
    "DATA_PAGE",
    "DATA_PAGE_V2",
    "DICTIONARY_PAGE",
    "PLAIN",
    "RLE",
]

DATA_PAGE: Final[int] = 0
DICTIONARY_PAGE: Final[int] = 2
DATA_PAGE_V2: Final[int] = 3
PLAIN: Final[int] = 0
RLE: Final[int] = 3
#: Parquet codec (as the footer names it through pyarrow) -> the ``pyarrow.Codec`` that reads its pages
#: (None: uncompressed). pyarrow says LZ4 for Parquet's LZ4_RAW; Hadoop-framed LZ4 is not listed.
CODECS: Final[dict[str, str | None]] = {
    "UNCOMPRESSED": None,
    "SNAPPY": "snappy",
    "GZIP": "gzip",
    "BROTLI": "brotli",
    "ZSTD": "zstd",
    "LZ4": "lz4_raw",
    "LZ4_RAW": "lz4_raw",
}
#: Bytes read to parse one page header (a header without statistics takes about 30).
_HEADER_BYTES = 256

_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(13)


@dataclass(frozen=True)
class PageHeader:
    """A Parquet page header: the fields a reader of one page needs (-1: absent)."""

    type: int
    uncompressed_size: int
    compressed_size: int
    crc: int | None
    num_values: int
    encoding: int
    definition_level_encoding: int
    #: DATA_PAGE_V2 only: bytes of definition and repetition levels (stored uncompressed), and whether
    #: the values are compressed.
    definition_levels_bytes: int = -1
    repetition_levels_bytes: int = -1
    is_compressed: bool = True
    #: Bytes the header itself takes.
    size: int = 0


class ShortHeader(ValueError):
    """The header runs past the bytes given."""


class _Reader:
    """Thrift compact protocol over bytes, with bounds checks."""

    def __init__(self, data: bytes | memoryview) -> None:
        self.data = data
        self.at = 0

    def byte(self) -> int:
        if self.at >= len(self.data):
            raise ShortHeader("page header runs past the bytes read")
        b = self.data[self.at]
        self.at += 1
        return b

    def varint(self) -> int:
        out = shift = 0
        while True:
            b = self.byte()
            out |= (b & 0x7F) << shift
            if not b & 0x80:
                return out
            shift += 7
            if shift > 63:
                raise ValueError("varint longer than 10 bytes")

    def zigzag(self) -> int:
        v = self.varint()
        return (v >> 1) ^ -(v & 1)

    def skip(self, kind: int) -> None:
        """Skip one value of compact type ``kind``."""
        if kind in (_TRUE, _FALSE):
            return
        if kind == _BYTE:
            self.byte()
        elif kind in (_I16, _I32, _I64):
            self.varint()
        elif kind == _DOUBLE:
            self.take(8)
        elif kind == _BINARY:
            self.take(self.varint())
        elif kind in (_LIST, _SET):
            head = self.byte()
            n, elem = head >> 4, head & 0x0F
            if n == 15:
                n = self.varint()
            for _ in range(n):
                self.byte() if elem in (_TRUE, _FALSE) else self.skip(elem)
        elif kind == _MAP:
            n = self.varint()
            if n:
                types = self.byte()
                for _ in range(n):
                    self.skip(types >> 4)
                    self.skip(types & 0x0F)
        elif kind == _STRUCT:
            for _, k in self.fields():
                self.skip(k)
        else:
            raise ValueError(f"unknown Thrift compact type {kind}")

    def take(self, n: int) -> bytes | memoryview:
        if n < 0 or self.at + n > len(self.data):
            raise ShortHeader("page header runs past the bytes read")
        out = self.data[self.at : self.at + n]
        self.at += n
        return out

    def fields(self) -> _Fields:
        """A struct's (field id, type) headers, lazily: the caller reads or skips each value."""
        return _Fields(self)


class _Fields(Iterator[tuple[int, int]]):
    """The field headers of one struct (compact protocol: ids as deltas)."""

    def __init__(self, reader: _Reader) -> None:
        self.r = reader
        self.last = 0

    def __iter__(self) -> _Fields:
        return self

    def __next__(self) -> tuple[int, int]:
        head = self.r.byte()
        if head == _STOP:
            raise StopIteration
        kind, delta = head & 0x0F, head >> 4
        self.last = self.last + delta if delta else self.r.zigzag()
        return self.last, kind


def _ints(r: _Reader, want: dict[int, str], bools: dict[int, str] | None = None) -> dict[str, int]:
    """The i32 fields ``want`` (id -> name) and bool fields ``bools`` of one struct; others skipped."""
    out: dict[str, int] = {}
    for fid, kind in r.fields():
        if fid in want and kind == _I32:
            out[want[fid]] = r.zigzag()
        elif bools and fid in bools and kind in (_TRUE, _FALSE):
            out[bools[fid]] = int(kind == _TRUE)
        else:
            r.skip(kind)
    return out


def page_header(data: bytes | memoryview) -> PageHeader:
    """The page header at the start of ``data`` (ValueError when it is not a well-formed one)."""
    r = _Reader(data)
    top: dict[str, int] = {}
    sub: dict[str, int] = {}
    for fid, kind in r.fields():
        if fid in (1, 2, 3, 4) and kind == _I32:
            top[("type", "usize", "csize", "crc")[fid - 1]] = r.zigzag()
        elif fid == 5 and kind == _STRUCT:
            sub = _ints(r, {1: "num_values", 2: "encoding", 3: "def_encoding"})
        elif fid == 7 and kind == _STRUCT:
            sub = _ints(r, {1: "num_values", 2: "encoding"})
        elif fid == 8 and kind == _STRUCT:
            sub = _ints(r, {1: "num_values", 4: "encoding", 5: "def_bytes", 6: "rep_bytes"}, {7: "compressed"})
        else:
            r.skip(kind)
    if not {"type", "usize", "csize"} <= top.keys():
        raise ValueError("page header lacks its type or sizes")
    if top["usize"] < 0 or top["csize"] < 0:
        raise ValueError("page header declares a negative size")
    return PageHeader(
        type=top["type"],
        uncompressed_size=top["usize"],
        compressed_size=top["csize"],
        crc=top.get("crc"),
        num_values=sub.get("num_values", -1),
        encoding=sub.get("encoding", -1),
        definition_level_encoding=sub.get("def_encoding", -1),
        definition_levels_bytes=sub.get("def_bytes", -1),
        repetition_levels_bytes=sub.get("rep_bytes", -1),
        is_compressed=bool(sub.get("compressed", 1)),
        size=r.at,
    )


@dataclass(frozen=True)
class PageRanges:
    """Where each row group's ``pixel_bytes`` page data lies in a chunks file, and its codec."""

    #: pyarrow.Codec name of the pages (None: uncompressed).
    codec: str | None
    #: Per row group: start of the page's compressed bytes, their length, and the page's uncompressed length.
    offset: np.ndarray
    compressed: np.ndarray
    uncompressed: np.ndarray
    #: Per row group: where its first column's pages start (its columns lie from there to the page's end).
    group_offset: np.ndarray
    #: Size of the file they were read from.
    file_bytes: int


def page_ranges(file: Path, column: str = "pixel_bytes") -> PageRanges | None:
    """The page ranges of ``column`` in Parquet file ``file``, or None unless every row group holds one row
    in one PLAIN V1 data page of that column (no dictionary page) in a codec of :data:`CODECS`."""
    import pyarrow.parquet as pq

    from ..remote import refuse_placeholder

    refuse_placeholder(file, "checking page ranges")
    md = pq.read_metadata(file)
    at = md.schema.to_arrow_schema().get_field_index(column)
    n = md.num_row_groups
    if at < 0 or n == 0 or md.schema.column(at).max_definition_level != 1 or md.schema.column(at).max_repetition_level:
        return None  # readers decode the page of an optional, flat column
    offset, compressed, uncompressed, group_offset = (np.zeros(n, dtype=np.int64) for _ in range(4))
    codec: str | None = None
    fd = os.open(file, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        size = os.fstat(fd).st_size
        for g in range(n):
            group = md.row_group(g)
            chunk = group.column(at)
            if group.num_rows != 1 or chunk.has_dictionary_page or chunk.compression not in CODECS:
                return None
            name = CODECS[chunk.compression]
            if g and name != codec:
                return None
            codec = name
            total = int(chunk.total_compressed_size)
            try:
                try:
                    head = page_header(os.pread(fd, min(_HEADER_BYTES, total), int(chunk.data_page_offset)))
                except ShortHeader:  # statistics in the header: read the whole column chunk
                    head = page_header(os.pread(fd, total, int(chunk.data_page_offset)))
            except ValueError as exc:
                raise DamagedFileError(
                    f"{file}: the page header of row group {g} of {column!r} is damaged ({exc})"
                ) from exc
            if (
                head.type != DATA_PAGE
                or head.num_values != 1
                or head.encoding != PLAIN
                or head.definition_level_encoding != RLE
                or head.size + head.compressed_size != chunk.total_compressed_size
            ):
                return None  # not one plain V1 page holding the one value: readers take the Parquet path
            starts = [
                int(c.dictionary_page_offset if c.has_dictionary_page else c.data_page_offset)
                for c in (group.column(k) for k in range(group.num_columns))
            ]
            ends = [s + int(group.column(k).total_compressed_size) for k, s in enumerate(starts)]
            if at != group.num_columns - 1 or any(e != s for e, s in zip(ends[:-1], starts[1:])):
                return None  # the value's column not last, or the columns not one after another
            group_offset[g] = starts[0]
            offset[g] = int(chunk.data_page_offset) + head.size
            compressed[g] = head.compressed_size
            uncompressed[g] = head.uncompressed_size
    finally:
        os.close(fd)
    return PageRanges(codec, offset, compressed, uncompressed, group_offset, size)
