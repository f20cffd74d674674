"""Chunks read by byte range: one positioned read per run of pages, no Parquet footer, no Parquet decode.

A chunks.parquet that we write with one chunk per row group holds each chunk's ``pixel_bytes``
in one PLAIN V1 data page. The index records where that page's compressed bytes lie
(``page_offset``, ``page_compressed_size``, ``page_uncompressed_size``) and the manifest the
codec of each such chunks file (``ome_arrow_core.page_ranges``). :class:`PageFragment` reads
those bytes with ``os.pread`` (adjacent pages in one read), decompresses them with pyarrow's
codec and takes the value out of the page body, checking every size against the file; the
file stays a plain Parquet file that any reader can read. Index rows without ranges (older
files, other layouts) are read through the footer, as before.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa

from .boundary import reading, require_regular_file
from .errors import DamagedFileError
from .parquet_pages import PageRanges

__all__ = ["RANGE_COLUMNS", "RANGE_FIELDS", "MANIFEST_KEY", "PageFragment", "range_columns", "listed_codec",
           "ranged_rows_bound", "paged_fragment"]

#: Index columns locating each chunk's page (null: read through the Parquet footer).
RANGE_COLUMNS: Final[tuple[str, str, str]] = ("page_offset", "page_compressed_size", "page_uncompressed_size")
RANGE_FIELDS: Final[list[pa.Field]] = [pa.field(n, pa.int64()) for n in RANGE_COLUMNS]
#: Manifest key (under ``ome_arrow_core``): chunks file name -> pyarrow codec of its pages ("none": uncompressed).
MANIFEST_KEY: Final[str] = "page_ranges"
#: Pages closer than this are fetched in one read (the gap, other columns' pages, is read and dropped).
GAP_BYTES: Final[int] = 64 << 10
#: A page is at most this many bytes a pixel (complex128) plus this many of levels and lengths: a larger
#: declared size is refused before anything is allocated.
_MAX_ITEMSIZE, _PAGE_OVERHEAD = 16, 64
#: Bytes every row group of a chunks file takes at least (pages and footer entries of its columns): bounds
#: how many chunk rows a file can back, checked before the index is read.
MIN_ROW_BYTES: Final[int] = 64


def range_columns(row_group_id: np.ndarray, ranges: PageRanges | None) -> list[pa.Array]:
    """The RANGE_COLUMNS of index rows with row groups ``row_group_id`` of a file with ``ranges`` (None: nulls)."""
    if ranges is None:
        return [pa.nulls(len(row_group_id), pa.int64()) for _ in RANGE_COLUMNS]
    return [pa.array(a[row_group_id]) for a in (ranges.offset, ranges.compressed, ranges.uncompressed)]


def listed_codec(manifest: dict[str, Any], name: str) -> tuple[bool, str | None]:
    """(whether the manifest lists chunks file ``name`` as read by ranges, the pyarrow codec of its pages)."""
    listed = (manifest.get("ome_arrow_core") or {}).get(MANIFEST_KEY)
    if not isinstance(listed, dict) or name not in listed:
        return False, None
    codec = listed[name]
    if not isinstance(codec, str) or (codec != "none" and not pa.Codec.is_available(codec)):
        raise DamagedFileError(f"the manifest lists codec {codec!r} for the pages of {name}; it is damaged")
    return True, None if codec == "none" else codec


def ranged_rows_bound(file: Path) -> int:
    """The most chunk rows ranged chunks file ``file`` can hold (from its size; its footer is not read)."""
    with reading(file, None, "checking the chunks file"):
        return int(require_regular_file(file).st_size) // MIN_ROW_BYTES


def paged_fragment(root: Path, name: str, manifest: dict[str, Any], index: pa.Table,
                   rows: np.ndarray, pixels: np.ndarray) -> PageFragment | None:
    """A :class:`PageFragment` for chunks file ``name`` (index ``rows`` name it; ``pixels``: their pixel counts),
    or None when the manifest does not list it or an index row lacks its range (then the footer is read)."""
    listed, codec = listed_codec(manifest, name)
    if not listed or not all(c in index.column_names for c in RANGE_COLUMNS):
        return None
    from .arrow_numpy import int_values

    cols = []
    for c in RANGE_COLUMNS:  # numpy only: a take kernel would load pyarrow's compute functions (~50 MiB)
        values = int_values(index.column(c), -1).astype(np.int64)[rows]
        if (values < 0).any():
            return None
        cols.append(values)
    groups = int_values(index.column("row_group_id")).astype(np.int64)[rows]
    within = int_values(index.column("row_index_in_group")).astype(np.int64)[rows]
    file = root / name
    n = len(rows)
    if (within != 0).any() or (groups < 0).any() or (groups >= n).any() or len(np.unique(groups)) != n:
        raise DamagedFileError(
            f"index.parquet of {root} gives {name} page ranges but its chunk rows are not one per row group "
            f"(row_group_id 0..{n - 1}, row_index_in_group 0); the index is damaged"
        )
    order = np.argsort(groups)
    return PageFragment(file, codec, *(c[order] for c in cols), limit=pixels[order] * _MAX_ITEMSIZE + _PAGE_OVERHEAD)


class PageFragment:
    """A Parquet chunks file read by page ranges: row group ``g``'s value is at ``offset[g]`` (compressed)."""

    format = "parquet"

    def __init__(self, file: Path, codec: str | None, offset: np.ndarray, compressed: np.ndarray,
                 uncompressed: np.ndarray, *, limit: np.ndarray | None = None) -> None:
        self.path = file
        self.codec = codec
        self._codec = pa.Codec(codec) if codec else None
        self.offset, self.compressed, self.uncompressed = offset, compressed, uncompressed
        self.group_rows = np.ones(len(offset), dtype=np.int64)
        self.group_bytes: np.ndarray | None = uncompressed
        with reading(file, None, "opening the chunks file"):
            size = int(require_regular_file(file).st_size)
            self._fd: int | None = os.open(file, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        self.size = size
        self._check(limit)

    def _check(self, limit: np.ndarray | None) -> None:
        """Raise DamagedFileError unless every range lies inside the file's column data, apart from the others."""
        o, c, u = self.offset, self.compressed, self.uncompressed
        bad = (o < 4) | (c < 1) | (u < 0) | (o + c > self.size - 8) | ((u == 0) & (self._codec is None))
        if self._codec is None:
            bad |= c != u
        if limit is not None:
            bad |= u > limit
        order = np.argsort(o, kind="stable")
        ends = (o + c)[order]
        overlap = np.zeros(len(o), dtype=bool)
        overlap[order[1:]] = o[order[1:]] < ends[:-1]
        bad |= overlap
        if bad.any():
            g = int(np.nonzero(bad)[0][0])
            raise DamagedFileError(
                f"{self.path}: index.parquet places the page of row group {g} at bytes {int(o[g])}..{int(o[g] + c[g])} "
                f"({int(u[g])} bytes uncompressed) of a {self.size}-byte file"
                f"{', overlapping another chunk' if overlap[g] else ''}; the index or the chunks file is damaged"
            )

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)
            self._fd = None

    def _spans(self, groups: np.ndarray) -> list[tuple[int, int, list[int]]]:
        """(start, stop, groups) of the reads fetching ``groups``: pages less than GAP_BYTES apart share one."""
        order = groups[np.argsort(self.offset[groups], kind="stable")]
        spans: list[tuple[int, int, list[int]]] = []
        for g, start, stop in zip(order.tolist(), self.offset[order].tolist(), (self.offset + self.compressed)[order].tolist()):
            if spans and start - spans[-1][1] <= GAP_BYTES:
                spans[-1] = (spans[-1][0], max(spans[-1][1], stop), [*spans[-1][2], g])
            else:
                spans.append((start, stop, [g]))
        return spans

    def read(self, groups: np.ndarray) -> pa.ChunkedArray:
        """``pixel_bytes`` of row groups ``groups`` (ascending): one value per group, one chunk per value."""
        out: dict[int, pa.Array] = {}
        for start, stop, members in self._spans(np.asarray(groups, dtype=np.int64)):
            with reading(self.path, None, "reading chunk pages"):
                raw = os.pread(self._fd, stop - start, start) if self._fd is not None else b""
            if len(raw) != stop - start:
                raise DamagedFileError(
                    f"{self.path}: bytes {start}..{stop} hold row groups {members[:5]}, but the file ends at "
                    f"{start + len(raw)}; the file is truncated"
                )
            span = pa.py_buffer(raw)
            for g in members:
                at = int(self.offset[g]) - start
                out[g] = self._value(g, span.slice(at, int(self.compressed[g])))
            del raw, span
        return pa.chunked_array([out[int(g)] for g in groups], pa.large_binary())

    def _value(self, g: int, page: pa.Buffer) -> pa.Array:
        """The one ``pixel_bytes`` value of row group ``g``'s V1 page ``page`` (compressed), zero-copy from the page."""
        size = int(self.uncompressed[g])
        if self._codec is not None:
            try:
                page = self._codec.decompress(page, decompressed_size=size)
            except (OSError, pa.ArrowException, ValueError) as exc:
                raise DamagedFileError(f"{self.path}: the page of row group {g} does not decompress ({exc}); "
                                       "the file or index.parquet is damaged") from exc
        if page.size != size:
            raise DamagedFileError(f"{self.path}: the page of row group {g} holds {page.size} bytes, the index says {size}")
        start, length = _plain_value(memoryview(page), size)
        if start < 0:
            raise DamagedFileError(
                f"{self.path}: the page of row group {g} is not one defined PLAIN value filling {size} bytes; "
                "the file or index.parquet is damaged"
            )
        offsets = pa.py_buffer(np.array([0, length], dtype=np.int64))
        return pa.LargeBinaryArray.from_buffers(pa.large_binary(), 1, [None, offsets, page.slice(start, length)])


def _plain_value(body: memoryview, size: int) -> tuple[int, int]:
    """(start, length) of the one value of a V1 page body of an optional BYTE_ARRAY column, or (-1, -1).

    The body: a 4-byte length and the definition levels (RLE/bit-packed hybrid, bit width 1), then
    PLAIN values (a 4-byte little-endian length, then the bytes). The value must be defined and fill the page.
    """
    if size < 8:
        return -1, -1
    levels = int.from_bytes(body[0:4], "little")
    if levels < 2 or 4 + levels + 4 > size:
        return -1, -1
    head = body[4]
    if head & 0x80:  # a run header over one byte: far more values than the one a page of ours holds
        return -1, -1
    if head & 1:  # bit-packed: groups of 8 values, the first one's bit 0
        defined = head >> 1 >= 1 and body[5] & 1
    else:  # RLE run: count, then the value in one byte
        defined = head >> 1 >= 1 and body[5] == 1
    if not defined:
        return -1, -1
    at = 4 + levels
    length = int.from_bytes(body[at : at + 4], "little")
    if at + 4 + length != size:
        return -1, -1
    return at + 4, length
