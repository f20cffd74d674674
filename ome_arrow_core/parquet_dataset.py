"""The typed-chunk Parquet dataset: a directory of images.parquet, chunks.parquet, index.parquet.

This is the public OME-Arrow dataset layout (``layout: typed-chunk-dataset``) that
``ome-arrow`` 0.1.0 writes and reads; ome-arrow-core writes it as its native format and adds
physical sizes and a format version of its own (see docs/format.md). One chunk per row,
raw little-endian C-order TCZYX bytes in ``pixel_bytes``; ``index.parquet`` maps each chunk
to its row group so a reader fetches only the row groups a selection needs.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
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
    """What opening a dataset parses once: manifest, image rows, index, chunk-file footer."""

    manifest: dict[str, Any]
    images: list[dict[str, Any]]
    index: pa.Table
    pf: pq.ParquetFile
    group_rows: np.ndarray
    lock: threading.Lock


def _stamp(path: Path) -> tuple[Any, ...]:
    """Identity of a dataset's files on disk (path, sizes, mtimes): a changed file misses the cache."""
    out: list[Any] = [str(path.resolve())]
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


def _open(path: Path) -> _Opened:
    key = _stamp(path)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
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
    images = pq.read_table(path / "images.parquet").to_pylist()
    pf = pq.ParquetFile(path / "chunks.parquet")
    group_rows = np.array([pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)], dtype=np.int64)
    index_path = path / "index.parquet"
    cols = ["image_id", "chunk_id", "t", "c", "z", "y", "x", *[f"shape_{a}" for a in "tczyx"]]
    if index_path.exists():
        index = pq.read_table(index_path, columns=[*cols, "row_group_id", "row_index_in_group"])
    else:  # no index: derive row positions from the chunk file's own order (coordinates only)
        index = pf.read(columns=cols)
        rows = np.arange(index.num_rows)
        starts = np.concatenate([[0], np.cumsum(group_rows)])
        rg = np.searchsorted(starts, rows, side="right") - 1
        index = index.append_column("row_group_id", pa.array(rg.astype(np.int32))).append_column(
            "row_index_in_group", pa.array((rows - starts[rg]).astype(np.int32)))
    opened = _Opened(manifest, images, index, pf, group_rows, threading.Lock())
    with _cache_lock:
        _cache[key] = opened
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return opened


class DatasetSource:
    """One image of a typed-chunk dataset; reads only the row groups a selection touches.

    Opening parses the manifest, images, index and the chunk file's footer once per process
    and file version (a small cache keyed by path, size and mtime), so repeated scans are cheap.
    """

    def __init__(self, path: Path, row: int = 0, image_id: str | None = None) -> None:
        self.path = path
        opened = _open(path)
        self.manifest = opened.manifest
        images = opened.images
        if image_id is not None:
            match = [r for r in images if str(r["image_id"]) == image_id]
            if not match:
                raise SchemaError(f"image_id {image_id!r} not in {path}; ids: {[r['image_id'] for r in images]}")
            info = match[0]
        else:
            if not 0 <= row < len(images):
                raise SchemaError(f"row {row} out of range; {path} holds images 0..{len(images) - 1}")
            info = images[row]
        self.image_count = len(images)
        self.meta = _meta_from_row(info)
        self._pf = opened.pf
        self._lock = opened.lock
        self._group_rows = opened.group_rows
        idx = opened.index
        ids = idx.column("image_id")
        if self.image_count == 1:
            col = {n: idx.column(n).to_numpy() for n in idx.column_names if n != "image_id"}
        else:
            mine = np.asarray(ids.to_numpy(zero_copy_only=False) == self.meta.id)
            col = {n: idx.column(n).to_numpy()[mine] for n in idx.column_names if n != "image_id"}
        self._chunks = ChunkTable(
            np.stack([col[a] for a in "tczyx"], axis=1).astype(np.int64),
            np.stack([col[f"shape_{a}"] for a in "tczyx"], axis=1).astype(np.int64),
        )
        self._rg = col["row_group_id"].astype(np.int64)
        self._rig = col["row_index_in_group"].astype(np.int64)
        self.chunks_read = 0
        self.row_groups_read = 0

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
        groups = np.unique(self._rg[rows])
        with self._lock:
            table = self._pf.read_row_groups([int(g) for g in groups], columns=["pixel_bytes"], use_threads=False)
            self.chunks_read += len(rows)
            self.row_groups_read += len(groups)
        col = table.column("pixel_bytes")
        # position of each requested row inside the concatenated result
        base = dict(zip(groups.tolist(), np.cumsum(np.r_[0, self._group_rows[groups][:-1]]).tolist()))
        out = []
        dt = self.meta.dtype.newbyteorder("<")
        for r in rows:
            pos = base[int(self._rg[r])] + int(self._rig[r])
            chunk_i, at = _locate(col, pos)
            arr = col.chunk(chunk_i)
            offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64, count=len(arr) + 1, offset=arr.offset * 8)
            shape = tuple(int(v) for v in self._chunks.shape[r])
            start = int(offsets[at])
            nbytes = int(offsets[at + 1]) - start
            if nbytes != int(np.prod(shape)) * dt.itemsize:
                raise SchemaError(f"chunk {r} of {self.path} holds {nbytes} bytes; its shape {shape} needs more")
            block = view_buffer(arr.buffers()[2], dt, shape, offset=start)
            out.append(block if dt.isnative else block.astype(dt.newbyteorder("=")))
        return out

    def read(self, sel: Selection) -> np.ndarray:
        """The selected pixels (TZCYX); a zero-copy view when the selection is one whole chunk."""
        rows = self._chunks.intersecting(sel)
        if len(rows) == 1 and self._is_whole_chunk(int(rows[0]), sel):
            return self._fetch(rows)[0].transpose(0, 2, 1, 3, 4)
        out, buf = arrow_empty(sel.shape, self.meta.dtype)
        for r, block in zip(rows, self._fetch(rows)):
            self._chunks.place(int(r), block, sel, out)
        return view_buffer(buf, self.meta.dtype, sel.shape)

    def _is_whole_chunk(self, r: int, sel: Selection) -> bool:
        o, s = self._chunks.origin[r], self._chunks.shape[r]
        return all(
            isinstance(sel.axis(ax), range) and sel.axis(ax) == range(int(o[k]), int(o[k] + s[k]))
            for k, ax in enumerate("TCZYX")
        )


def _locate(col: pa.ChunkedArray, pos: int) -> tuple[int, int]:
    for i, chunk in enumerate(col.chunks):
        if pos < len(chunk):
            return i, pos
        pos -= len(chunk)
    raise IndexError(pos)
