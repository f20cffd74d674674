"""Reading typed-chunk datasets: only the row groups (or chunk rows) a selection touches."""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .boundary import blaming, reading
from .buffers import arrow_empty, view_buffer
from .checksums import ChunkChecksums, verify_enabled
from .chunks import ChunkTable
from .dataset_format import FORMAT_VERSION, MANIFEST, read_manifest
from .dataset_fragments import Fragment, ParquetFragment, open_fragment
from .dataset_tables import parts_of, read_images, read_index, read_indexes
from .errors import ArgumentError, FormatVersionError, SchemaError
from .meta import Channel, ImageMeta
from .selection import Selection

__all__ = ["DatasetSource", "read_many", "read_rows", "read_index"]


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
    """What opening a dataset parses once per process: manifest, images, index, chunk files (on first use).

    ``table`` and ``index`` are the images and index tables of every part (the base, then each
    append's), with the part of each row in ``image_part`` and ``index_part``. Per-image
    lookups (an image's row, its chunk rows) are built on first use, so finding one image
    among many costs a dictionary lookup, not a scan.
    """

    manifest: dict[str, Any]
    table: pa.Table
    index: pa.Table
    lock: threading.Lock
    path: Path = Path(".")
    image_part: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    index_part: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    fragment_names: list[str] = field(default_factory=lambda: ["chunks.parquet"])
    fragment_code: np.ndarray | None = None
    _columns: dict[str, np.ndarray] | None = None
    _positions: dict[str, int] | None = None
    _groups: dict[tuple[int, str], np.ndarray] | None = None
    _ids: list[str] | None = None
    _rows: list[dict[str, Any]] | None = None
    _values: dict[str, list[Any]] | None = None
    _files: dict[int, Fragment] = field(default_factory=dict)
    _verified: set[int] = field(default_factory=set)
    _sums: ChunkChecksums | None = None

    @property
    def sums(self) -> ChunkChecksums:
        """The index's chunk checksums (built once, on first use)."""
        if self._sums is None:
            col = self.index.column("checksum") if "checksum" in self.index.column_names else None
            algorithm = (self.manifest.get("ome_arrow_core") or {}).get("checksum")
            self._sums = ChunkChecksums(col, algorithm, str(self.path))
        return self._sums

    def where(self, row: int) -> tuple[str, str]:
        """(chunk file, "chunk N of image ID") of index row ``row``, for error messages."""
        assert self.fragment_code is not None
        file = self.path / self.fragment_names[int(self.fragment_code[row])]
        image = self.index.column("image_id")[row].as_py()
        return str(file), f"chunk {int(self.columns['chunk_id'][row])} of image {image!r} (index row {row})"

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
                if n not in ("image_id", "fragment_path", "checksum")
            }
        return self._columns

    @property
    def ids(self) -> list[str]:
        """The image_id of every image row (built once, on first use)."""
        if self._ids is None:
            self._ids = [str(v) for v in self.table.column("image_id").to_pylist()]
        return self._ids

    def position(self, image_id: str) -> int:
        """Row of ``image_id`` among the images (the first, should ids repeat)."""
        if self._positions is None:
            self._positions = {v: i for i, v in reversed(list(enumerate(self.ids)))}
        try:
            return self._positions[image_id]
        except KeyError:
            shown = self.ids if len(self.ids) <= 10 else [*self.ids[:10], "..."]
            raise SchemaError(f"image_id {image_id!r} not in {self.path}; ids: {shown}") from None

    def row(self, pos: int) -> dict[str, Any]:
        """Image row ``pos`` as a dict (column values are converted once, on first use)."""
        if self._rows is not None:
            return self._rows[pos]
        if self._values is None:
            self._values = {n: self.table.column(n).to_pylist() for n in self.table.column_names}
        return {n: v[pos] for n, v in self._values.items()}

    def chunk_rows(self, pos: int) -> np.ndarray:
        """Index rows holding the chunks of image row ``pos``: its part's rows with its image_id.

        A one-image dataset takes every index row.
        """
        if self.table.num_rows == 1:
            return np.arange(self.index.num_rows)
        if self._groups is None:
            enc = self.index.column("image_id").dictionary_encode().combine_chunks()
            names = [str(v) for v in enc.dictionary.to_pylist()]
            n = max(len(names), 1)
            key = self.index_part.astype(np.int64) * n + enc.indices.to_numpy(zero_copy_only=False)
            order = np.argsort(key, kind="stable")
            keys, starts = np.unique(key[order], return_index=True)
            stops = [*starts[1:].tolist(), len(order)]
            self._groups = {(k // n, names[k % n]): order[a:b] for k, a, b in zip(keys.tolist(), starts.tolist(), stops)}
        return self._groups.get((int(self.image_part[pos]), self.ids[pos]), np.zeros(0, dtype=np.int64))

    def verify(self, pos: int, rows: np.ndarray) -> None:
        """Raise SchemaError unless chunk ``rows`` cover image row ``pos`` (checked once per image).

        A chunk missing from the index would otherwise read as whatever memory held before.
        """
        if pos in self._verified:
            return
        row = self.row(pos)
        total = int(np.prod([int(row[f"size_{a}"]) for a in "tczyx"], dtype=np.int64))
        shapes = np.stack([self.columns[f"shape_{a}"][rows] for a in "tczyx"], axis=1).astype(np.int64)
        covered = int(shapes.prod(axis=1).sum())
        if covered != total:
            raise SchemaError(
                f"the chunks of image {row['image_id']!r} of {self.path} cover {covered} pixels, its sizes "
                f"need {total}; the dataset is damaged (index.parquet lacks or repeats chunks)"
            )
        self._verified.add(pos)

    def fragment(self, code: int) -> Fragment:
        """The chunks file ``fragment_names[code]``, opened once (Parquet, or a chunk store's format)."""
        hit = self._files.get(code)
        if hit is None:
            hit = self._files[code] = open_fragment(self.path, self.fragment_names[code])
        return hit

    def read_groups(self, code: int, groups: np.ndarray) -> tuple[pa.ChunkedArray, dict[int, int], np.ndarray]:
        """``pixel_bytes`` of row groups ``groups`` (ascending) of one fragment (one read), the first
        row of each group in the result, and the start of each Arrow chunk of the result."""
        frag = self.fragment(code)
        group_rows = frag.group_rows
        bad = groups[(groups < 0) | (groups >= len(group_rows))]
        if len(bad):
            unit = "row groups" if isinstance(frag, ParquetFragment) else "rows"
            raise SchemaError(
                f"index.parquet of {self.path} points at {unit} {bad.tolist()[:5]} of "
                f"{self.fragment_names[code]}, which has {len(group_rows)}; the dataset is damaged"
            )
        with self.lock:
            col = frag.read(groups)
        base = dict(zip(groups.tolist(), np.cumsum(np.r_[0, group_rows[groups][:-1]]).tolist()))
        starts = np.cumsum([0, *(len(c) for c in col.chunks)])
        return col, base, starts


def _stamp(path: Path) -> tuple[Any, ...]:
    """Identity of a dataset's files on disk (path, inodes, sizes, mtimes) in this process.

    A changed file misses the cache (an append replaces the manifest; listed append tables
    never change); so does a new process (a forked DataLoader worker opens its own file
    handles instead of sharing its parent's).
    """
    out: list[Any] = [str(path.resolve()), os.getpid()]
    for name in (MANIFEST, "images.parquet", "index.parquet", "chunks.parquet"):
        try:
            st = (path / name).stat()
            out += [st.st_ino, st.st_size, st.st_mtime_ns]
        except FileNotFoundError:
            out += [None, None, None]
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
        for old in [k for k in _cache if k[1] != key[1]]:  # entries inherited from a parent process
            del _cache[old]
    manifest = read_manifest(path)
    ours = manifest.get("ome_arrow_core") or {}
    version = int(ours.get("format_version", FORMAT_VERSION))
    if version > FORMAT_VERSION:
        raise FormatVersionError(
            f"{path} was written in ome-arrow-core dataset format {version}; this reader knows "
            f"up to {FORMAT_VERSION}. Upgrade: pip install -U ome-arrow-core"
        )
    if not (path / "images.parquet").exists():
        raise SchemaError(f"{path} is not an OME-Arrow dataset: images.parquet is missing")
    if not (path / "chunks.parquet").exists() and not (path / "index.parquet").exists():
        raise SchemaError(f"{path} is not an OME-Arrow dataset: it has neither chunks.parquet nor index.parquet")
    parts = parts_of(path, manifest)  # only the tables the manifest lists: the old images or the new, never a mix
    images, image_part = read_images(path, parts)
    index, index_part = read_indexes(path, parts)
    frag = index.column("fragment_path").dictionary_encode().combine_chunks()
    names = [str(v or "chunks.parquet") for v in frag.dictionary.to_pylist()] or ["chunks.parquet"]
    codes = frag.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int32)
    opened = _Opened(manifest, images, index, threading.Lock(), path, image_part, index_part, names, codes)
    with _cache_lock:
        _cache[key] = opened
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return opened


class DatasetSource:
    """One image of a typed-chunk dataset; reads only the row groups a selection touches.

    Opening parses the manifest, the images and index tables it lists (the base ones, then
    each append's) once per process and file version (a small cache keyed by path, inode,
    size and mtime), and each chunk file on first use, so repeated scans are cheap and
    finding one image among many is a lookup. Chunks may live in several files
    (``fragment_path`` of the index: appends add ``chunks-00001.parquet``...), Parquet or
    a chunk store's format (``chunks.vortex``).
    """

    def __init__(self, path: Path, row: int = 0, image_id: str | None = None, *, verify: bool | None = None) -> None:
        """Image ``row`` (or ``image_id``) of the dataset at ``path``; ``verify=False`` skips checksum checks
        on read (None: unless the environment sets ``OME_ARROW_CORE_VERIFY=0``)."""
        self.verify = verify
        with reading(path, None, "opening the dataset"), blaming(path):
            self._init(path, _open(path), row, image_id)

    @classmethod
    def _at(cls, opened: _Opened, row: int) -> DatasetSource:
        """Image ``row`` of an already opened dataset (no file-stamp check)."""
        src = cls.__new__(cls)
        src.verify = None
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
                raise ArgumentError(f"row {row} out of range; {path} holds images 0..{self.image_count - 1}")
            pos = row
        self.position = pos
        self.meta = _meta_from_row(opened.row(pos))
        self._lock = opened.lock
        mine = opened.chunk_rows(pos)
        if len(mine) == 0:
            raise SchemaError(f"image {self.meta.id!r} of {path} has no chunks in the index; the dataset is damaged")
        col = opened.columns
        self._chunks = ChunkTable(
            np.stack([col[a][mine] for a in "tczyx"], axis=1).astype(np.int64),
            np.stack([col[f"shape_{a}"][mine] for a in "tczyx"], axis=1).astype(np.int64),
        )
        opened.verify(pos, mine)
        self._index_rows = mine
        self._rg = col["row_group_id"][mine].astype(np.int64)
        self._rig = col["row_index_in_group"][mine].astype(np.int64)
        assert opened.fragment_code is not None
        self._frag = opened.fragment_code[mine]
        self.chunks_read = 0
        self.row_groups_read = 0

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles as its location; unpickling reopens it (through the per-process cache)."""
        return (_reopen, (self.path, self.position, self.verify))

    def describe(self) -> dict[str, Any]:
        """Storage facts for ``info()`` (row groups and codec of this image's first chunk file)."""
        nbytes = sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())
        frag = self._opened.fragment(int(self._frag[0]))
        facts: dict[str, Any] = {
            "storage": f"{frag.format} typed-chunk dataset",
            "path": str(self.path),
            "file_bytes": nbytes,
            "images_in_file": self.image_count,
            "chunks": len(self._chunks),
            "chunk_shape_tczyx": [int(v) for v in self._chunks.shape.max(axis=0)] if len(self._chunks) else [],
            "chunk_format": frag.format,
            "format_version": (self.manifest.get("ome_arrow_core") or {}).get("format_version"),
        }
        if isinstance(frag, ParquetFragment):
            md = frag.file.metadata
            facts["row_groups"] = md.num_row_groups
            facts["compression"] = (md.row_group(0).column(md.schema.names.index("pixel_bytes")).compression
                                    if md.num_row_groups else None)
        else:
            facts["rows"] = len(frag.group_rows)
            facts["compression"] = self._opened.row(self.position).get("compression")
        return facts

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
                out[k] = self._block(int(rows[k]), col, base, starts, set())
        self.chunks_read += len(rows)
        return out

    def _block(self, r: int, col: pa.ChunkedArray, base: dict[int, int], starts: np.ndarray,
               checked: set[int]) -> np.ndarray:
        """Chunk row ``r`` (TCZYX) as a view of the ``pixel_bytes`` read into ``col``, its checksum checked
        unless verification is off or ``checked`` (index rows checked in this read) holds it."""
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
        row = int(self._index_rows[r])
        if row not in checked and verify_enabled(self.verify):
            self._opened.sums.check(row, arr.buffers()[2], start, nbytes, lambda: self._opened.where(row))
            checked.add(row)
        block = view_buffer(arr.buffers()[2], dt, shape, offset=start)
        return block if dt.isnative else block.astype(dt.newbyteorder("="))

    def read(self, sel: Selection) -> np.ndarray:
        """The selected pixels (TZCYX); a zero-copy view when the selection is one whole chunk."""
        with reading(self.path, None, "reading pixels"), blaming(self.path):
            return self._read(sel)

    def _read(self, sel: Selection) -> np.ndarray:
        rows = self._chunks.intersecting(sel)
        if len(rows) == 1 and self._is_whole_chunk(int(rows[0]), sel):
            return self._fetch(rows)[0].transpose(0, 2, 1, 3, 4)
        out, buf = arrow_empty(sel.shape, self.meta.dtype)
        self.read_into(sel, out)
        return view_buffer(buf, self.meta.dtype, sel.shape)

    def read_into(self, sel: Selection, out: np.ndarray) -> None:
        """Write the selected pixels into ``out``, a writable TZCYX array (or strided view) of ``sel.shape``."""
        with reading(self.path, None, "reading pixels"), blaming(self.path):
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
    checked: dict[int, set[int]] = {id(src._opened): set() for src, _, _ in requests}  # each chunk once per read
    for (src, sel, out), rows in zip(requests, rows_of):
        if out.shape != sel.shape:
            raise ValueError(f"out has shape {out.shape}; the selection needs {sel.shape}")
        for r in rows:
            col, base, starts = fetched[(id(src._opened), int(src._frag[r]))]
            src._chunks.place(int(r), src._block(int(r), col, base, starts, checked[id(src._opened)]), sel, out)
        src.chunks_read += len(rows)
        src.row_groups_read += len({(int(src._frag[r]), int(src._rg[r])) for r in rows})


def _reopen(path: Path, position: int, verify: bool | None) -> DatasetSource:
    """A DatasetSource unpickled: image row ``position`` of ``path`` reopened (through the per-process cache)."""
    return DatasetSource(path, position, verify=verify)


def _contiguous(sel: Selection) -> tuple[np.ndarray, np.ndarray] | None:
    """(start, stop) per TCZYX axis when every axis of ``sel`` is a step-1 range, else None."""
    axes = [sel.t, sel.c, sel.z, sel.y, sel.x]
    if not all(isinstance(a, range) and a.step == 1 for a in axes):
        return None
    return (np.array([a.start for a in axes], dtype=np.int64),  # type: ignore[union-attr]
            np.array([a.stop for a in axes], dtype=np.int64))  # type: ignore[union-attr]


def read_rows(path: Path, positions: Sequence[int], sels: Sequence[Selection], outs: Sequence[np.ndarray], *,
              verify: bool | None = None) -> None:
    """Read image rows ``positions`` of the dataset at ``path`` into ``outs`` (writable TZCYX arrays).

    ``sels[k]`` is the selection of image ``positions[k]`` (absolute storage indices) and
    ``outs[k]`` has its shape. The batch costs one Parquet read per chunk file and one copy
    per chunk from the read buffer into ``outs``; no per-image objects are built. Each chunk's
    checksum is checked once unless ``verify=False`` (None: unless ``OME_ARROW_CORE_VERIFY=0``).
    """
    if not positions:
        return
    opened = _open(path)
    n_images = opened.table.num_rows
    col = opened.columns
    assert opened.fragment_code is not None
    if opened._values is None:
        opened._values = {n: opened.table.column(n).to_pylist() for n in opened.table.column_names}
    dtypes = opened._values["dtype"]
    boxes = [_contiguous(s) for s in sels]
    picked: list[np.ndarray] = []
    for pos, sel, out in zip(positions, sels, outs):
        if not 0 <= pos < n_images:
            raise SchemaError(f"row {pos} out of range; {path} holds images 0..{n_images - 1}")
        if out.shape != sel.shape:
            raise ValueError(f"out has shape {out.shape}; the selection of row {pos} needs {sel.shape}")
        picked.append(opened.chunk_rows(pos))
        opened.verify(pos, picked[-1])
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
    if verify_enabled(verify):
        sums = opened.sums
        for j in np.unique(every, return_index=True)[1].tolist():
            row = int(every[j])
            sums.check(row, data[j], int(start[j]), int(stop[j] - start[j]), lambda: opened.where(row))
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

