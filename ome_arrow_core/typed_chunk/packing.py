"""Packing images into chunk tables: each image (or band of planes) cut into chunks, checksummed, batched.

Nothing here writes a file: :class:`ChunkPacker` yields the tables a chunks-file writer pulls,
and records the index rows of everything packed.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from ..arrow_numpy import int_values
from ..chunks import ChunkTable, normalize_chunk_shape
from ..errors import ArgumentError, SchemaError
from ..meta import ImageMeta
from ..selection import Selection
from .chunk_groups import one_group_per_row
from .image_batches import ImageRowBatches, check_metadata_names
from .image_rows import image_row
from .packed_pieces import Piece, chunk_payload
from .page_index import RANGE_FIELDS, range_columns
from .parquet_pages import PageRanges
from .spec import CHUNKS_SCHEMA, FILE_METADATA, INDEX_SCHEMA

__all__ = [
    "ChunkPacker",
    "BandReader",
    "StreamItem",
    "packed_tables",
    "BAND_BYTES",
    "BATCH_BYTES",
    "BATCH_PIECES",
    "SMALL_IMAGE_BYTES",
    "GROUP_BYTES",
    "GROUP_IMAGES",
]

#: Reads a selection (absolute TZCYX storage indices) of one image being written.
BandReader = Callable[[Selection], np.ndarray]
#: One image to stream: (image_id or None for the next free ``image-NNNNN``, meta, reader, extra columns).
StreamItem = tuple["str | None", ImageMeta, BandReader, Mapping[str, Any]]
#: Images up to this many bytes are read whole; larger ones one band of chunks (t, c, z) at a time.
BAND_BYTES = 64 << 20
#: Packed chunk rows wait in memory until this many bytes of them are ready, then go out as one table...
BATCH_BYTES = 16 << 20
#: ...or until this many images (or bands) wait, so tiny images do not pile up Python objects.
BATCH_PIECES = 1024
#: Images of one chunk of at most this many pixel bytes share chunks row groups (Parquet chunks files): a row
#: group per image costs about 1.1 KiB of footer each (a million 128-byte images: a 1 GiB footer, held while
#: writing). Any read of such an image reads all of it; an image of several chunks keeps a row group per chunk
#: (``rows_per_group``), so a crop reads only the chunks it touches, by page ranges.
SMALL_IMAGE_BYTES = 64 << 10
#: A shared row group holds whole small images, up to this many pixel bytes (a read of one of them reads its
#: row group: 256 KiB is 2-4x the time of one 8 KiB image's own row group, measured with pyarrow)...
GROUP_BYTES = 256 << 10
#: ...and up to this many images.
GROUP_IMAGES = 1024


class ChunkPacker:
    """Packs images into the chunk tables of chunks files (fragments of a dataset), one band at a time.

    :meth:`add` returns an image's row and a lazy iterator of its packed pieces (one per band);
    :meth:`tables` batches pieces into chunk tables of up to :data:`BATCH_BYTES`, and whoever
    writes the file (:func:`~.fragments.write_fragment`) pulls them, so memory stays
    bounded by one image (or, for images over :data:`BAND_BYTES`, one band of planes) plus one
    batch. With ``share`` (Parquet chunks files), whole images of at most
    :data:`SMALL_IMAGE_BYTES` share row groups, in order, up to :data:`GROUP_IMAGES` images and
    :data:`GROUP_BYTES` pixel bytes a group; every other image (or band) starts a fresh row group
    of at most ``rows_per_group`` rows, as if written alone, and so does the first small image
    after it. Each table yielded is then exactly one row group. Without ``share`` (chunk stores,
    one group per row) a table is a batch. The index rows of everything packed are returned by
    :meth:`index`. A chunk-store fragment is packed with ``rows_per_group=1``: its ``row_group_id``
    is the row number. :meth:`start` moves on to another chunks file: the tables packed after it
    are indexed as that file's.
    """

    def __init__(
        self,
        fragment: str,
        *,
        first_chunk_id: int = 0,
        chunk_shape: Sequence[int] | None = None,
        compression: str | None = "lz4",
        rows_per_group: int = 1,
        share: bool = True,
        images_per_group: int = 1024,
    ) -> None:
        self.codec = None if compression in (None, "none") else compression
        #: Whether small images share row groups (each table is then one row group).
        self.share = share
        #: (images, pixel bytes) of the shared row group still open to more small images (None: none open).
        self._open: tuple[int, int] | None = None
        #: Images per row group of the images table written with these chunks: a shared row group never holds
        #: images of two of them (the index is aligned with it, see :mod:`.aligned_index`).
        self.images_per_group = max(1, int(images_per_group))
        self._images = 0  # images packed so far (into this packer's images table)
        self._last: str | None = None
        self.fragment = fragment
        self.chunk_shape = chunk_shape
        self.rows_per_group = int(rows_per_group)
        if self.rows_per_group < 1:
            raise ArgumentError(f"rows_per_group must be >= 1, got {rows_per_group}")
        self.next_id = first_chunk_id
        self.row_groups = 0
        self.bytes = 0
        self.file_bytes = 0
        #: Pixel bytes after which the current file is full (None: no limit); a batch ends there.
        self.max_file_bytes: int | None = None
        self._index: list[pa.Table] = []
        self._index_files: list[str] = []
        #: Page ranges of each chunks file written (by name), recorded in the index (see ``page_reads``).
        self.pages: dict[str, PageRanges] = {}
        #: What the manifest records of each such file (codec, size).
        self.page_files: dict[str, dict[str, Any]] = {}
        self._grid: tuple[tuple[tuple[int, ...], tuple[int, ...]], ChunkTable] | None = None
        self._schema = CHUNKS_SCHEMA.with_metadata(FILE_METADATA)

    def start(self, fragment: str) -> None:
        """Index the tables packed from now on as rows of a new chunks file called ``fragment``."""
        self.fragment = fragment
        self.row_groups = 0
        self.file_bytes = 0
        self._open = None

    def _chunks(self, meta: ImageMeta) -> tuple[tuple[int, int, int, int, int], ChunkTable]:
        """The chunk shape and grid of ``meta`` (the last grid is reused: plates repeat one shape)."""
        chunk = normalize_chunk_shape(self.chunk_shape, meta.sizes)
        key = (tuple(meta.sizes[a] for a in "TCZYX"), chunk)
        if self._grid is None or self._grid[0] != key:
            self._grid = (key, ChunkTable.regular(meta.sizes, chunk))
        return chunk, self._grid[1]

    def add(self, image_id: str, meta: ImageMeta, read: BandReader) -> tuple[dict[str, Any], Iterator[Piece]]:
        """One image: its images.parquet row (core columns) and its packed pieces, made as they are pulled."""
        chunk, table = self._chunks(meta)
        return image_row(meta, image_id, chunk, self.codec), self._pieces(image_id, meta, read, table)

    def _pieces(self, image_id: str, meta: ImageMeta, read: BandReader, table: ChunkTable) -> Iterator[Piece]:
        if meta.nbytes <= BAND_BYTES:
            bands = [(0, len(table))]
        else:  # runs of chunks sharing their (t, c, z) origin: one band of planes each
            key = table.origin[:, :3]
            cut = np.nonzero(np.any(key[1:] != key[:-1], axis=1))[0] + 1
            edges = [0, *cut.tolist(), len(table)]
            bands = list(itertools.pairwise(edges))
        full = Selection.full(meta.sizes)
        for a, b in bands:
            if (a, b) == (0, len(table)):
                sel, base = full, np.zeros(5, dtype=np.int64)
            else:
                (t, c, z), (st, sc, sz) = table.origin[a, :3], table.shape[a, :3]
                sel = Selection(t=range(t, t + st), z=range(z, z + sz), c=range(c, c + sc), y=full.y, x=full.x)
                base = np.array([t, c, z, 0, 0], dtype=np.int64)
            pixels = np.asarray(read(sel))
            if pixels.shape != sel.shape or pixels.dtype != meta.dtype:
                raise SchemaError(
                    f"image {image_id!r}: read {pixels.shape} {pixels.dtype} for a selection of "
                    f"{sel.shape} {meta.dtype}; the image's metadata and pixels disagree"
                )
            local = ChunkTable(table.origin[a:b] - base, table.shape[a:b])
            payload, nbytes, sums = chunk_payload(pixels, local)
            del pixels
            self.bytes += nbytes
            small = self.share and len(table) == 1 and nbytes <= SMALL_IMAGE_BYTES
            yield Piece(image_id, meta.dtype.name, table.origin[a:b], table.shape[a:b], payload, nbytes, sums, small)

    def tables(self, pieces: Iterable[Piece]) -> Iterator[pa.Table]:
        """Chunk tables of ``pieces``, packed a batch (:data:`BATCH_BYTES`, :data:`BATCH_PIECES`) at a time.

        A batch ends before a piece that would take it past :data:`BATCH_BYTES`, once it holds
        :data:`BATCH_BYTES` or :data:`BATCH_PIECES`, and where the current file reaches
        ``max_file_bytes``; but never inside a shared row group: a batch holding an open one
        ends before the next piece that does not join it (memory: one batch, one group more).
        """
        batch: list[tuple[Piece, bool]] = []
        size = 0
        due = False  # the batch is full, but ends only where its open shared row group does
        for piece in pieces:
            fresh = self._opens_group(piece)
            if batch and fresh and (due or size + piece.nbytes > BATCH_BYTES):
                yield from self._pack(batch)
                batch, size = [], 0
            batch.append((piece, fresh))
            size += piece.nbytes
            full = self.max_file_bytes is not None and self.file_bytes + size >= self.max_file_bytes
            due = size >= BATCH_BYTES or len(batch) >= BATCH_PIECES or full
            if due and not self._group_open():
                yield from self._pack(batch)
                batch, size, due = [], 0, False
        if batch:
            yield from self._pack(batch)

    def _group_open(self) -> bool:
        """Whether the last shared row group may still take another small image."""
        return self._open is not None and self._open[0] < GROUP_IMAGES and self._open[1] < GROUP_BYTES

    def _opens_group(self, piece: Piece) -> bool:
        """Whether ``piece`` starts a fresh row group (else it joins the open shared one); tracks the open group.

        A small image joins the open group unless that holds :data:`GROUP_IMAGES` images or would
        pass :data:`GROUP_BYTES`, or the image starts a row group of the images table.
        """
        first = piece.image_id != self._last  # an image's first piece (bands of one image follow each other)
        self._last = piece.image_id
        number = self._images
        self._images += first
        if not piece.small:
            self._open = None
            return True
        images, size = self._open or (GROUP_IMAGES, GROUP_BYTES)
        aligned = number % self.images_per_group == 0
        if not aligned and images < GROUP_IMAGES and size + piece.nbytes <= GROUP_BYTES:
            self._open = (images + 1, size + piece.nbytes)
            return False
        self._open = (1, piece.nbytes)
        return True

    def _pack(self, batch: list[tuple[Piece, bool]]) -> Iterator[pa.Table]:
        """One batch as chunk tables, its index rows recorded: one table per row group when sharing (see
        :meth:`tables`), else the batch (chunk stores, with ``rows_per_group=1``: one group per row)."""
        pieces = [p for p, _ in batch]
        counts = np.array([len(p.origin) for p in pieces], dtype=np.int64)
        total = int(counts.sum())
        if total == 0:
            return
        first, k = self.next_id, self.rows_per_group
        owner = np.repeat(np.arange(len(pieces)), counts)
        starts = np.zeros(len(pieces), dtype=np.int64)
        np.cumsum(counts[:-1], out=starts[1:])
        # each piece's first row group and its first row in it: a fresh piece starts a group, a joining one
        # continues the shared group of the piece before it
        group0 = np.zeros(len(pieces), dtype=np.int64)
        row0 = np.zeros(len(pieces), dtype=np.int64)
        shared = np.zeros(len(pieces), dtype=bool)
        nxt = self.row_groups
        for i, (p, fresh) in enumerate(batch):
            shared[i] = p.small
            if fresh or i == 0:
                group0[i], row0[i] = nxt, 0
                nxt += 1 if p.small else -(-int(counts[i]) // k)
            else:
                group0[i], row0[i] = group0[i - 1], row0[i - 1] + counts[i - 1]
        local = np.arange(total, dtype=np.int64) - starts[owner]
        within = np.where(shared[owner], row0[owner] + local, local % k)
        group = np.where(shared[owner], group0[owner], group0[owner] + local // k)
        origin = np.concatenate([p.origin for p in pieces]).astype(np.int32)
        shape = np.concatenate([p.shape for p in pieces]).astype(np.int32)
        take = pa.array(owner)
        image_id = pa.array([p.image_id for p in pieces], pa.string()).take(take)
        chunk_id = pa.array(np.arange(first, first + total, dtype=np.int64))
        coords = [pa.array(origin[:, j]) for j in range(5)]
        shapes = [pa.array(shape[:, j]) for j in range(5)]
        dtype = pa.array([p.dtype for p in pieces], pa.string()).take(take)
        pixels = pa.chunked_array([p.payload for p in pieces], pa.large_binary())
        chunks = pa.Table.from_arrays([image_id, chunk_id, *coords, *shapes, dtype, pixels], schema=self._schema)
        self._index.append(
            pa.Table.from_arrays(
                [
                    image_id,
                    chunk_id,
                    pa.array(group.astype(np.int32)),
                    pa.array(within.astype(np.int32)),
                    pa.array([self.fragment] * total, pa.string()),
                    *coords,
                    *shapes,
                    pa.array(np.concatenate([p.checksum for p in pieces])),
                ],
                schema=INDEX_SCHEMA,
            )
        )
        self._index_files.append(self.fragment)
        self.row_groups = nxt
        self.next_id += total
        self.file_bytes += sum(p.nbytes for p in pieces)
        if not self.share:
            yield chunks
            return
        edges = [0, *(np.flatnonzero(np.diff(group)) + 1).tolist(), total]
        run = 0  # the first of the one-row groups not yet yielded: a run of them goes out as one marked table
        for a, b in itertools.pairwise(edges):
            if b - a == 1:
                continue
            yield from _one_row_groups(chunks, run, a)
            yield chunks.slice(a, b - a)
            run = b
        yield from _one_row_groups(chunks, run, total)

    def index(self) -> pa.Table:
        """The index rows of everything packed so far, with the page range of each chunk where known."""
        tables = []
        for name, table in zip(self._index_files, self._index):
            cols = range_columns(int_values(table.column("row_group_id")).astype(np.int64), self.pages.get(name))
            for f, col in zip(RANGE_FIELDS, cols):
                table = table.append_column(f, col)
            tables.append(table)
        return pa.concat_tables(tables) if tables else pa.schema([*INDEX_SCHEMA, *RANGE_FIELDS]).empty_table()


def _one_row_groups(chunks: pa.Table, a: int, b: int) -> Iterator[pa.Table]:
    """Rows ``a..b`` of ``chunks``, each its own row group: one table (marked where it holds several), or none."""
    if b - a > 1:
        yield one_group_per_row(chunks.slice(a, b - a))
    elif b - a == 1:
        yield chunks.slice(a, 1)


def packed_tables(
    fw: ChunkPacker,
    items: Iterable[StreamItem],
    taken: set[str],
    start: int,
    on_image: Callable[[str, int], None] | None,
    rows: ImageRowBatches,
) -> Iterator[pa.Table]:
    """The chunk tables of ``items``, in order; each image's images-table row goes to ``rows`` once it is packed."""
    return fw.tables(_image_pieces(fw, items, taken, start, on_image, rows))


def _image_pieces(
    fw: ChunkPacker,
    items: Iterable[StreamItem],
    taken: set[str],
    start: int,
    on_image: Callable[[str, int], None] | None,
    rows: ImageRowBatches,
) -> Iterator[Piece]:
    n = start
    for image_id, meta, read, more in items:
        if image_id is None:
            while f"image-{n:05d}" in taken:
                n += 1
            image_id = f"image-{n:05d}"
        if image_id in taken:
            raise ArgumentError(f"image id {image_id!r} is already in the dataset; image ids must be unique")
        taken.add(image_id)
        n += 1
        check_metadata_names(more)  # before the image's pixels are read, not once they all are written
        before = fw.bytes
        row, pieces = fw.add(image_id, meta, read)
        yield from pieces
        rows.append(row, more)
        if on_image is not None:
            on_image(image_id, fw.bytes - before)
