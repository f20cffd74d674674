"""The typed-chunk Parquet dataset: a directory of images.parquet, chunks.parquet, index.parquet.

This is the public OME-Arrow dataset layout (``layout: typed-chunk-dataset``) that
``ome-arrow`` 0.1.0 writes and reads; ome-arrow-core writes it as its native format and adds
physical sizes and a format version of its own (see docs/format.md). One chunk per row,
raw little-endian C-order TCZYX bytes in ``pixel_bytes``; ``index.parquet`` maps each chunk
to its row group so a reader fetches only the row groups a selection needs.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .atomic import atomic_path
from .buffers import arrow_empty, view_buffer
from .chunks import ChunkTable, normalize_chunk_shape
from .errors import FormatVersionError, SchemaError
from .meta import Channel, ImageMeta
from .selection import Selection

__all__ = [
    "MANIFEST",
    "FORMAT_VERSION",
    "is_dataset_dir",
    "write_dataset",
    "DatasetSource",
    "IMAGES_SCHEMA",
    "CHUNKS_SCHEMA",
    "INDEX_SCHEMA",
    "read_many",
    "read_index",
    "read_rows",
    "stream_dataset",
    "FragmentWriter",
]

MANIFEST: Final[str] = "_ome_arrow_dataset.json"
#: Version of ome-arrow-core's additions; readers refuse newer major versions.
FORMAT_VERSION: Final[int] = 1
_LAYOUT: Final[str] = "typed-chunk-dataset"
_KV: Final[dict[bytes, bytes]] = {
    b"ome.arrow.type": b"ome.arrow",
    b"ome.arrow.version": b"0.1.0",
    b"ome.arrow.layout": _LAYOUT.encode(),
}
_I32 = pa.int32()
_COORDS = [(a, _I32) for a in ("t", "c", "z", "y", "x")]
_SHAPES = [(f"shape_{a}", _I32) for a in ("t", "c", "z", "y", "x")]

IMAGES_SCHEMA: Final = pa.schema(
    [("image_id", pa.string()), ("name", pa.string()), ("image_type", pa.string()), ("dtype", pa.string()),
     *[(f"size_{a}", _I32) for a in ("t", "c", "z", "y", "x")], ("layout", pa.string()),
     *[(f"chunk_{a}", _I32) for a in ("t", "c", "z", "y", "x")], ("compression", pa.string()),
     ("channels_json", pa.string()),
     # ome-arrow-core additions (ignored by readers that do not know them)
     *[(f"physical_size_{a}", pa.float64()) for a in "xyz"],
     *[(f"physical_size_{a}_unit", pa.string()) for a in "xyz"],
     ("acquisition_datetime", pa.string())]
)
CHUNKS_SCHEMA: Final = pa.schema(
    [("image_id", pa.string()), ("chunk_id", pa.int64()), *_COORDS, *_SHAPES, ("dtype", pa.string()),
     ("pixel_bytes", pa.large_binary())]
)
INDEX_SCHEMA: Final = pa.schema(
    [("image_id", pa.string()), ("chunk_id", pa.int64()), ("row_group_id", _I32),
     ("row_index_in_group", _I32), ("fragment_path", pa.string()), *_COORDS, *_SHAPES]
)


def is_dataset_dir(path: Path) -> bool:
    """True for a directory holding a typed-chunk dataset."""
    return path.is_dir() and ((path / MANIFEST).exists() or (path / "chunks.parquet").exists())


# -- writing -----------------------------------------------------------------------------
def _chunk_payload(
    pixels: np.ndarray, table: ChunkTable
) -> tuple[pa.LargeBinaryArray, int]:
    """All chunks' bytes in one Arrow buffer (one memcpy pass), as a large_binary array."""
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
    return arr, int(offsets[-1])


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


