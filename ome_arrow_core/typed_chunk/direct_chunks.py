"""Writing an uncompressed chunks file page by page, without pyarrow's Parquet writer.

pyarrow's writer costs about 0.3 ms of CPU per row group (14 columns, statistics, page checksums), and a
chunks file has a row group per chunk: most of the time of writing an image. This writer lays out the same
file itself: per row group one PLAIN V1 data page per column (definition levels, CRC-32 page checksum), the
statistics pyarrow writes for every column but ``pixel_bytes`` (min, max, null count), and a footer with the
Arrow schema, so pyarrow, ome-arrow 0.1.0 and our readers read it as they read pyarrow's. The pixel bytes go
from the packed chunk buffer to the file with ``os.writev`` (no copy); everything else is built for a batch of
row groups at once (:mod:`.thrift_rows`). It knows where each ``pixel_bytes`` page lies, so the page ranges of
the index come without re-reading the footer.

It writes codec-less files whose row groups hold whole tables or single rows (``rows_per_group=1``); others go
through pyarrow (see :func:`~.fragments.write_fragment`).
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa

from .. import parquet_lite as pq
from ..errors import SchemaError
from .page_crcs import fixed_width_crcs, page_crcs
from .parquet_pages import PageRanges
from .spec import CHUNKS_SCHEMA, FILE_METADATA
from .thrift_rows import STOP, Segment, Var, assemble, binary, byte_strings, fixed, head, uvarint, varints

__all__ = ["write_chunks_direct", "CREATED_BY"]

#: The footer's ``created_by``.
CREATED_BY = "ome-arrow-core direct chunk writer (parquet-format 2.6)"
_MAGIC = b"PAR1"
#: Row groups built and written per batch (bounds the memory of the small columns' bytes)...
_BATCH_GROUPS = 1024
#: ...and pixel bytes: tables wait (referenced, not copied) until this many are pending.
_BATCH_BYTES = 32 << 20
#: iovecs per ``os.writev`` call (IOV_MAX on Linux).
_IOV = 1024
#: Parquet physical types.
_INT32, _INT64, _BYTE_ARRAY = 1, 2, 6
#: The definition levels of a page of one value: RLE, 2 bytes (a run of 1 one).
_ONE_ROW = b"\x02\x00\x00\x00\x02\x01"
#: Page header after the sizes and CRC: data_page_header {num_values=...}.
_DPH = head(1, 12) + head(1, 5)
#: ...encoding PLAIN, definition and repetition levels RLE; end of both structs.
_DPH_END = head(1, 5) + b"\x00" + head(1, 5) + b"\x06" + head(1, 5) + b"\x06" + STOP + STOP


@functools.lru_cache(maxsize=1)
def _key_values() -> bytes:
    """The footer's key_value_metadata list: ours and ``ARROW:schema``, as pyarrow writes them."""
    schema = CHUNKS_SCHEMA.with_metadata(FILE_METADATA)
    sink = pa.BufferOutputStream()
    pq.write_table(schema.empty_table(), sink)
    meta = pq.read_metadata(pa.BufferReader(sink.getvalue())).metadata or {}
    items = [head(1, 8) + binary(k) + head(1, 8) + binary(v) + STOP for k, v in meta.items()]
    return _list_header(len(items), 12) + b"".join(items)


def _list_header(n: int, kind: int) -> bytes:
    return bytes(((n << 4) | kind,)) if n < 15 else bytes((0xF0 | kind,)) + uvarint(n)


def _kinds() -> list[tuple[str, int, int]]:
    """(name, physical type, value width: 4/8 for ints, 0 for strings, -1 for pixel_bytes) of each column."""
    out = []
    for f in CHUNKS_SCHEMA:
        if f.type == pa.int32():
            out.append((f.name, _INT32, 4))
        elif f.type == pa.int64():
            out.append((f.name, _INT64, 8))
        elif f.type == pa.string():
            out.append((f.name, _BYTE_ARRAY, 0))
        elif f.type == pa.large_binary():
            out.append((f.name, _BYTE_ARRAY, -1))
        else:  # pragma: no cover - CHUNKS_SCHEMA has only these
            raise AssertionError(f"no direct encoding for {f}")
    return out


_COLUMNS = _kinds()
#: Where ``pixel_bytes`` is (last: readers of page ranges expect it there).
_PIXELS = CHUNKS_SCHEMA.get_field_index("pixel_bytes")
assert _PIXELS == len(_COLUMNS) - 1


