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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pyarrow as pa

from ..arrow_numpy import int_array
from ..boundary import reading, require_regular_file
from ..errors import DamagedFileError
from ..remote import remote_chunk
from .page_columns import COLUMNS, defined_value_at
from .row_heads import row_head, shaped_heads

if TYPE_CHECKING:
    from .readcheck import Columns

__all__ = ["PageFragment", "GAP_BYTES", "AUDIT_BY_FOOTER"]

#: Pages closer than this are fetched in one read (the gap, other columns' pages, is read and dropped).
GAP_BYTES: Final[int] = 64 << 10
#: A first read (audited) of this many row groups or more in one batch (chunks of 64 KiB or less: a batch is
#: 16 MiB) goes through the footer: decoding each row's other columns from its bytes takes ~1 ms of Python a
#: row, parsing the footer once ~0.1 s and tens of MiB. (A first 256 MiB read of 512 KiB chunks: 0.9 s decoding
#: rows, 1.1 s through the footer, measured on a shared machine.)
AUDIT_BY_FOOTER: Final[int] = 256


class PageFragment:
    """A Parquet chunks file read by page ranges: row group ``g``'s value is at ``offset[g]`` (compressed)."""

    format = "parquet"

    def __init__(
        self,
        file: Path,
        codec: str | None,
        offset: np.ndarray,
        compressed: np.ndarray,
        uncompressed: np.ndarray,
        group_offset: np.ndarray,
        *,
        limit: np.ndarray | None = None,
        label: Callable[[int], str] | None = None,
    ) -> None:
        self.path = file
        self._label = label
        self.codec = codec
        self._codec = pa.Codec(codec) if codec else None
        self.offset, self.compressed, self.uncompressed = offset, compressed, uncompressed
        self.group_offset = group_offset
        #: The largest page's compressed size (0 when none is known).
        self.largest_page = int(compressed.max(initial=0))
        self._footer: Any = None  # the file read through its footer, for large first reads (see read)
        self.group_rows = np.ones(len(offset), dtype=np.int64)
        self.group_bytes: np.ndarray | None = uncompressed
        #: The object read by range when ``file`` stands for a remote dataset's chunks file (see remote.chunks).
        self.remote = remote_chunk(file)
        with reading(file, None, "opening the chunks file"):
            size = int(require_regular_file(file).st_size)
            self._fd: int | None = (
                None if self.remote is not None else os.open(file, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            )
        self.size = size
        self._check(limit)

    def _check(self, limit: np.ndarray | None) -> None:
        """Raise DamagedFileError unless every range lies inside the file's column data, apart from the others.

        Row groups no index row names (offset -1) are left out: nothing reads them.
        """
        o, c, u, first = self.offset, self.compressed, self.uncompressed, self.group_offset
        known = o != -1
        bad = known & ((first < 4) | (first >= o) | (c < 1) | (u < 0) | (o + c > self.size - 8))
        if self._codec is None:
            bad |= known & (c != u)
        if limit is not None:
            bad |= known & (u > limit)
        order = np.nonzero(known)[0]
        order = order[np.argsort(first[order], kind="stable")]
        ends = (o + c)[order]
        overlap = np.zeros(len(o), dtype=bool)
        overlap[order[1:]] = first[order[1:]] < ends[:-1]  # row groups (their columns, then the page) apart
        bad |= overlap
        # row groups are written in order: one placed before a group of a lower number is not where the index says
        ids = np.nonzero(known)[0]
        misplaced = np.zeros(len(o), dtype=bool)
        misplaced[ids[1:]] = first[ids[1:]] <= first[ids[:-1]]
        if misplaced.any() and not bad.any():
            g = int(np.nonzero(misplaced)[0][0])
            raise DamagedFileError(
                f"{self.path}: index.parquet says {self.what(g)} lies at byte {int(first[g])}, before a row group of a "
                "lower number, but row groups are stored in order; index.parquet and the chunks file disagree, the "
                "dataset is damaged"
            )
        if bad.any():
            g = int(np.nonzero(bad)[0][0])
            raise DamagedFileError(
                f"{self.path}: index.parquet places the page of {self.what(g)} at bytes {int(o[g])}..{int(o[g] + c[g])} "
                f"({int(u[g])} bytes uncompressed) of a {self.size}-byte file"
                f"{', overlapping another chunk' if overlap[g] else ''}; the index or the chunks file is damaged"
            )

    def what(self, g: int) -> str:
        """Row group ``g`` as messages name it (its chunk and image where known)."""
        return f"row group {g}" + (f" ({self._label(g)})" if self._label is not None else "")

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)
            self._fd = None

    def _spans(
        self, groups: np.ndarray, starts: np.ndarray, stops: np.ndarray | None = None
    ) -> list[tuple[int, int, list[int]]]:
        """(start, stop, groups) of the reads fetching ``groups`` from ``starts[g]`` to ``stops[g]`` (default: the
        end of their page): ranges less than GAP_BYTES apart share one read."""
        order = groups[np.argsort(starts[groups], kind="stable")]
        ends = self.offset + self.compressed if stops is None else stops
        spans: list[tuple[int, int, list[int]]] = []
        for g, start, stop in zip(order.tolist(), starts[order].tolist(), ends[order].tolist()):
            if spans and start - spans[-1][1] <= GAP_BYTES:
                spans[-1] = (spans[-1][0], max(spans[-1][1], stop), [*spans[-1][2], g])
            else:
                spans.append((start, stop, [g]))
        return spans

    def read(self, groups: np.ndarray, audit: bool = False) -> pa.Table:
        """``pixel_bytes`` of row groups ``groups`` (ascending): one value per group, one Arrow chunk per value.

        With ``audit``, also the group's other columns (AUDITED and ``chunk_id``), decoded from the
        bytes just before its page (one read still), for the reader to compare with the index.
        """
        groups = np.asarray(groups, dtype=np.int64)
        if audit and len(groups) >= AUDIT_BY_FOOTER:  # decoding many rows' columns in Python costs ~1 ms each:
            if self._footer is None:  # a read this large affords the footer (parsed once) and reads them in C++
                from .fragments import ParquetFragment

                self._footer = ParquetFragment(self.path)
            return self._footer.read(groups, audit=True)
        out: dict[int, pa.Array] = {}
        rows: dict[int, dict[str, Any]] = {}
        self._check_ranged(groups)
        spans = self._spans(groups, self.group_offset if audit else self.offset)
        for (start, _, members), raw in zip(spans, self._span_bytes(spans, "reading chunk pages")):
            span = pa.py_buffer(raw)
            for g in members:
                at = int(self.offset[g]) - start
                out[g] = self._value(g, span.slice(at, int(self.compressed[g])))
                if audit:
                    rows[g] = self._columns(g, memoryview(raw)[int(self.group_offset[g]) - start : at])
            del raw, span
        table = {"pixel_bytes": pa.chunked_array([out[int(g)] for g in groups], pa.large_binary())}
        if audit:
            table.update(_audit_columns(groups, rows))
        return pa.table(table)

    def heads(self, groups: np.ndarray) -> Columns:
        """The other columns (COLUMNS) of row groups ``groups`` (ascending), as ``read(groups, audit=True)`` gives
        them, from the bytes before each group's page data alone: its pixels are not read (heads less than
        GAP_BYTES apart still share one read). Heads all of one shape come column by column (integers as numpy
        arrays, ``dtype`` as strings: :meth:`~.readcheck.ReadCheck.check` takes them as they are)."""
        groups = np.asarray(groups, dtype=np.int64)
        self._check_ranged(groups)
        order = groups.tolist()
        starts, stops = self.group_offset[groups], self.offset[groups]
        if bool((starts[1:] - stops[:-1] > GAP_BYTES).all()):  # each head alone (groups lie in order): a read each
            spans = list(zip(starts.tolist(), stops.tolist(), ([g] for g in order)))
        else:
            spans = self._spans(groups, self.group_offset, self.offset)
        heads: dict[int, bytes] = {}
        with reading(self.path, None, "reading chunk row groups"):  # entered once: a plane's heads are 64 reads
            for (start, _, members), raw in zip(spans, self._span_bytes(spans, "reading chunk row groups")):
                if len(members) == 1:  # a span of one head: exactly its bytes
                    heads[members[0]] = raw
                    continue
                for g in members:
                    heads[g] = raw[int(self.group_offset[g]) - start : int(self.offset[g]) - start]
        shaped = shaped_heads([heads[g] for g in order]) if self._codec is None and len(order) == len(heads) else None
        if shaped is not None and (self.compressed[groups] == shaped[1][0]).all():
            if (self.uncompressed[groups] == shaped[1][1]).all():  # all of one shape, as the index says: at once
                return {n: _strings(v) if isinstance(v, list) and n == "image_id" else v for n, v in shaped[0].items()}
        rows = {g: self._columns(g, memoryview(head)) for g, head in heads.items()}  # one by one, saying what is wrong
        return pa.table(_audit_columns(groups, rows))

    def _check_ranged(self, groups: np.ndarray) -> None:
        """Raise if any of ``groups`` has no page range in the index."""
        if (self.offset[groups] < 0).any():
            g = int(groups[self.offset[groups] < 0][0])
            raise DamagedFileError(
                f"{self.path}: row group {g} has no page range in index.parquet; the index is damaged"
            )

    def _span_bytes(self, spans: list[tuple[int, int, list[int]]], doing: str) -> Iterator[bytes]:
        """The bytes of each of ``spans`` (start, stop, row groups), in order, each checked to be whole: positioned
        reads, or a remote file's ranged GETs side by side (``remote.fetch_spans``)."""
        if self.remote is None or len(spans) < 2:
            for start, stop, members in spans:
                yield self._read_span(start, stop, members[0], doing)
            return
        from ..remote import fetch_spans

        got = fetch_spans(self.remote.read_at, [(a, b - a) for a, b, _ in spans])
        for start, stop, members in spans:
            with reading(self.path, None, doing):
                raw = next(got)
            if len(raw) != stop - start:
                raise self.truncated(start, stop, start + len(raw), members[0])
            yield raw

    def _read_span(self, start: int, stop: int, first: int, doing: str) -> bytes:
        """Bytes ``start..stop`` (holding row group ``first`` onwards), or raise naming the truncation."""
        with reading(self.path, None, doing):
            raw = self.pread(stop - start, start)
        if len(raw) != stop - start:
            raise self.truncated(start, stop, start + len(raw), first)
        return raw

    def truncated(self, start: int, stop: int, ends: int, g: int) -> DamagedFileError:
        """The error of a read of bytes ``start..stop`` (row group ``g``'s, or from it on) that ended at byte ``ends``:
        every reader of pages (Python or the kernel's) says a short read this one way."""
        return DamagedFileError(
            f"{self.path}: bytes {start}..{stop} hold {self.what(g)}, but the file ends at {ends}; the file is truncated"
        )

    def _columns(self, g: int, head: memoryview) -> dict[str, Any]:
        """The other columns of row group ``g`` from ``head``, its bytes up to its page's data, checked to end there."""
        try:
            row, compressed, uncompressed = row_head(head, self._codec)
            if compressed != int(self.compressed[g]) or uncompressed != int(self.uncompressed[g]):
                raise ValueError("the pixel page is not where and what the index says")
        except (ValueError, OSError, pa.ArrowException) as exc:
            raise DamagedFileError(
                f"{self.path}: the columns of {self.what(g)} do not decode ({exc}); the file or "
                "index.parquet is damaged"
            ) from exc
        return row

    def pread(self, size: int, start: int) -> bytes:
        """``size`` bytes from ``start`` (fewer at the end of the file): a positioned read, or one ranged GET."""
        if self.remote is not None:
            return self.remote.read_at(start, size)
        return os.pread(self._fd, size, start) if self._fd is not None else b""

    def fileno(self) -> int:
        """The file descriptor the pages are read from (open while this fragment lives)."""
        if self._fd is None:
            raise DamagedFileError(f"{self.path}: the chunks file was closed")
        return self._fd

    def decompress(self, g: int, page: pa.Buffer) -> pa.Buffer:
        """Row group ``g``'s page ``page`` decompressed (itself when uncompressed), checked to be its recorded size."""
        size = int(self.uncompressed[g])
        if self._codec is not None:
            try:
                page = self._codec.decompress(page, decompressed_size=size)
            except (OSError, pa.ArrowException, ValueError) as exc:
                raise DamagedFileError(
                    f"{self.path}: the page of {self.what(g)} does not decompress ({exc}); "
                    "the file or index.parquet is damaged"
                ) from exc
        if page.size != size:
            raise DamagedFileError(
                f"{self.path}: the page of {self.what(g)} holds {page.size} bytes, the index says {size}"
            )
        return page

    def _value(self, g: int, page: pa.Buffer) -> pa.Array:
        """The one ``pixel_bytes`` value of row group ``g``'s V1 page ``page`` (compressed), zero-copy from the page."""
        size = int(self.uncompressed[g])
        page = self.decompress(g, page)
        body = memoryview(page)
        start = defined_value_at(body)
        length = int.from_bytes(body[start : start + 4], "little") if start >= 0 else -1
        start += 4
        if start < 4 or start + length != size:
            raise DamagedFileError(
                f"{self.path}: the page of {self.what(g)} is not one defined PLAIN value filling {size} bytes; "
                "the file or index.parquet is damaged"
            )
        offsets = pa.py_buffer(np.array([0, length], dtype=np.int64))
        return pa.LargeBinaryArray.from_buffers(pa.large_binary(), 1, [None, offsets, page.slice(start, length)])


def _audit_columns(groups: np.ndarray, rows: dict[int, dict[str, Any]]) -> dict[str, pa.ChunkedArray]:
    """The COLUMNS of row groups ``groups`` from their decoded ``rows``, built from buffers (pa.array imports
    pandas, ~40 MiB resident)."""
    table = {}
    ordered = [rows[g] for g in groups.tolist()]
    for name, kind in COLUMNS:
        values = [row[name] for row in ordered]
        table[name] = pa.chunked_array([_strings(values) if kind == "str" else int_array(np.array(values))])
    return table


def _strings(values: list[str]) -> pa.Array:
    """``values`` as an Arrow string array, from buffers."""
    data = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(data) + 1, dtype=np.int32)
    np.cumsum([len(d) for d in data], out=offsets[1:])
    return pa.StringArray.from_buffers(len(data), pa.py_buffer(offsets), pa.py_buffer(b"".join(data)))