def write_dataset(
    images: Sequence[tuple[ImageMeta, np.ndarray]],
    out: Path,
    *,
    chunk_shape: Sequence[int] | None = None,
    compression: str | None = "lz4",
    compression_level: int | None = None,
    rows_per_group: int = 1,
    image_ids: Sequence[str] | None = None,
) -> Path:
    """Write (meta, TZCYX pixels) images as a typed-chunk dataset directory at ``out``, atomically."""
    codec = None if compression in (None, "none") else compression
    ids = list(image_ids) if image_ids else [m.id if len(images) == 1 else f"image-{i:05d}" for i, (m, _) in enumerate(images)]
    if len(set(ids)) != len(ids):
        raise SchemaError(f"image ids must be unique, got {ids}")
    with atomic_path(out, directory=True) as tmp:
        image_rows, index_parts = [], []
        writer: pq.ParquetWriter | None = None
        next_id, n_rows = 0, 0
        try:
            for (meta, pixels), image_id in zip(images, ids):
                chunk = normalize_chunk_shape(chunk_shape, meta.sizes)
                table = ChunkTable.regular(meta.sizes, chunk)
                payload, _ = _chunk_payload(np.asarray(pixels), table)
                n = len(table)
                cols: dict[str, Any] = {
                    "image_id": pa.array([image_id] * n, pa.string()),
                    "chunk_id": pa.array(np.arange(next_id, next_id + n, dtype=np.int64)),
                }
                for k, a in enumerate("tczyx"):
                    cols[a] = pa.array(table.origin[:, k].astype(np.int32))
                for k, a in enumerate("tczyx"):
                    cols[f"shape_{a}"] = pa.array(table.shape[:, k].astype(np.int32))
                cols["dtype"] = pa.array([meta.dtype.name] * n, pa.string())
                cols["pixel_bytes"] = payload
                chunk_tab = pa.table(cols, schema=CHUNKS_SCHEMA.with_metadata(_KV))
                if writer is None:
                    writer = pq.ParquetWriter(
                        tmp / "chunks.parquet", CHUNKS_SCHEMA.with_metadata(_KV), compression=codec or "none",
                        compression_level=compression_level if codec else None, use_dictionary=["image_id", "dtype"],
                        write_statistics=[c for c in CHUNKS_SCHEMA.names if c != "pixel_bytes"],
                        data_page_size=1 << 20,
                    )
                writer.write_table(chunk_tab, row_group_size=rows_per_group)
                rows = np.arange(n_rows, n_rows + n)
                idx = {k: v for k, v in cols.items() if k not in ("dtype", "pixel_bytes")}
                idx["row_group_id"] = pa.array((rows // rows_per_group).astype(np.int32))
                idx["row_index_in_group"] = pa.array((rows % rows_per_group).astype(np.int32))
                idx["fragment_path"] = pa.array(["chunks.parquet"] * n, pa.string())
                index_parts.append(pa.table(idx).select(INDEX_SCHEMA.names).cast(INDEX_SCHEMA))
                image_rows.append(_image_row(meta, image_id, chunk, codec))
                next_id += n
                n_rows += n + (-n % rows_per_group)  # each image starts a fresh row group
        finally:
            if writer is not None:
                writer.close()
        pq.write_table(pa.Table.from_pylist(image_rows, schema=IMAGES_SCHEMA.with_metadata(_KV)), tmp / "images.parquet")
        pq.write_table(pa.concat_tables(index_parts).replace_schema_metadata(_KV), tmp / "index.parquet")
        first = image_rows[0]
        manifest = {
            "type": "ome.arrow", "version": "0.1.0", "layout": _LAYOUT,
            "image_count": len(image_rows), "chunk_count": next_id,
            "choice": {"layout": "tile", "chunk_shape": [first[f"chunk_{a}"] for a in "tczyx"],
                       "compression": codec, "rationale": "ome-arrow-core default: see docs/format.md"},
            "ome_arrow_core": {"format_version": FORMAT_VERSION, "rows_per_group": rows_per_group},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return out


# -- streaming writes and appends -----------------------------------------------------------
#: Reads a selection (absolute TZCYX storage indices) of one image being written.
BandReader = Callable[[Selection], np.ndarray]
#: One image to stream: (image_id or None for the next free ``image-NNNNN``, meta, reader, extra columns).
StreamItem = tuple["str | None", ImageMeta, BandReader, Mapping[str, Any]]
#: Images up to this many bytes are read whole; larger ones one band of chunks (t, c, z) at a time.
BAND_BYTES = 64 << 20


class FragmentWriter:
    """Streams images into one chunks file (a fragment of a dataset), one band at a time.

    Memory stays bounded by one image (or, for images over :data:`BAND_BYTES`, one band of
    planes): pixels are read, packed into chunk rows and written before the next band.
    """

    def __init__(
        self,
        file: Path,
        fragment: str,
        *,
        first_chunk_id: int = 0,
        chunk_shape: Sequence[int] | None = None,
        compression: str | None = "lz4",
        compression_level: int | None = None,
        rows_per_group: int = 1,
    ) -> None:
        self.codec = None if compression in (None, "none") else compression
        self.fragment = fragment
        self.chunk_shape = chunk_shape
        self.rows_per_group = int(rows_per_group)
        if self.rows_per_group < 1:
            raise SchemaError(f"rows_per_group must be >= 1, got {rows_per_group}")
        self.next_id = first_chunk_id
        self.row_groups = 0
        self.bytes = 0
        self._index: list[pa.Table] = []
        self._writer = pq.ParquetWriter(
            file, CHUNKS_SCHEMA.with_metadata(_KV), compression=self.codec or "none",
            compression_level=compression_level if self.codec else None, use_dictionary=["image_id", "dtype"],
            write_statistics=[c for c in CHUNKS_SCHEMA.names if c != "pixel_bytes"], data_page_size=1 << 20,
        )

    def add(self, image_id: str, meta: ImageMeta, read: BandReader) -> dict[str, Any]:
        """Write one image's chunks; returns its images.parquet row (core columns)."""
        chunk = normalize_chunk_shape(self.chunk_shape, meta.sizes)
        table = ChunkTable.regular(meta.sizes, chunk)
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
            payload, nbytes = _chunk_payload(pixels, local)
            self._write(image_id, meta, table.origin[a:b], table.shape[a:b], payload)
            self.bytes += nbytes
        return _image_row(meta, image_id, chunk, self.codec)

    def _write(self, image_id: str, meta: ImageMeta, origin: np.ndarray, shape: np.ndarray, payload: pa.Array) -> None:
        n = len(origin)
        cols: dict[str, Any] = {
            "image_id": pa.array([image_id] * n, pa.string()),
            "chunk_id": pa.array(np.arange(self.next_id, self.next_id + n, dtype=np.int64)),
        }
        for k, a in enumerate("tczyx"):
            cols[a] = pa.array(origin[:, k].astype(np.int32))
        for k, a in enumerate("tczyx"):
            cols[f"shape_{a}"] = pa.array(shape[:, k].astype(np.int32))
        cols["dtype"] = pa.array([meta.dtype.name] * n, pa.string())
        cols["pixel_bytes"] = payload
        self._writer.write_table(pa.table(cols, schema=CHUNKS_SCHEMA.with_metadata(_KV)), row_group_size=self.rows_per_group)
        local = np.arange(n)
        idx = {k: v for k, v in cols.items() if k not in ("dtype", "pixel_bytes")}
        idx["row_group_id"] = pa.array((self.row_groups + local // self.rows_per_group).astype(np.int32))
        idx["row_index_in_group"] = pa.array((local % self.rows_per_group).astype(np.int32))
        idx["fragment_path"] = pa.array([self.fragment] * n, pa.string())
        self._index.append(pa.table(idx).select(INDEX_SCHEMA.names).cast(INDEX_SCHEMA))
        self.row_groups += -(-n // self.rows_per_group)  # each write starts a fresh row group
        self.next_id += n

    def close(self) -> pa.Table:
        """Finish the file; returns the index rows of everything written."""
        self._writer.close()
        return pa.concat_tables(self._index) if self._index else INDEX_SCHEMA.empty_table()


def _images_table(core: list[dict[str, Any]], extra: list[Mapping[str, Any]], old: pa.Table | None,
                  images_per_group: int) -> pa.Table:
    """images.parquet: the IMAGES_SCHEMA columns first (the reference reader's), then extra columns."""
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
    if old is not None:
        try:
            table = pa.concat_tables([old.replace_schema_metadata(None), table], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise SchemaError(
                f"the new images' metadata columns do not match the dataset's ({old.schema}): {exc}"
            ) from exc
    order = [n for n in IMAGES_SCHEMA.names if n in table.column_names]
    order += [n for n in table.column_names if n not in order]
    return table.select(order).replace_schema_metadata(_KV)


def _write_parquet(table: pa.Table, out: Path, **options: Any) -> None:
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp, **options)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on directory ``path`` (POSIX), so appends do not interleave."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def stream_dataset(
    items: Iterable[StreamItem],
    out: Path,
    *,
    mode: str = "create",
    chunk_shape: Sequence[int] | None = None,
    compression: str | None = "lz4",
    compression_level: int | None = None,
    rows_per_group: int = 1,
    images_per_group: int = 1024,
    on_image: Callable[[str, int], None] | None = None,
) -> Path:
    """Write images one at a time into a typed-chunk dataset at ``out``.

    ``mode="create"`` refuses an existing ``out``; ``"overwrite"`` replaces it; both write a
    fresh directory and rename it into place. ``"append"`` adds the images to an existing
    dataset (or creates it): their chunks go to a new file ``chunks-NNNNN.parquet`` (named by
    ``fragment_path`` in index.parquet), then index.parquet, images.parquet and the manifest
    are each replaced atomically, in that order, so a reader sees the old or the new images,
    never a mix. ``on_image(image_id, nbytes)`` is called after each image.
    """
    if mode not in ("create", "append", "overwrite"):
        raise SchemaError(f"mode must be 'create', 'append' or 'overwrite', got {mode!r}")
    if out.exists() and mode == "create":
        raise FileExistsError(f"{out} exists; pass mode='append' to add images to it or mode='overwrite' to replace it")
    opts = {"chunk_shape": chunk_shape, "compression": compression, "compression_level": compression_level,
            "rows_per_group": rows_per_group}
    if mode == "append" and out.exists():
        if not is_dataset_dir(out):
            raise SchemaError(f"cannot append to {out}: it is not an OME-Arrow dataset directory")
        with _locked(out):
            return _append(items, out, opts, images_per_group, on_image)
    with atomic_path(out, directory=True) as tmp:
        fw = FragmentWriter(tmp / "chunks.parquet", "chunks.parquet", **opts)  # type: ignore[arg-type]
        try:
            core, extra = _stream(fw, items, set(), 0, on_image)
        finally:
            index = fw.close()
        _write_tables(tmp, core, extra, None, index, images_per_group)
        _write_manifest(tmp, {}, core, fw, ["chunks.parquet"], rows_per_group)
    return out


def _stream(fw: FragmentWriter, items: Iterable[StreamItem], taken: set[str], start: int,
            on_image: Callable[[str, int], None] | None) -> tuple[list[dict[str, Any]], list[Mapping[str, Any]]]:
    core: list[dict[str, Any]] = []
    extra: list[Mapping[str, Any]] = []
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
        core.append(fw.add(image_id, meta, read))
        extra.append(dict(more))
        if on_image is not None:
            on_image(image_id, fw.bytes - before)
    return core, extra


def _write_tables(root: Path, core: list[dict[str, Any]], extra: list[Mapping[str, Any]], old_images: pa.Table | None,
                  index: pa.Table, images_per_group: int) -> None:
    images = _images_table(core, extra, old_images, images_per_group)
    # index first, images second: a reader (which reads images, then index) never sees an image without chunks
    _write_parquet(index.replace_schema_metadata(_KV), root / "index.parquet")
    _write_parquet(images, root / "images.parquet", row_group_size=max(1, images_per_group))


def _write_manifest(root: Path, previous: dict[str, Any], core: list[dict[str, Any]], fw: FragmentWriter,
                    fragments: list[str], rows_per_group: int) -> None:
    manifest = dict(previous) or {"type": "ome.arrow", "version": "0.1.0", "layout": _LAYOUT}
    images = pq.read_metadata(root / "images.parquet").num_rows
    manifest["image_count"] = images
    manifest["chunk_count"] = fw.next_id
    if "choice" not in manifest and core:
        first = core[0]
        manifest["choice"] = {"layout": "tile", "chunk_shape": [first[f"chunk_{a}"] for a in "tczyx"],
                              "compression": fw.codec, "rationale": "ome-arrow-core default: see docs/format.md"}
    ours = dict(manifest.get("ome_arrow_core") or {})
    ours.update({"format_version": FORMAT_VERSION, "rows_per_group": ours.get("rows_per_group", rows_per_group),
                 "fragments": fragments})
    manifest["ome_arrow_core"] = ours
    with atomic_path(root / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2))


def _append(items: Iterable[StreamItem], out: Path, opts: dict[str, Any], images_per_group: int,
            on_image: Callable[[str, int], None] | None) -> Path:
    old_images = pq.read_table(out / "images.parquet")
    old_index = read_index(out).select(INDEX_SCHEMA.names).cast(INDEX_SCHEMA)
    ids = old_images.column("image_id")
    # drop index rows of images that are not in images.parquet (left by an interrupted append)
    old_index = old_index.filter(pc.is_in(old_index.column("image_id"), value_set=ids.combine_chunks()))
    first_id = int(pc.max(old_index.column("chunk_id")).as_py() or -1) + 1 if old_index.num_rows else 0
    used = {str(v) for v in old_index.column("fragment_path").unique().to_pylist()}
    used |= {p.name for p in out.glob("chunks-*.parquet")}
    k = 1
    while f"chunks-{k:05d}.parquet" in used:
        k += 1
    fragment = f"chunks-{k:05d}.parquet"
    previous: dict[str, Any] = json.loads((out / MANIFEST).read_text()) if (out / MANIFEST).exists() else {}
    with atomic_path(out / fragment) as tmp:
        fw = FragmentWriter(tmp, fragment, first_chunk_id=first_id, **opts)
        try:
            core, extra = _stream(fw, items, {str(v) for v in ids.to_pylist()}, old_images.num_rows, on_image)
        finally:
            new_index = fw.close()
    if not core:
        (out / fragment).unlink()
        return out
    index = pa.concat_tables([old_index, new_index])
    _write_tables(out, core, extra, old_images, index, images_per_group)
    fragments = sorted({str(v) for v in index.column("fragment_path").unique().to_pylist()})
    _write_manifest(out, previous, core, fw, fragments, int(opts["rows_per_group"]))
    return out


# -- reading -----------------------------------------------------------------------------
def _meta_from_row(row: dict[str, Any]) -> ImageMeta:
    chans_raw = json.loads(row.get("channels_json") or "[]")
    chans = tuple(
        Channel(id=str(c.get("id") or f"ch-{i}"), name=str(c.get("name") or ""),
                emission_um=c.get("emission_um"), excitation_um=c.get("excitation_um"),
                illumination=str(c.get("illumination") or "Unknown"), color_rgba=c.get("color_rgba"))
        for i, c in enumerate(chans_raw)
    )
    sizes = {a: int(row[f"size_{a.lower()}"]) for a in "TCZYX"}
    return ImageMeta(
        sizes=sizes, dtype=np.dtype(row["dtype"]), id=str(row["image_id"]), name=str(row.get("name") or row["image_id"]),
        image_type=str(row.get("image_type") or "image"), acquisition_datetime=row.get("acquisition_datetime"),
        physical_size={a: float(row.get(f"physical_size_{a.lower()}") or 1.0) for a in "XYZ"},
        physical_unit={a: str(row.get(f"physical_size_{a.lower()}_unit") or "µm") for a in "XYZ"},
        channels=chans if len(chans) == sizes["C"] else (),
        chunk_shape=tuple(int(row.get(f"chunk_{a}") or 1) for a in "zyx"),  # type: ignore[arg-type]
    )


@dataclass
class _Opened:
    """What opening a dataset parses once per process: manifest, images, index, chunk-file footers.

    Per-image lookups (an image's row, its chunk rows) are built on first use, so finding
    one image among many costs a dictionary lookup, not a scan.
    """

    manifest: dict[str, Any]
    table: pa.Table
    index: pa.Table
    pf: pq.ParquetFile
    group_rows: np.ndarray
    lock: threading.Lock
    path: Path = Path(".")
    fragment_names: list[str] = field(default_factory=lambda: ["chunks.parquet"])
    fragment_code: np.ndarray | None = None
    _columns: dict[str, np.ndarray] | None = None
    _positions: dict[str, int] | None = None
    _groups: dict[str, np.ndarray] | None = None
    _rows: list[dict[str, Any]] | None = None
    _values: dict[str, list[Any]] | None = None
    _files: dict[int, tuple[pq.ParquetFile, np.ndarray]] = field(default_factory=dict)

    @property
    def images(self) -> list[dict[str, Any]]:
        """Every image row as a dict (built once, on first use)."""
        if self._rows is None:
            self._rows = self.table.to_pylist()
        return self._rows

    @property
    def columns(self) -> dict[str, np.ndarray]:
        """Index columns (all but image_id and fragment_path) as numpy arrays."""
        if self._columns is None:
            self._columns = {
                n: self.index.column(n).to_numpy() for n in self.index.column_names
                if n not in ("image_id", "fragment_path")
            }
        return self._columns

    def position(self, image_id: str) -> int:
        """Row of ``image_id`` in images.parquet (the first, should ids repeat)."""
        if self._positions is None:
            ids = self.table.column("image_id").to_pylist()
            self._positions = {str(v): i for i, v in reversed(list(enumerate(ids)))}
        try:
            return self._positions[image_id]
        except KeyError:
            ids = list(self._positions)
            shown = ids if len(ids) <= 10 else [*ids[:10], "..."]
            raise SchemaError(f"image_id {image_id!r} not in {self.path}; ids: {shown}") from None

    def row(self, pos: int) -> dict[str, Any]:
        """Image row ``pos`` as a dict (column values are converted once, on first use)."""
        if self._rows is not None:
            return self._rows[pos]
        if self._values is None:
            self._values = {n: self.table.column(n).to_pylist() for n in self.table.column_names}
        return {n: v[pos] for n, v in self._values.items()}

    def chunk_rows(self, image_id: str) -> np.ndarray:
        """Index rows holding the chunks of ``image_id`` (all rows for a one-image dataset)."""
        if self.table.num_rows == 1:
            return np.arange(self.index.num_rows)
        if self._groups is None:
            enc = self.index.column("image_id").dictionary_encode().combine_chunks()
            codes = enc.indices.to_numpy(zero_copy_only=False)
            names = [str(v) for v in enc.dictionary.to_pylist()]
            order = np.argsort(codes, kind="stable")
            starts = np.zeros(len(names) + 1, dtype=np.int64)
            np.cumsum(np.bincount(codes, minlength=len(names)), out=starts[1:])
            self._groups = {n: order[starts[k] : starts[k + 1]] for k, n in enumerate(names)}
        return self._groups.get(image_id, np.zeros(0, dtype=np.int64))

    def fragment(self, code: int) -> tuple[pq.ParquetFile, np.ndarray]:
        """The chunks file ``fragment_names[code]`` (opened once) and its rows per row group."""
        hit = self._files.get(code)
        if hit is None:
            name = self.fragment_names[code]
            if name == "chunks.parquet":
                hit = (self.pf, self.group_rows)
            else:
                file = self.path / name
                if not file.exists():
                    raise SchemaError(f"{self.path} lists chunk fragment {name!r} in index.parquet, but it is missing")
                pf = pq.ParquetFile(file)
                rows = np.array([pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)], dtype=np.int64)
                hit = (pf, rows)
            self._files[code] = hit
        return hit

    def read_groups(self, code: int, groups: np.ndarray) -> tuple[pa.ChunkedArray, dict[int, int], np.ndarray]:
        """``pixel_bytes`` of row groups ``groups`` of one fragment (one read), the first row
        of each group in the result, and the start of each Arrow chunk of the result."""
        pf, group_rows = self.fragment(code)
        bad = groups[(groups < 0) | (groups >= len(group_rows))]
        if len(bad):
            raise SchemaError(
                f"index.parquet of {self.path} points at row groups {bad.tolist()[:5]} of "
                f"{self.fragment_names[code]}, which has {len(group_rows)}; the dataset is damaged"
            )
        with self.lock:
            table = pf.read_row_groups([int(g) for g in groups], columns=["pixel_bytes"], use_threads=False)
        col = table.column("pixel_bytes")
        base = dict(zip(groups.tolist(), np.cumsum(np.r_[0, group_rows[groups][:-1]]).tolist()))
        starts = np.cumsum([0, *(len(c) for c in col.chunks)])
        return col, base, starts


def _stamp(path: Path) -> tuple[Any, ...]:
    """Identity of a dataset's files on disk (path, sizes, mtimes) in this process.

    A changed file misses the cache; so does a new process (a forked DataLoader worker
    opens its own file handles instead of sharing its parent's).
    """
    out: list[Any] = [str(path.resolve()), os.getpid()]
    for name in (MANIFEST, "images.parquet", "index.parquet", "chunks.parquet"):
        try:
            st = (path / name).stat()
            out += [st.st_size, st.st_mtime_ns]
        except FileNotFoundError:
            out += [None, None]
    return tuple(out)


_cache: OrderedDict[tuple[Any, ...], _Opened] = OrderedDict()
_cache_lock = threading.Lock()
#: How many opened datasets are kept (footer and index parsed) for repeated scans of the same files.
CACHE_SIZE = 32
_INDEX_COLS: Final = ["image_id", "chunk_id", "t", "c", "z", "y", "x", *[f"shape_{a}" for a in "tczyx"]]


def _open(path: Path) -> _Opened:
    key = _stamp(path)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
        for old in [k for k in _cache if k[1] != key[1]]:  # entries inherited from a parent process
            del _cache[old]
    manifest_path = path / MANIFEST
    manifest: dict[str, Any] = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    ours = manifest.get("ome_arrow_core") or {}
    version = int(ours.get("format_version", FORMAT_VERSION))
    if version > FORMAT_VERSION:
        raise FormatVersionError(
            f"{path} was written in ome-arrow-core dataset format {version}; this reader knows "
            f"up to {FORMAT_VERSION}. Upgrade: pip install -U ome-arrow-core"
        )
    for need in ("images.parquet", "chunks.parquet"):
        if not (path / need).exists():
            raise SchemaError(f"{path} is not an OME-Arrow dataset: {need} is missing")
    # images before index: an append replaces the index first, so these two always agree
    images = pq.read_table(path / "images.parquet")
    pf = pq.ParquetFile(path / "chunks.parquet")
    group_rows = np.array([pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)], dtype=np.int64)
    index = read_index(path, pf, group_rows)
    frag = index.column("fragment_path").dictionary_encode().combine_chunks()
    names = [str(v or "chunks.parquet") for v in frag.dictionary.to_pylist()] or ["chunks.parquet"]
    codes = frag.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int32)
    opened = _Opened(manifest, images, index, pf, group_rows, threading.Lock(), path, names, codes)
    with _cache_lock:
        _cache[key] = opened
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return opened


def read_index(path: Path, pf: pq.ParquetFile | None = None, group_rows: np.ndarray | None = None) -> pa.Table:
    """The index of a dataset (derived from chunks.parquet's own order when there is no index.parquet).

    Columns: the INDEX_SCHEMA ones but ``row_index_in_group``'s neighbours in the same order;
    ``fragment_path`` is filled with ``chunks.parquet`` where absent.
    """
    index_path = path / "index.parquet"
    if index_path.exists():
        have = pq.read_schema(index_path).names
        cols = [*_INDEX_COLS, "row_group_id", "row_index_in_group"]
        index = pq.read_table(index_path, columns=[*cols, *(["fragment_path"] if "fragment_path" in have else [])])
    else:  # no index: derive row positions from the chunk file's own order (coordinates only)
        pf = pf or pq.ParquetFile(path / "chunks.parquet")
        if group_rows is None:
            group_rows = np.array([pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)], dtype=np.int64)
        index = pf.read(columns=_INDEX_COLS)
        rows = np.arange(index.num_rows)
        starts = np.concatenate([[0], np.cumsum(group_rows)])
        rg = np.searchsorted(starts, rows, side="right") - 1
        index = index.append_column("row_group_id", pa.array(rg.astype(np.int32))).append_column(
            "row_index_in_group", pa.array((rows - starts[rg]).astype(np.int32)))
    if "fragment_path" not in index.column_names:
        index = index.append_column("fragment_path", pa.array(["chunks.parquet"] * index.num_rows, pa.string()))
    return index


