"""Writing typed-chunk datasets: whole images, streamed images, appends (atomic)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import fsops
from .atomic import atomic_path, storage_errors
from .arrow_numpy import int_values
from .buffers import arrow_empty
from .checksums import ALGORITHM as CHECKSUM
from .checksums import checksums_of
from .chunks import ChunkTable, normalize_chunk_shape
from .cleanup import recover
from .dataset_format import (
    _KV,
    _LAYOUT,
    CHUNKS_SCHEMA,
    IMAGES_SCHEMA,
    INDEX_SCHEMA,
    MANIFEST,
    is_dataset_dir,
    read_manifest,
)
from .dataset_checks import pending_marker
from .dataset_fragments import (
    DEFAULT_COMPRESSION,
    PARQUET,
    chunk_store,
    format_version_for,
    fragment_codec,
    suffix_of,
    write_fragment,
)
from .dataset_tables import BASE, Part, appends_of, images_schema, max_chunk_id, parts_of, read_images
from .errors import ArgumentError, SchemaError, UnsafeOverwriteError
from .meta import ImageMeta
from .page_reads import MANIFEST_KEY as PAGES_KEY
from .page_reads import RANGE_FIELDS, manifest_entry, range_columns
from .parquet_pages import PageRanges
from .selection import Selection


def _chunk_payload(
    pixels: np.ndarray, table: ChunkTable
) -> tuple[pa.LargeBinaryArray, int, np.ndarray]:
    """All chunks' bytes in one Arrow buffer (one memcpy pass), as a large_binary array, and each chunk's checksum."""
    tczyx = pixels.transpose(0, 2, 1, 3, 4)
    sizes = np.prod(table.shape, axis=1) * pixels.dtype.itemsize
    offsets = np.zeros(len(table) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    data, buf = arrow_empty((int(offsets[-1]),), np.dtype(np.uint8))
    for i in range(len(table)):
        (t, c, z, y, x), (st, sc, sz, sy, sx) = table.origin[i], table.shape[i]
        dst = data[offsets[i] : offsets[i + 1]].view(pixels.dtype).reshape(st, sc, sz, sy, sx)
        np.copyto(dst, tczyx[t : t + st, c : c + sc, z : z + sz, y : y + sy, x : x + sx])
    arr = pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(table), [None, pa.py_buffer(offsets), buf])
    return arr, int(offsets[-1]), checksums_of(data, offsets)


def _image_row(meta: ImageMeta, image_id: str, chunk: Sequence[int], compression: str | None) -> dict[str, Any]:
    chans = [
        {"id": c.id, "name": c.name, "emission_um": c.emission_um, "excitation_um": c.excitation_um,
         "illumination": c.illumination, "color_rgba": c.color_rgba}
        for c in meta.channels
    ]
    row: dict[str, Any] = {
        "image_id": image_id, "name": meta.name, "image_type": meta.image_type,
        "dtype": meta.dtype.name, "layout": "tile", "compression": compression or "none",
        "channels_json": json.dumps(chans), "acquisition_datetime": meta.acquisition_datetime,
    }
    row.update({f"size_{a.lower()}": meta.sizes[a] for a in "TCZYX"})
    row.update({f"chunk_{a}": int(v) for a, v in zip("tczyx", chunk)})
    row.update({f"physical_size_{a.lower()}": float(meta.physical_size.get(a, 1.0)) for a in "XYZ"})
    row.update({f"physical_size_{a.lower()}_unit": meta.physical_unit.get(a, "µm") for a in "XYZ"})
    return row


def _array_reader(pixels: np.ndarray) -> BandReader:
    """A band reader over an in-memory TZCYX array (views where the selection allows)."""
    return lambda sel: sel.apply(pixels)


def write_dataset(
    images: Sequence[tuple[ImageMeta, np.ndarray]],
    out: Path,
    *,
    chunk_shape: Sequence[int] | None = None,
    compression: str | None = DEFAULT_COMPRESSION,
    compression_level: int | None = None,
    rows_per_group: int = 1,
    image_ids: Sequence[str] | None = None,
    chunk_format: str = PARQUET,
) -> Path:
    """Write in-memory (meta, TZCYX pixels) images as a typed-chunk dataset at ``out``, atomically.

    Replaces ``out`` if it exists; the work is :func:`stream_dataset`'s.
    """
    ids = list(image_ids) if image_ids else [m.id if len(images) == 1 else f"image-{i:05d}" for i, (m, _) in enumerate(images)]
    if len(set(ids)) != len(ids):
        raise SchemaError(f"image ids must be unique, got {ids}")
    items: list[StreamItem] = [
        (image_id, meta, _array_reader(np.asarray(pixels)), {})
        for (meta, pixels), image_id in zip(images, ids)
    ]
    return stream_dataset(
        items, out, mode="overwrite", chunk_format=chunk_format, chunk_shape=chunk_shape, compression=compression,
        compression_level=compression_level, rows_per_group=rows_per_group,
    )


# -- streaming writes and appends -----------------------------------------------------------
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


@dataclass(frozen=True)
class _Piece:
    """Packed chunk rows of one image (or one band of it), waiting to be written."""

    image_id: str
    dtype: str
    origin: np.ndarray  # (n, 5) TCZYX
    shape: np.ndarray  # (n, 5)
    payload: pa.LargeBinaryArray
    nbytes: int
    checksum: np.ndarray  # (n,) uint64, of each chunk's bytes


class FragmentWriter:
    """Packs images into the chunk tables of chunks files (fragments of a dataset), one band at a time.

    :meth:`add` returns an image's row and a lazy iterator of its packed pieces (one per band);
    :meth:`tables` batches pieces into chunk tables of up to :data:`BATCH_BYTES`, and whoever
    writes the file (:func:`~.dataset_fragments.write_fragment`) pulls them, so memory stays
    bounded by one image (or, for images over :data:`BAND_BYTES`, one band of planes) plus one
    batch. Each image (or band) starts a fresh row group of at most ``rows_per_group`` rows, as
    if written alone. The index rows of everything packed are returned by :meth:`index`. A
    chunk-store fragment is packed with ``rows_per_group=1``: its ``row_group_id`` is the row
    number. :meth:`start` moves on to another chunks file: the tables packed after it are
    indexed as that file's.
    """

    def __init__(
        self,
        fragment: str,
        *,
        first_chunk_id: int = 0,
        chunk_shape: Sequence[int] | None = None,
        compression: str | None = "lz4",
        rows_per_group: int = 1,
    ) -> None:
        self.codec = None if compression in (None, "none") else compression
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
        self._schema = CHUNKS_SCHEMA.with_metadata(_KV)

    def start(self, fragment: str) -> None:
        """Index the tables packed from now on as rows of a new chunks file called ``fragment``."""
        self.fragment = fragment
        self.row_groups = 0
        self.file_bytes = 0

    def _chunks(self, meta: ImageMeta) -> tuple[tuple[int, int, int, int, int], ChunkTable]:
        """The chunk shape and grid of ``meta`` (the last grid is reused: plates repeat one shape)."""
        chunk = normalize_chunk_shape(self.chunk_shape, meta.sizes)
        key = (tuple(meta.sizes[a] for a in "TCZYX"), chunk)
        if self._grid is None or self._grid[0] != key:
            self._grid = (key, ChunkTable.regular(meta.sizes, chunk))
        return chunk, self._grid[1]

    def add(self, image_id: str, meta: ImageMeta, read: BandReader) -> tuple[dict[str, Any], Iterator[_Piece]]:
        """One image: its images.parquet row (core columns) and its packed pieces, made as they are pulled."""
        chunk, table = self._chunks(meta)
        return _image_row(meta, image_id, chunk, self.codec), self._pieces(image_id, meta, read, table)

    def _pieces(self, image_id: str, meta: ImageMeta, read: BandReader, table: ChunkTable) -> Iterator[_Piece]:
        if meta.nbytes <= BAND_BYTES:
            bands = [(0, len(table))]
        else:  # runs of chunks sharing their (t, c, z) origin: one band of planes each
            key = table.origin[:, :3]
            cut = np.nonzero(np.any(key[1:] != key[:-1], axis=1))[0] + 1
            edges = [0, *cut.tolist(), len(table)]
            bands = list(zip(edges[:-1], edges[1:]))
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
            payload, nbytes, sums = _chunk_payload(pixels, local)
            del pixels
            self.bytes += nbytes
            yield _Piece(image_id, meta.dtype.name, table.origin[a:b], table.shape[a:b], payload, nbytes, sums)

    def tables(self, pieces: Iterable[_Piece]) -> Iterator[pa.Table]:
        """Chunk tables of ``pieces``, packed a batch (:data:`BATCH_BYTES`, :data:`BATCH_PIECES`) at a time.

        Each table starts a fresh row group in its file; a piece that leaves a partial row
        group ends its table, so the next piece starts afresh. A batch also ends where the
        current file reaches ``max_file_bytes``.
        """
        batch: list[_Piece] = []
        size = 0
        for piece in pieces:
            if batch and size + piece.nbytes > BATCH_BYTES:
                yield from self._pack(batch)
                batch, size = [], 0
            batch.append(piece)
            size += piece.nbytes
            full = self.max_file_bytes is not None and self.file_bytes + size >= self.max_file_bytes
            if size >= BATCH_BYTES or len(batch) >= BATCH_PIECES or full:
                yield from self._pack(batch)
                batch, size = [], 0
        if batch:
            yield from self._pack(batch)

    def _pack(self, pieces: list[_Piece]) -> Iterator[pa.Table]:
        """One batch as chunk tables (one per run of whole row groups), its index rows recorded.

        The index rows are those of the current file: with ``rows_per_group=1`` (the only
        value chunk stores, which roll over to new files, take) a batch is one table.
        """
        counts = np.array([len(p.origin) for p in pieces], dtype=np.int64)
        total = int(counts.sum())
        if total == 0:
            return
        first, k = self.next_id, self.rows_per_group
        owner = np.repeat(np.arange(len(pieces)), counts)
        starts = np.zeros(len(pieces), dtype=np.int64)
        np.cumsum(counts[:-1], out=starts[1:])
        groups = -(-counts // k)  # each piece starts a fresh row group
        group0 = self.row_groups + np.cumsum(groups) - groups
        local = np.arange(total, dtype=np.int64) - starts[owner]
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
        self._index.append(pa.Table.from_arrays(
            [image_id, chunk_id, pa.array((group0[owner] + local // k).astype(np.int32)),
             pa.array((local % k).astype(np.int32)), pa.array([self.fragment] * total, pa.string()), *coords, *shapes,
             pa.array(np.concatenate([p.checksum for p in pieces]))],
            schema=INDEX_SCHEMA,
        ))
        self._index_files.append(self.fragment)
        self.row_groups += int(groups.sum())
        self.next_id += total
        self.file_bytes += sum(p.nbytes for p in pieces)
        a = 0
        for i, n in enumerate(counts.tolist()):
            if n % k or i == len(pieces) - 1:
                b = int(starts[i]) + n
                yield chunks.slice(a, b - a)
                a = b

    def index(self) -> pa.Table:
        """The index rows of everything packed so far, with the page range of each chunk where known."""
        tables = []
        for name, table in zip(self._index_files, self._index):
            cols = range_columns(int_values(table.column("row_group_id")).astype(np.int64), self.pages.get(name))
            for f, col in zip(RANGE_FIELDS, cols):
                table = table.append_column(f, col)
            tables.append(table)
        return pa.concat_tables(tables) if tables else pa.schema([*INDEX_SCHEMA, *RANGE_FIELDS]).empty_table()


def _images_table(core: list[dict[str, Any]], extra: list[Mapping[str, Any]], existing: pa.Schema | None) -> pa.Table:
    """An images table: the IMAGES_SCHEMA columns first (the reference reader's), then extra columns.

    ``existing`` (the dataset's columns, for an append) must agree with the new columns: a
    column takes the dataset's type where its values allow, and one of another type is refused.
    """
    table = pa.Table.from_pylist(core, schema=IMAGES_SCHEMA)
    names: list[str] = []
    for row in extra:
        names += [k for k in row if k not in names]
    clash = sorted(set(names) & set(IMAGES_SCHEMA.names))
    if clash:
        raise SchemaError(
            f"metadata columns {clash} collide with the dataset's own columns; rename them "
            f"(reserved: {', '.join(IMAGES_SCHEMA.names)})"
        )
    if names:
        try:
            extras = pa.Table.from_pylist([{k: r.get(k) for k in names} for r in extra])
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise SchemaError(f"metadata values do not form columns of one type each: {exc}") from exc
        for name in names:
            table = table.append_column(name, extras.column(name))
    if existing is not None:
        table = _conform(table, existing)
    order = [n for n in IMAGES_SCHEMA.names if n in table.column_names]
    order += [n for n in table.column_names if n not in order]
    return table.select(order).replace_schema_metadata(_KV)


def _conform(table: pa.Table, existing: pa.Schema) -> pa.Table:
    """``table`` with each column the dataset already has cast to its type where the values allow (else refused)."""
    for i, name in enumerate(table.column_names):
        if name not in existing.names:
            continue
        want = existing.field(name).type
        if table.schema.field(name).type != want and want != pa.null():
            with contextlib.suppress(pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                table = table.set_column(i, pa.field(name, want), table.column(name).cast(want))
    try:
        pa.unify_schemas([existing.remove_metadata(), table.schema.remove_metadata()], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SchemaError(
            f"the new images' metadata columns do not match the dataset's ({existing.remove_metadata()}): {exc}; "
            "pass values of the dataset's column types (or new column names)"
        ) from exc
    return table


def _write_parquet(table: pa.Table, out: Path, **options: Any) -> None:
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp, write_page_checksum=True, **options)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on directory ``path`` (POSIX), so appends, compactions and overwrites
    do not interleave; taken on the directory that is at ``path`` once it is held."""
    with fsops.lock(path):
        yield


def stream_dataset(
    items: Iterable[StreamItem],
    out: Path,
    *,
    mode: str = "create",
    chunk_format: str | None = None,
    chunk_shape: Sequence[int] | None = None,
    compression: str | None = DEFAULT_COMPRESSION,
    compression_level: int | None = None,
    rows_per_group: int = 1,
    images_per_group: int = 1024,
    on_image: Callable[[str, int], None] | None = None,
) -> Path:
    """Write images one at a time into a typed-chunk dataset at ``out``.

    ``mode="create"`` refuses an existing ``out``; ``"overwrite"`` replaces it; both write a
    fresh directory and rename it into place. ``"append"`` adds the images to an existing
    dataset (or creates it) without reading or rewriting its tables: their chunks go to a new
    file ``chunks-NNNNN.parquet`` (named by ``fragment_path`` in the index), their rows to new
    ``images-NNNNN.parquet`` and ``index-NNNNN.parquet``, and then the manifest, which lists
    them, is replaced atomically, so a reader sees the old or the new images, never a mix.
    ``on_image(image_id, nbytes)`` is called after each image.

    ``chunk_format`` is ``"parquet"`` (built in) or a chunk store's format (``"vortex"``);
    None means Parquet for a new dataset and the dataset's own format for an append.
    ``compression="default"`` is lz4 for Parquet and the store's first listed codec otherwise.
    """
    if mode not in ("create", "append", "overwrite"):
        raise ArgumentError(f"mode must be 'create', 'append' or 'overwrite', got {mode!r}")
    recover(out)  # a killed overwrite's old copy goes back first: it is the dataset
    if os.path.lexists(out) and mode == "create":
        raise UnsafeOverwriteError(
            f"{out} exists; pass mode='append' to add images to it or mode='overwrite' to replace it "
            "(only an OME-Arrow dataset holding nothing else is replaced)")
    opts = {"chunk_shape": chunk_shape, "compression": compression, "compression_level": compression_level,
            "rows_per_group": rows_per_group}
    if mode == "append" and out.exists():
        if not is_dataset_dir(out):
            raise SchemaError(f"cannot append to {out}: it is not an OME-Arrow dataset directory")
        with storage_errors(out), _locked(out):
            return _append(items, out, chunk_format, opts, images_per_group, on_image)
    fmt = chunk_format or PARQUET
    codec = fragment_codec(fmt, compression, compression_level, rows_per_group)
    name = "chunks" + suffix_of(fmt)
    with atomic_path(out, directory=True, replace=mode == "overwrite") as tmp:
        fw = FragmentWriter(name, chunk_shape=chunk_shape, compression=codec, rows_per_group=rows_per_group)
        core: list[dict[str, Any]] = []
        extra: list[Mapping[str, Any]] = []
        names = _fragment_names(set(), suffix_of(fmt), first=name)
        written = _write_fragments(_stream(fw, items, set(), 0, on_image, core, extra), fw, names, fmt,
                                   lambda n: contextlib.nullcontext(tmp / n), compression=codec,
                                   compression_level=compression_level, rows_per_group=rows_per_group)
        if not written:  # no images: an empty chunks file, so the dataset is still complete
            write_fragment([], tmp / name, fmt, compression=codec, compression_level=compression_level,
                           rows_per_group=rows_per_group)
        _write_tables(tmp, core, extra, fw.index(), images_per_group)
        _write_manifest(tmp, {}, core, fw, written or [name], rows_per_group, fmt, len(core))
    return out


def _fragment_names(used: set[str], suffix: str, first: str | None = None) -> Iterator[str]:
    """Names for new chunks files: ``first`` if given, then ``chunks-NNNNN<suffix>`` with NNNNN not in ``used``."""
    if first is not None:
        yield first
    taken = {Path(n).name.split(".", 1)[0] for n in [*used, *([first] if first else [])]}
    k = 1
    while True:
        if f"chunks-{k:05d}" not in taken:
            yield f"chunks-{k:05d}{suffix}"
        k += 1


def _write_fragments(tables: Iterator[pa.Table], fw: FragmentWriter, names: Iterator[str], chunk_format: str,
                     place: Callable[[str], contextlib.AbstractContextManager[Path]], **options: Any) -> list[str]:
    """Write ``tables`` into chunks files named from ``names``; returns the names written.

    A chunk store with ``max_file_bytes`` gets a new file once a file holds that many pixel
    bytes (its writer's memory grows with the file); Parquet gets one file. ``place(name)``
    gives the path to write each file to.
    """
    limit = None if chunk_format == PARQUET else chunk_store(chunk_format).max_file_bytes
    fw.max_file_bytes = limit
    written: list[str] = []
    done = False
    while not done:
        name = next(names)
        fw.start(name)
        first = next(tables, None)
        if first is None:
            break
        done = True

        def until_full(head: pa.Table = first) -> Iterator[pa.Table]:
            nonlocal done
            yield head
            while limit is None or fw.file_bytes < limit:
                table = next(tables, None)
                if table is None:
                    return
                yield table
            done = False

        with place(name) as path:
            ranges = write_fragment(until_full(), path, chunk_format, **options)
        if ranges is not None:
            fw.pages[name] = ranges
            fw.page_files[name] = manifest_entry(ranges)
        written.append(name)
    return written


def _stream(fw: FragmentWriter, items: Iterable[StreamItem], taken: set[str], start: int,
            on_image: Callable[[str, int], None] | None, core: list[dict[str, Any]],
            extra: list[Mapping[str, Any]]) -> Iterator[pa.Table]:
    """The chunk tables of ``items``, in order; each image's rows go to ``core`` and ``extra`` once it is packed."""
    return fw.tables(_image_pieces(fw, items, taken, start, on_image, core, extra))


def _image_pieces(fw: FragmentWriter, items: Iterable[StreamItem], taken: set[str], start: int,
            on_image: Callable[[str, int], None] | None, core: list[dict[str, Any]],
            extra: list[Mapping[str, Any]]) -> Iterator[_Piece]:
    n = start
    for image_id, meta, read, more in items:
        if image_id is None:
            while f"image-{n:05d}" in taken:
                n += 1
            image_id = f"image-{n:05d}"
        if image_id in taken:
            raise SchemaError(f"image id {image_id!r} is already in the dataset; image ids must be unique")
        taken.add(image_id)
        n += 1
        before = fw.bytes
        row, pieces = fw.add(image_id, meta, read)
        yield from pieces
        core.append(row)
        extra.append(dict(more))
        if on_image is not None:
            on_image(image_id, fw.bytes - before)


def _write_tables(root: Path, core: list[dict[str, Any]], extra: list[Mapping[str, Any]], index: pa.Table,
                  images_per_group: int, part: Part = BASE, existing: pa.Schema | None = None) -> None:
    """Write the images and index tables of ``part`` (index first: no image is listed without its chunks)."""
    images = _images_table(core, extra, existing)
    _write_parquet(index.replace_schema_metadata(_KV), root / part.index)
    _write_parquet(images, root / part.images, row_group_size=max(1, images_per_group))


def _write_manifest(root: Path, previous: dict[str, Any], core: list[dict[str, Any]], fw: FragmentWriter,
                    fragments: list[str], rows_per_group: int, chunk_format: str, image_count: int,
                    appends: Sequence[Part] = ()) -> None:
    """Replace the manifest (atomically: this commits a write): counts, chunk files and append tables."""
    manifest = dict(previous) or {"type": "ome.arrow", "version": "0.1.0", "layout": _LAYOUT}
    manifest["image_count"] = image_count
    manifest["chunk_count"] = fw.next_id
    if "choice" not in manifest and core:
        first = core[0]
        manifest["choice"] = {"layout": "tile", "chunk_shape": [first[f"chunk_{a}"] for a in "tczyx"],
                              "compression": fw.codec, "rationale": "ome-arrow-core default: see docs/format.md"}
    ours = dict(manifest.get("ome_arrow_core") or {})
    ours.update({"format_version": format_version_for(fragments, len(appends)), "checksum": CHECKSUM,
                 "rows_per_group": ours.get("rows_per_group", rows_per_group),
                 "chunk_format": ours.get("chunk_format", chunk_format), "fragments": fragments})
    pages = {**(ours.get(PAGES_KEY) or {}), **{n: e for n, e in fw.page_files.items() if n in fragments}}
    if pages:
        ours[PAGES_KEY] = pages
    ours.pop("appends", None)
    if appends:
        ours["appends"] = [p.to_json() for p in appends]
    manifest["ome_arrow_core"] = ours
    with atomic_path(root / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2))


def _append(items: Iterable[StreamItem], out: Path, chunk_format: str | None, opts: dict[str, Any],
            images_per_group: int, on_image: Callable[[str, int], None] | None) -> Path:
    """Add ``items`` to the dataset at ``out``: new chunk, images and index files, then the manifest.

    Reads only the old tables' footers and image ids, never their rows: an append costs the new images.
    """
    previous = read_manifest(out)
    ours = previous.get("ome_arrow_core") or {}
    fmt = chunk_format or str(ours.get("chunk_format") or PARQUET)
    codec = fragment_codec(fmt, opts["compression"], opts["compression_level"], opts["rows_per_group"])
    parts = parts_of(out, previous)
    ids = read_images(out, parts, ["image_id"])[0].column("image_id").to_pylist()
    fragments = [str(f) for f in ours["fragments"]] if "fragments" in ours else _indexed_fragments(out)
    k = _append_number(out, fragments, parts)
    part = Part(f"images-{k:05d}.parquet", f"index-{k:05d}.parquet")
    names = _fragment_names({*fragments, *(p.name for p in out.iterdir())}, suffix_of(fmt),
                            first=f"chunks-{k:05d}{suffix_of(fmt)}")
    fw = FragmentWriter("", first_chunk_id=max_chunk_id(out, parts) + 1, chunk_shape=opts["chunk_shape"],
                        compression=codec, rows_per_group=opts["rows_per_group"])
    core: list[dict[str, Any]] = []
    extra: list[Mapping[str, Any]] = []
    tables = _stream(fw, items, set(ids), len(ids), on_image, core, extra)
    new: list[str] = []

    def place(name: str) -> contextlib.AbstractContextManager[Path]:
        new.append(name)
        return atomic_path(out / name)

    marker = out / pending_marker(k)  # unlisted files of this append are a killed append's, not a lost manifest's
    try:
        marker.touch()
        written = _write_fragments(tables, fw, names, fmt, place, compression=codec,
                                   compression_level=opts["compression_level"], rows_per_group=opts["rows_per_group"])
        if not core:
            return out
        new += [part.index, part.images]
        _write_tables(out, core, extra, fw.index(), images_per_group, part, images_schema(out, parts))
        _write_manifest(out, previous, core, fw, sorted({*fragments, *written}), int(opts["rows_per_group"]), fmt,
                        len(ids) + len(core), [*parts[1:], part])
    except BaseException:
        if not _committed(out, part):  # once the manifest lists them, the append has happened
            for name in reversed(new):  # images first: an append without its images table is plainly dead
                with contextlib.suppress(OSError):
                    (out / name).unlink(missing_ok=True)
        raise
    finally:  # the marker stays while files of an append that did not commit are left (removing them failed)
        if not any((out / name).exists() for name in new) or _committed(out, part):
            marker.unlink(missing_ok=True)
    return out


def _committed(root: Path, part: Part) -> bool:
    """True when the manifest on disk lists ``part`` (or cannot be read: then nothing is removed)."""
    try:
        return part in appends_of(read_manifest(root))
    except Exception:  # noqa: BLE001 - unknown: keep the files
        return True


def _indexed_fragments(root: Path) -> list[str]:
    """The chunk files the base index names (a dataset whose manifest does not list them: ome-arrow 0.1.0's)."""
    if not (root / BASE.index).exists():
        return ["chunks.parquet"]
    if "fragment_path" not in pq.read_schema(root / BASE.index).names:
        return ["chunks.parquet"]
    column = pq.read_table(root / BASE.index, columns=["fragment_path"]).column("fragment_path")
    return sorted({str(v or "chunks.parquet") for v in column.unique().to_pylist()})


def _append_number(root: Path, fragments: Iterable[str], parts: Iterable[Part]) -> int:
    """The first NNNNN that no ``chunks-``, ``images-`` or ``index-`` file uses, listed or left on disk."""
    used = {*fragments, *(p.name for p in root.iterdir()), *(n for p in parts for n in (p.images, p.index))}
    stems = {Path(n).name.split(".", 1)[0] for n in used}
    k = 1
    while any(f"{kind}-{k:05d}" in stems for kind in ("chunks", "images", "index")):
        k += 1
    return k
