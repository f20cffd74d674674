"""Parquet page headers (Thrift compact protocol), and where each chunk's ``pixel_bytes`` page lies in a chunks file.

Only what locating a page needs: :func:`page_header` parses a ``PageHeader`` (type, sizes,
crc, and the data page, dictionary page or V2 data page header), skipping fields it does not
know. :func:`page_ranges` reads a chunks file's footer once, at write time, and records, for
each row group, where the compressed bytes of its ``pixel_bytes`` page start and how long they
are, so that readers can fetch a chunk with one positioned read (see ``page_reads``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

import numpy as np

from ..errors import DamagedFileError
from ..frozen_types import frozen

__all__ = [
    "PageHeader",
    "Marks",
    "ShortHeader",
    "PageRanges",
    "page_header",
    "marked_header",
    "page_ranges",
    "PARSED_HEADERS",
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


@frozen
class PageHeader:
    """A Parquet page header: the fields a reader of one page needs (-1: absent).

    Made by ``@frozen`` (:mod:`ome_arrow_core.frozen_types`) with its ``__init__`` written as ``dataclass`` would
    generate it (one is made per page parsed): a fresh process compiles no methods for it.
    """

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

    def __init__(
        self,
        type: int,
        uncompressed_size: int,
        compressed_size: int,
        crc: int | None,
        num_values: int,
        encoding: int,
        definition_level_encoding: int,
        definition_levels_bytes: int = -1,
        repetition_levels_bytes: int = -1,
        is_compressed: bool = True,
        size: int = 0,
    ) -> None:
        put = object.__setattr__
        put(self, "type", type)
        put(self, "uncompressed_size", uncompressed_size)
        put(self, "compressed_size", compressed_size)
        put(self, "crc", crc)
        put(self, "num_values", num_values)
        put(self, "encoding", encoding)
        put(self, "definition_level_encoding", definition_level_encoding)
        put(self, "definition_levels_bytes", definition_levels_bytes)
        put(self, "repetition_levels_bytes", repetition_levels_bytes)
        put(self, "is_compressed", is_compressed)
        put(self, "size", size)


@frozen
class Marks:
    """Spans (start, stop) of a header's bytes whose values do not change how it parses: the payloads of its
    binary fields (statistics; skipped by their lengths), and the varint of the PageHeader's crc (a value kept,
    never used to find the next field)."""

    payloads: list[tuple[int, int]]
    crcs: list[tuple[int, int]]


class ShortHeader(ValueError):
    """The header runs past the bytes given."""


#: Deepest nesting of structs, lists and maps a header may have (PageHeader's own is 3): deeper bytes are damage.
_MAX_DEPTH: Final[int] = 16
#: The sub-structs read, by PageHeader field id: DataPageHeader (5), DictionaryPageHeader (7), DataPageHeaderV2 (8).
_SUB_STRUCTS: Final[frozenset[int]] = frozenset((5, 7, 8))


def _varint(data: bytes | memoryview, at: int) -> tuple[int, int]:
    """The unsigned varint at ``at`` of ``data``, and where it ends (IndexError past the end)."""
    out = shift = 0
    while True:
        b = data[at]
        at += 1
        out |= (b & 0x7F) << shift
        if b < 0x80:
            return out, at
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _skip(data: bytes | memoryview, at: int, kind: int, depth: int, marks: Marks | None = None) -> int:
    """Where the value of compact type ``kind`` starting at ``at`` ends (IndexError past the end); the spans of
    binary payloads in it go into ``marks``."""
    if kind == _TRUE or kind == _FALSE:  # a bool field's value is in its type
        return at
    if kind == _I32 or kind == _I64 or kind == _I16:
        return _varint(data, at)[1]
    if kind == _BINARY:
        n, at = _varint(data, at)
        if at + n > len(data):
            raise ShortHeader("page header runs past the bytes read")
        if marks is not None:
            marks.payloads.append((at, at + n))
        return at + n
    if kind == _BYTE or kind == _DOUBLE:
        end = at + (1 if kind == _BYTE else 8)
        if end > len(data):
            raise ShortHeader("page header runs past the bytes read")
        return end
    if depth >= _MAX_DEPTH:
        raise ValueError("page header nests deeper than any Parquet header")
    if kind == _STRUCT:
        while True:
            head = data[at]
            at += 1
            if head == _STOP:
                return at
            if not head >> 4:  # a long-form field id (zigzag varint) follows
                _, at = _varint(data, at)
            at = _skip(data, at, head & 0x0F, depth + 1, marks)
    if kind == _LIST or kind == _SET:
        head = data[at]
        at += 1
        n, elem = head >> 4, head & 0x0F
        if n == 15:
            n, at = _varint(data, at)
        if elem == _TRUE or elem == _FALSE:  # bools in a container take a byte each
            elem = _BYTE
        for _ in range(n):
            at = _skip(data, at, elem, depth + 1, marks)
        return at
    if kind == _MAP:
        n, at = _varint(data, at)
        if not n:
            return at
        types = data[at]
        at += 1
        key, value = (_BYTE if k in (_TRUE, _FALSE) else k for k in (types >> 4, types & 0x0F))
        for _ in range(n):
            at = _skip(data, _skip(data, at, key, depth + 1, marks), value, depth + 1, marks)
        return at
    raise ValueError(f"unknown Thrift compact type {kind}")


def _fields(data: bytes | memoryview, at: int, out: dict[int, int], depth: int, marks: Marks | None = None) -> int:
    """Read the struct at ``at`` (a PageHeader at depth 0, one of its page headers at depth 1) and return where it
    ends: its i32 fields 1-7 go into ``out`` under ``id + 100 * depth``, its bool fields under the negated key,
    the id of the page header read under 0 (the last one wins, as a Thrift reader's would); the rest is skipped.
    With ``marks``, the spans of binary payloads and of the crc's varint are noted there."""
    last = 0
    while True:
        head = data[at]
        at += 1
        if head == _STOP:
            return at
        kind, delta = head & 0x0F, head >> 4
        if delta:
            last += delta
        else:
            v, at = _varint(data, at)
            last = (v >> 1) ^ -(v & 1)
        if kind == _I32 and 0 < last < 8:
            b = data[at]
            start = at
            if b < 0x80:  # one byte: most small values
                v, at = b, at + 1
            else:
                v, at = _varint(data, at)
            out[last + depth * 100] = (v >> 1) ^ -(v & 1)
            if marks is not None and last == 4 and not depth:
                marks.crcs.append((start, at))
        elif kind == _STRUCT and not depth and last in _SUB_STRUCTS:
            for key in [k for k in out if abs(k) > 100]:
                del out[key]
            out[0] = last
            at = _fields(data, at, out, 1, marks)
        elif (kind == _TRUE or kind == _FALSE) and 0 < last < 8:
            out[-(last + depth * 100)] = int(kind == _TRUE)
        else:
            at = _skip(data, at, kind, depth + 1, marks)


#: Page headers parsed lately, by their first :data:`_KEY_BYTES` bytes: (all their bytes, the header). A chunks
#: file repeats the same header bytes for every row's small columns (coordinates, shapes, dtype).
_parsed: dict[bytes, tuple[bytes, PageHeader]] = {}
_KEY_BYTES: Final[int] = 24
#: Headers remembered at most, each of at most this many bytes.
PARSED_HEADERS: Final[int] = 4096
_REMEMBERED_BYTES: Final[int] = 1024


def page_header(data: bytes | memoryview) -> PageHeader:
    """The page header at the start of ``data`` (ValueError when it is not a well-formed one; ShortHeader, a
    ValueError, when it runs past the end of ``data``).

    One pass over the Thrift compact bytes, without an object per byte: the i32 fields of the
    header and of its data, dictionary or V2 data page header are kept, everything else (the
    statistics) skipped by its lengths. A header whose bytes equal those of one parsed lately is that header
    (the parse is a function of its bytes alone).
    """
    key = bytes(data[:_KEY_BYTES])
    hit = _parsed.get(key)
    if hit is not None and data[: len(hit[0])] == hit[0]:
        return hit[1]
    head = _parse(data)
    if head.size <= _REMEMBERED_BYTES:  # (statistics can make a header long: those are not kept)
        if len(_parsed) >= PARSED_HEADERS:
            _parsed.clear()
        _parsed[key] = (bytes(data[: head.size]), head)
    return head


def marked_header(data: bytes | memoryview) -> tuple[PageHeader, Marks]:
    """:func:`page_header` (never remembered), and where its bytes hold binary payloads and the crc: the bytes
    whose values do not change how the header parses (see :mod:`.row_heads`)."""
    marks = Marks([], [])
    return _parse(data, marks), marks


def _parse(data: bytes | memoryview, marks: Marks | None = None) -> PageHeader:
    """:func:`page_header`, parsed."""
    got: dict[int, int] = {}
    try:
        size = _fields(data, 0, got, 0, marks)
    except IndexError:
        raise ShortHeader("page header runs past the bytes read") from None
    if not (1 in got and 2 in got and 3 in got):
        raise ValueError("page header lacks its type or sizes")
    if got[2] < 0 or got[3] < 0:
        raise ValueError("page header declares a negative size")
    sub = got.get(0)
    v2 = sub == 8
    return PageHeader(
        type=got[1],
        uncompressed_size=got[2],
        compressed_size=got[3],
        crc=got.get(4),
        num_values=got.get(101, -1) if sub else -1,
        encoding=got.get(104 if v2 else 102, -1) if sub else -1,
        definition_level_encoding=got.get(103, -1) if sub == 5 else -1,
        definition_levels_bytes=got.get(105, -1) if v2 else -1,
        repetition_levels_bytes=got.get(106, -1) if v2 else -1,
        is_compressed=bool(got.get(-107, 1)) if v2 else True,
        size=size,
    )


@frozen
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