class DatasetSource:
    """One image of a typed-chunk dataset; reads only the row groups a selection touches.

    Opening parses the manifest, images, index and the chunk file's footer once per process
    and file version (a small cache keyed by path, size and mtime), so repeated scans are cheap,
    and finding one image among many is a lookup. Chunks may live in several files
    (``fragment_path`` of index.parquet: appends add ``chunks-00001.parquet``...).
    """

    def __init__(self, path: Path, row: int = 0, image_id: str | None = None) -> None:
        self._init(path, _open(path), row, image_id)

    @classmethod
    def _at(cls, opened: _Opened, row: int) -> DatasetSource:
        """Image ``row`` of an already opened dataset (no file-stamp check)."""
        src = cls.__new__(cls)
        src._init(opened.path, opened, row, None)
        return src

    def _init(self, path: Path, opened: _Opened, row: int, image_id: str | None) -> None:
        self.path = path
        self._opened = opened
        self.manifest = opened.manifest
        self.image_count = opened.table.num_rows
        if image_id is not None:
            pos = opened.position(str(image_id))
        else:
            if not 0 <= row < self.image_count:
                raise SchemaError(f"row {row} out of range; {path} holds images 0..{self.image_count - 1}")
            pos = row
        self.position = pos
        self.meta = _meta_from_row(opened.row(pos))
        self._pf = opened.pf
        self._lock = opened.lock
        self._group_rows = opened.group_rows
        mine = opened.chunk_rows(self.meta.id)
        if len(mine) == 0:
            raise SchemaError(f"image {self.meta.id!r} of {path} has no chunks in the index; the dataset is damaged")
        col = opened.columns
        self._chunks = ChunkTable(
            np.stack([col[a][mine] for a in "tczyx"], axis=1).astype(np.int64),
            np.stack([col[f"shape_{a}"][mine] for a in "tczyx"], axis=1).astype(np.int64),
        )
        self._rg = col["row_group_id"][mine].astype(np.int64)
        self._rig = col["row_index_in_group"][mine].astype(np.int64)
        assert opened.fragment_code is not None
        self._frag = opened.fragment_code[mine]
        self.chunks_read = 0
        self.row_groups_read = 0

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles as its location; unpickling reopens it (through the per-process cache)."""
        return (DatasetSource, (self.path, self.position))

    def describe(self) -> dict[str, Any]:
        """Storage facts for ``info()``."""
        nbytes = sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())
        md = self._pf.metadata
        return {
            "storage": "parquet typed-chunk dataset",
            "path": str(self.path),
            "file_bytes": nbytes,
            "images_in_file": self.image_count,
            "chunks": len(self._chunks),
            "chunk_shape_tczyx": [int(v) for v in self._chunks.shape.max(axis=0)] if len(self._chunks) else [],
            "row_groups": md.num_row_groups,
            "compression": md.row_group(0).column(md.schema.names.index("pixel_bytes")).compression if md.num_row_groups else None,
            "format_version": (self.manifest.get("ome_arrow_core") or {}).get("format_version"),
        }

    def _fetch(self, rows: np.ndarray) -> list[np.ndarray]:
        """Pixel blocks (TCZYX views of the read buffers) of chunk rows, reading their row groups once."""
        out: list[np.ndarray] = [np.empty(0)] * len(rows)
        rows = np.asarray(rows)
        for code in np.unique(self._frag[rows]):
            at = np.nonzero(self._frag[rows] == code)[0]
            groups = np.unique(self._rg[rows[at]])
            col, base, starts = self._opened.read_groups(int(code), groups)
            self.row_groups_read += len(groups)
            for k in at:
                out[k] = self._block(int(rows[k]), col, base, starts)
        self.chunks_read += len(rows)
        return out

    def _block(self, r: int, col: pa.ChunkedArray, base: dict[int, int], starts: np.ndarray) -> np.ndarray:
        """Chunk row ``r`` (TCZYX) as a view of the ``pixel_bytes`` read into ``col``."""
        pos = base[int(self._rg[r])] + int(self._rig[r])
        chunk_i = int(np.searchsorted(starts, pos, side="right")) - 1
        arr = col.chunk(chunk_i)
        at = pos - int(starts[chunk_i])
        offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64, count=len(arr) + 1, offset=arr.offset * 8)
        shape = tuple(int(v) for v in self._chunks.shape[r])
        dt = self.meta.dtype.newbyteorder("<")
        start = int(offsets[at])
        nbytes = int(offsets[at + 1]) - start
        if nbytes != int(np.prod(shape)) * dt.itemsize:
            raise SchemaError(f"chunk {r} of {self.path} holds {nbytes} bytes; its shape {shape} needs more")
        block = view_buffer(arr.buffers()[2], dt, shape, offset=start)
        return block if dt.isnative else block.astype(dt.newbyteorder("="))

    def read(self, sel: Selection) -> np.ndarray:
        """The selected pixels (TZCYX); a zero-copy view when the selection is one whole chunk."""
        rows = self._chunks.intersecting(sel)
        if len(rows) == 1 and self._is_whole_chunk(int(rows[0]), sel):
            return self._fetch(rows)[0].transpose(0, 2, 1, 3, 4)
        out, buf = arrow_empty(sel.shape, self.meta.dtype)
        self.read_into(sel, out)
        return view_buffer(buf, self.meta.dtype, sel.shape)

    def read_into(self, sel: Selection, out: np.ndarray) -> None:
        """Write the selected pixels into ``out``, a writable TZCYX array (or strided view) of ``sel.shape``."""
        read_many([(self, sel, out)])

    def _is_whole_chunk(self, r: int, sel: Selection) -> bool:
        o, s = self._chunks.origin[r], self._chunks.shape[r]
        return all(
            isinstance(sel.axis(ax), range) and sel.axis(ax) == range(int(o[k]), int(o[k] + s[k]))
            for k, ax in enumerate("TCZYX")
        )


def read_many(requests: Sequence[tuple[DatasetSource, Selection, np.ndarray]]) -> None:
    """Read several (source, selection) pairs into their ``out`` arrays (TZCYX, writable).

    The row groups all of them need are read with one call per chunk file, so a batch of
    small images costs one Parquet read, not one per image.
    """
    if not requests:
        return
    rows_of = [src._chunks.intersecting(sel) for src, sel, _ in requests]
    plan: dict[tuple[int, int], tuple[_Opened, set[int]]] = {}
    for (src, _, _), rows in zip(requests, rows_of):
        for code in np.unique(src._frag[rows]):
            key = (id(src._opened), int(code))
            entry = plan.setdefault(key, (src._opened, set()))
            entry[1].update(src._rg[rows[src._frag[rows] == code]].tolist())
    fetched = {
        key: opened.read_groups(key[1], np.array(sorted(groups), dtype=np.int64))
        for key, (opened, groups) in plan.items()
    }
    for (src, sel, out), rows in zip(requests, rows_of):
        if out.shape != sel.shape:
            raise ValueError(f"out has shape {out.shape}; the selection needs {sel.shape}")
        for r in rows:
            col, base, starts = fetched[(id(src._opened), int(src._frag[r]))]
            src._chunks.place(int(r), src._block(int(r), col, base, starts), sel, out)
        src.chunks_read += len(rows)
        src.row_groups_read += len({(int(src._frag[r]), int(src._rg[r])) for r in rows})


def _contiguous(sel: Selection) -> tuple[np.ndarray, np.ndarray] | None:
    """(start, stop) per TCZYX axis when every axis of ``sel`` is a step-1 range, else None."""
    axes = [sel.t, sel.c, sel.z, sel.y, sel.x]
    if not all(isinstance(a, range) and a.step == 1 for a in axes):
        return None
    return (np.array([a.start for a in axes], dtype=np.int64),  # type: ignore[union-attr]
            np.array([a.stop for a in axes], dtype=np.int64))  # type: ignore[union-attr]


def read_rows(path: Path, positions: Sequence[int], sels: Sequence[Selection], outs: Sequence[np.ndarray]) -> None:
    """Read image rows ``positions`` of the dataset at ``path`` into ``outs`` (writable TZCYX arrays).

    ``sels[k]`` is the selection of image ``positions[k]`` (absolute storage indices) and
    ``outs[k]`` has its shape. The batch costs one Parquet read per chunk file and one copy
    per chunk from the read buffer into ``outs``; no per-image objects are built.
    """
    if not positions:
        return
    opened = _open(path)
    n_images = opened.table.num_rows
    col = opened.columns
    assert opened.fragment_code is not None
    if opened._values is None:
        opened._values = {n: opened.table.column(n).to_pylist() for n in opened.table.column_names}
    ids, dtypes = opened._values["image_id"], opened._values["dtype"]
    boxes = [_contiguous(s) for s in sels]
    picked: list[np.ndarray] = []
    for pos, sel, out in zip(positions, sels, outs):
        if not 0 <= pos < n_images:
            raise SchemaError(f"row {pos} out of range; {path} holds images 0..{n_images - 1}")
        if out.shape != sel.shape:
            raise ValueError(f"out has shape {out.shape}; the selection of row {pos} needs {sel.shape}")
        picked.append(opened.chunk_rows(str(ids[pos])))
    rows = np.concatenate(picked)
    owner = np.repeat(np.arange(len(picked)), [len(r) for r in picked])
    origin = np.stack([col[a][rows] for a in "tczyx"], axis=1).astype(np.int64)
    shape = np.stack([col[f"shape_{a}"][rows] for a in "tczyx"], axis=1).astype(np.int64)
    keep = np.zeros(len(rows), dtype=bool)
    boxed = np.array([b is not None for b in boxes])[owner]
    if boxed.any():
        lo_all = np.array([b[0] if b is not None else np.zeros(5, np.int64) for b in boxes], dtype=np.int64)[owner]
        hi_all = np.array([b[1] if b is not None else np.zeros(5, np.int64) for b in boxes], dtype=np.int64)[owner]
        keep |= boxed & np.all((origin < hi_all) & (origin + shape > lo_all), axis=1)
    for k, box in enumerate(boxes):
        if box is None:
            mine = np.nonzero(owner == k)[0]
            keep[mine[ChunkTable(origin[mine], shape[mine]).intersecting(sels[k])]] = True
    picked = [rows[keep & (owner == k)] for k in range(len(picked))]
    every = np.concatenate(picked)
    owner = np.repeat(np.arange(len(picked)), [len(r) for r in picked])
    origin = np.stack([col[a][every] for a in "tczyx"], axis=1).astype(np.int64)
    shape = np.stack([col[f"shape_{a}"][every] for a in "tczyx"], axis=1).astype(np.int64)
    codes = opened.fragment_code[every]
    rg = col["row_group_id"][every].astype(np.int64)
    rig = col["row_index_in_group"][every].astype(np.int64)
    # where each chunk row lies in what one read per fragment returns: (arrow chunk, row in it)
    data: list[pa.Buffer] = [pa.py_buffer(b"")] * len(every)
    start = np.zeros(len(every), dtype=np.int64)
    stop = np.zeros(len(every), dtype=np.int64)
    for code in np.unique(codes).tolist():
        mine = np.nonzero(codes == code)[0]
        groups = np.unique(rg[mine])
        arrow_col, base, starts = opened.read_groups(int(code), groups)
        first = np.array([base[g] for g in groups.tolist()], dtype=np.int64)
        at = first[np.searchsorted(groups, rg[mine])] + rig[mine]
        ci = np.searchsorted(starts, at, side="right") - 1
        for c in np.unique(ci).tolist():
            chunk = arrow_col.chunk(c)
            offs = np.frombuffer(chunk.buffers()[1], dtype=np.int64, count=len(chunk) + 1, offset=chunk.offset * 8)
            sub = mine[ci == c]
            i = at[ci == c] - starts[c]
            start[sub], stop[sub] = offs[i], offs[i + 1]
            buf = chunk.buffers()[2]
            for j in sub.tolist():
                data[j] = buf
    item = np.array([np.dtype(dtypes[p]).itemsize for p in positions], dtype=np.int64)[owner]
    bad = np.nonzero(stop - start != np.prod(shape, axis=1) * item)[0]
    if len(bad):
        j = int(bad[0])
        raise SchemaError(f"chunk {int(col['chunk_id'][every[j]])} of {path} holds {int(stop[j] - start[j])} bytes; "
                          f"its shape {tuple(shape[j].tolist())} needs {int(np.prod(shape[j]) * item[j])}")
    lo_box = np.array([b[0] if b is not None else np.zeros(5, np.int64) for b in boxes], dtype=np.int64)[owner]
    hi_box = np.array([b[1] if b is not None else np.zeros(5, np.int64) for b in boxes], dtype=np.int64)[owner]
    lo = np.maximum(origin, lo_box)
    hi = np.minimum(origin + shape, hi_box)
    src_lo, src_hi, dst_lo, dst_hi = (lo - origin).tolist(), (hi - origin).tolist(), (lo - lo_box).tolist(), (hi - lo_box).tolist()
    dts = [np.dtype(dtypes[p]).newbyteorder("<") for p in positions]
    o_list, s_list, start_l = owner.tolist(), shape.tolist(), start.tolist()
    for j in range(len(every)):
        k = o_list[j]
        dt, out, box = dts[k], outs[k], boxes[k]
        s = s_list[j]
        block = np.frombuffer(data[j], dtype=dt, count=s[0] * s[1] * s[2] * s[3] * s[4], offset=start_l[j]).reshape(s)
        if box is None:
            ChunkTable(origin[j : j + 1], shape[j : j + 1]).place(0, block, sels[k], out)
            continue
        a, b, c, d = src_lo[j], src_hi[j], dst_lo[j], dst_hi[j]
        src = block[a[0] : b[0], a[1] : b[1], a[2] : b[2], a[3] : b[3], a[4] : b[4]]
        out[c[0] : d[0], c[2] : d[2], c[1] : d[1], c[3] : d[3], c[4] : d[4]] = src.transpose(0, 2, 1, 3, 4)