def _schema_elements() -> bytes:
    root = head(3, 5) + b"\x00" + head(1, 8) + binary(b"schema") + head(1, 5) + uvarint(2 * len(_COLUMNS)) + STOP
    leaves = []
    for name, physical, width in _COLUMNS:
        leaf = head(1, 5) + uvarint(2 * physical) + head(2, 5) + b"\x02" + head(1, 8) + binary(name.encode())
        if width == 0:  # a string: converted type UTF8, logical type STRING
            leaf += head(2, 5) + b"\x00" + head(4, 12) + head(1, 12) + STOP + STOP
        leaves.append(leaf + STOP)
    return _list_header(len(leaves) + 1, 12) + root + b"".join(leaves)


def _meta_head(name: str, physical: int) -> bytes:
    """ColumnMetaData up to num_values: type, encodings [PLAIN, RLE], path, codec UNCOMPRESSED."""
    return (
        head(1, 5)
        + uvarint(2 * physical)
        + head(1, 9)
        + _list_header(2, 5)
        + b"\x00\x06"
        + head(1, 9)
        + _list_header(1, 8)
        + binary(name.encode())
        + head(1, 5)
        + b"\x00"
        + head(1, 6)
    )


def _slices(flat: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> Var:
    """Row i: ``flat[starts[i] : starts[i] + lens[i]]``."""
    width = max(int(lens.max()) if len(lens) else 0, 1)
    idx = starts[:, None] + np.arange(width)[None, :]
    mask = np.arange(width)[None, :] < lens[:, None]
    data = np.zeros((len(starts), width), dtype=np.uint8)
    data[mask] = flat[idx[mask]]
    return Var(data, lens.astype(np.int64))


def _rows_bytes(var: Var) -> list[bytes]:
    return [bytes(var.data[i, : var.lens[i]]) for i in range(len(var.lens))]


class _Batch:
    """Row groups of one batch: each column's PLAIN values per group, and the pixel bytes."""

    def __init__(self, table: pa.Table, counts: np.ndarray) -> None:
        """``table``: the rows of the batch; ``counts``: the rows of each of its row groups, in order."""
        self.groups = len(counts)
        self.counts = counts
        self.first = np.zeros(len(counts), dtype=np.int64)
        np.cumsum(counts[:-1], out=self.first[1:])
        self.table = table
        #: Each group's row count as a thrift integer.
        self.count_var = varints(counts)

    def int_column(self, k: int, width: int) -> tuple[Var, np.ndarray, np.ndarray, np.ndarray]:
        """Per group: PLAIN values, min and max (little-endian bytes); and every row's value, (rows, width) bytes."""
        col = self.table.column(k)
        if col.null_count:
            raise SchemaError(f"chunk column {self.table.column_names[k]!r} holds nulls; chunk rows have none")
        v = col.to_numpy().astype(f"<i{width}")
        flat = v.view(np.uint8)
        values = _slices(flat, self.first * width, self.counts * width)
        lo = np.minimum.reduceat(v, self.first).astype(f"<i{width}").view(np.uint8).reshape(-1, width)
        hi = np.maximum.reduceat(v, self.first).astype(f"<i{width}").view(np.uint8).reshape(-1, width)
        return values, lo, hi, flat.reshape(-1, width)

    def string_column(self, k: int) -> tuple[Var, list[bytes], list[bytes], list[bytes]]:
        """Per group: PLAIN values (also as bytes), min and max."""
        col = self.table.column(k)
        if col.null_count:
            raise SchemaError(f"chunk column {self.table.column_names[k]!r} holds nulls; chunk rows have none")
        items = [s.encode() for s in col.to_pylist()]
        plain = [len(b).to_bytes(4, "little") + b for b in items]
        groups = [plain[a : a + n] for a, n in zip(self.first.tolist(), self.counts.tolist())]
        pages = [b"".join(g) for g in groups]
        spans = [items[a : a + n] for a, n in zip(self.first.tolist(), self.counts.tolist())]
        return byte_strings(pages), pages, [min(s) for s in spans], [max(s) for s in spans]

    def pixels(self, views: list[memoryview]) -> tuple[Var, list[bytes], list[list[memoryview]], np.ndarray]:
        """Per group: the page's PLAIN values as the first value's length (built in the page's bytes) and the
        buffers written after it (the first value, not copied; then the others, each after its length), their
        total length; ``views``: each row's pixel bytes."""
        inline: list[bytes] = []
        after: list[list[memoryview]] = []
        lens = np.empty(self.groups, dtype=np.int64)
        for g, (a, n) in enumerate(zip(self.first.tolist(), self.counts.tolist())):
            inline.append(len(views[a]).to_bytes(4, "little"))
            if n == 1:
                after.append([views[a]])
                lens[g] = len(views[a])
                continue
            # packed small images: one buffer (a few hundred KiB at most) rather than an iovec per image
            rest = b"".join(b for v in views[a + 1 : a + n] for b in (len(v).to_bytes(4, "little"), v))
            after.append([views[a], memoryview(rest)])
            lens[g] = len(views[a]) + len(rest)
        return byte_strings(inline), inline, after, lens


def _levels(counts: np.ndarray) -> Var:
    """Each group's definition levels: its n values all present (RLE run of n ones, 4-byte length first)."""
    run = varints(counts << 1, zigzag=False)
    size = (run.lens + 1).astype("<u4").view(np.uint8).reshape(-1, 4)
    buf, starts = assemble([fixed(size), run, b"\x01"], len(counts))
    return _slices(buf, starts[:, 0], starts[:, -1] - starts[:, 0])


#: Segments of :func:`_page_header`.
_HEADER_SEGMENTS = 9


def _page_header(size: Var, crc: Var, counts: Var) -> list[Segment]:
    return [head(1, 5) + b"\x00" + head(1, 5), size, head(1, 5), size, head(1, 5), crc, _DPH, counts, _DPH_END]


class DirectChunkWriter:
    """Writes a chunks file at ``file``: :meth:`write` each table (one row group each with ``table_groups``,
    else one per row), then :meth:`close`, which returns the page ranges of ``pixel_bytes``."""

    def __init__(self, file: Path, table_groups: bool) -> None:
        self.table_groups = table_groups
        self.fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o666)
        self.pos = 0
        self.rows = 0
        self.footer: list[bytes] = []
        self.groups = 0
        self.ranges: list[np.ndarray] = []  # per batch: (groups, 4) page offset, size, size, group offset
        self.pending: list[pa.Table] = []
        self.pending_groups = 0
        self.pending_views: list[memoryview] = []  # each pending row's pixel bytes
        self.pending_bytes = 0
        self._write([_MAGIC])

    def write(self, table: pa.Table) -> None:
        if not table.schema.equals(CHUNKS_SCHEMA, check_metadata=False):
            raise SchemaError(f"chunk tables have the schema {CHUNKS_SCHEMA}, got {table.schema}")
        if table.num_rows == 0:
            return
        self.pending.append(table)
        self.pending_groups += 1 if self.table_groups else table.num_rows
        for chunk in table.column(_PIXELS).chunks:
            if chunk.null_count:
                raise SchemaError("chunk column 'pixel_bytes' holds nulls; chunk rows have none")
            _, offs, data = chunk.buffers()
            o = np.frombuffer(offs, dtype=np.int64, count=len(chunk) + 1, offset=8 * chunk.offset).tolist()
            mv = memoryview(data) if data is not None else memoryview(b"")
            self.pending_views.extend(mv[a:b] for a, b in itertools.pairwise(o))
            self.pending_bytes += o[-1] - o[0]
        if self.pending_groups >= _BATCH_GROUPS or self.pending_bytes >= _BATCH_BYTES:
            self._flush()

    def _write(self, bufs: list[bytes | memoryview]) -> None:
        for k in range(0, len(bufs), _IOV):
            part = [memoryview(b).cast("B") for b in bufs[k : k + _IOV]]
            total = sum(len(b) for b in part)
            skip = os.writev(self.fd, part)
            if skip < total:  # a short write: the rest one buffer at a time
                for b in part:
                    if skip >= len(b):
                        skip -= len(b)
                        continue
                    b, skip = b[skip:], 0
                    while len(b):
                        b = b[os.write(self.fd, b) :]
            self.pos += total

    def _flush(self) -> None:
        if not self.pending:
            return
        table = pa.concat_tables(self.pending)
        counts = np.array(
            [t.num_rows for t in self.pending] if self.table_groups else [1] * table.num_rows, dtype=np.int64
        )
        views = self.pending_views
        self.pending, self.pending_groups, self.pending_views, self.pending_bytes = [], 0, [], 0
        self._groups(_Batch(table, counts), views)
        self.rows += table.num_rows

    def _groups(self, batch: _Batch, views: list[memoryview]) -> None:
        g = batch.groups
        levels = _levels(batch.counts)
        level_bytes = [_ONE_ROW] * g if bool((batch.counts == 1).all()) else _rows_bytes(levels)
        data: list[Segment] = []
        marks: list[int] = []  # per column: index of its first segment in ``data``
        stats: list[list[Segment]] = []
        after: list[list[memoryview]] = []
        after_lens = np.zeros(g, dtype=np.int64)
        for k, (_, _, width) in enumerate(_COLUMNS):
            if width > 0:
                values, lo, hi, rows = batch.int_column(k, width)
                w = uvarint(width)
                leg: list[Segment] = [head(1, 8) + w, fixed(hi), head(1, 8) + w, fixed(lo)]  # max, min (legacy: signed)
                stats.append([*leg, head(1, 6) + b"\x00" + head(2, 8) + w, fixed(hi), head(1, 8) + w, fixed(lo), STOP])
                crc = fixed_width_crcs(level_bytes, batch.counts, batch.first, rows)
            elif width == 0:
                values, pages, los, his = batch.string_column(k)
                hi_len, lo_len = (varints(np.array([len(b) for b in v]), zigzag=False) for v in (his, los))
                # null_count 0, max_value, min_value (strings sort unsigned: no legacy min/max)
                stats.append([head(3, 6) + b"\x00" + head(2, 8), hi_len, byte_strings(his), head(1, 8), lo_len])
                stats[-1] += [byte_strings(los), STOP]
                crc = page_crcs(level_bytes, pages)
            else:
                values, inline, after, after_lens = batch.pixels(views)
                stats.append([])
                crc = page_crcs(level_bytes, inline, after)
            size = levels.lens + values.lens + (after_lens if width < 0 else 0)
            marks.append(len(data))
            data += [*_page_header(varints(size), varints(crc), batch.count_var), levels, values]
        marks.append(len(data))
        buf, starts = assemble(data, g)
        # where each group's bytes lie in the file: its inline bytes, then its pixel bytes (one-row groups)
        shift = np.zeros(g, dtype=np.int64)
        np.cumsum(after_lens[:-1], out=shift[1:])
        base = self.pos + shift  # a byte at p of buf lies at base + p in the file
        col_start = starts[:, marks[:-1]] + base[:, None]
        col_size = np.diff(starts[:, marks], axis=1)
        col_size[:, -1] += after_lens
        self._footer_rows(batch, col_start, col_size, stats)
        pix_header = starts[:, marks[-2] + _HEADER_SEGMENTS]  # where the pixel page's data starts
        self.ranges.append(
            np.stack(
                [pix_header + base, col_size[:, -1] - (pix_header - starts[:, marks[-2]]), col_start[:, 0]], axis=1
            )
        )
        bufs: list[bytes | memoryview] = []
        view = memoryview(buf.data)
        for i in range(g):
            bufs.append(view[starts[i, 0] : starts[i, -1]])
            bufs += after[i]
        self._write(bufs)
        self.groups += g

    def _footer_rows(self, batch: _Batch, start: np.ndarray, size: np.ndarray, stats: list[list[Segment]]) -> None:
        """The footer's RowGroup entries of a batch."""
        segs: list[Segment] = [head(1, 9) + _list_header(len(_COLUMNS), 12)]
        for k, (name, physical, _) in enumerate(_COLUMNS):
            at, n = varints(start[:, k]), varints(size[:, k])
            segs += [head(2, 6), at, head(1, 12) + _meta_head(name, physical), batch.count_var]
            segs += [head(1, 6), n, head(1, 6), n, head(2, 6), at]
            if stats[k]:
                segs += [head(3, 12), *stats[k]]
            segs.append(STOP + STOP)
        total = size.sum(axis=1)
        n = varints(total)
        segs += [head(1, 6), n, head(1, 6), batch.count_var, head(2, 6), varints(start[:, 0]), head(1, 6), n, STOP]
        buf, _ = assemble(segs, batch.groups)
        self.footer.append(buf.tobytes())

    def close(self) -> PageRanges:
        """Write the footer and close the file; the page ranges of ``pixel_bytes`` (codec None)."""
        try:
            self._flush()
            meta = (
                head(1, 5)
                + uvarint(2 * 2)  # version 2
                + head(1, 9)
                + _schema_elements()
                + head(1, 6)
                + uvarint(2 * self.rows)
                + head(1, 9)
                + _list_header(self.groups, 12)
                + b"".join(self.footer)
                + head(1, 9)
                + _key_values()
                + head(1, 8)
                + binary(CREATED_BY.encode())
                + head(1, 9)
                + _list_header(len(_COLUMNS), 12)
                + (head(1, 12) + STOP + STOP) * len(_COLUMNS)
                + STOP
            )
            self._write([meta, len(meta).to_bytes(4, "little"), _MAGIC])
        finally:
            os.close(self.fd)
        r = np.concatenate(self.ranges) if self.ranges else np.zeros((0, 3), dtype=np.int64)
        return PageRanges(None, r[:, 0].copy(), r[:, 1].copy(), r[:, 1].copy(), r[:, 2].copy(), self.pos)

    def abort(self) -> None:
        os.close(self.fd)


def write_chunks_direct(tables: Iterable[pa.Table], file: Path, table_groups: bool) -> PageRanges | None:
    """Write chunk tables (CHUNKS_SCHEMA) to ``file``, uncompressed; the page ranges of ``pixel_bytes``
    where every row group holds one row (else None, as :func:`~.parquet_pages.page_ranges` says)."""
    w = DirectChunkWriter(file, table_groups)
    try:
        for table in tables:
            w.write(table)
    except BaseException:
        w.abort()
        raise
    ranges = w.close()
    if len(ranges.offset) == 0 or (table_groups and w.rows != w.groups):
        return None
    return ranges
