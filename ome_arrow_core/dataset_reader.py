"""Reading typed-chunk datasets: only the row groups (or chunk rows) a selection touches."""

from __future__ import annotations

import json
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .arrow_numpy import int_values
from .boundary import blaming, reading
from .buffers import arrow_empty, view_buffer
from .checksums import ChunkChecksums, verify_enabled
from .chunks import ChunkTable
from .dataset_bounds import check_table_rows, dictionary_codes
from .dataset_format import FORMAT_VERSION, MANIFEST, read_manifest
from .dataset_checks import check_image_chunks, check_manifest_members, check_member, check_unique
from .dataset_readcheck import ReadCheck, dtype_name
from .dataset_fragments import Fragment, ParquetFragment, open_fragment
from .dataset_tables import images_schema, parts_of, read_images, read_index, read_indexes
from .errors import ArgumentError, DamagedFileError, FormatVersionError, SchemaError
from .meta import Channel, ImageMeta
from .page_reads import MANIFEST_KEY as PAGES_KEY
from .page_reads import listed_codec, paged_fragment, ranged_rows_bound
from .selection import Selection

__all__ = ["DatasetSource", "read_many", "read_rows", "read_index", "ROW_BLOCK", "READ_BATCH_BYTES"]

#: Image rows converted to dicts at a time (and blocks kept): never whole columns.
ROW_BLOCK = 1024
ROW_BLOCKS_KEPT = 4
#: Pixel bytes of row groups read at a time into a selection's output (a batch is at least one group).
READ_BATCH_BYTES = 16 << 20


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
    _groups: dict[str, np.ndarray] | None = None
    _ids: list[str] | None = None
    _image_keys: np.ndarray | None = None
    _blocks: OrderedDict[int, list[dict[str, Any]]] = field(default_factory=OrderedDict)
    _files: dict[int, Fragment] = field(default_factory=dict)
    _verified: set[int] = field(default_factory=set)
    _bounded: set[int] = field(default_factory=set)
    index_names: list[str] = field(default_factory=lambda: ["index.parquet"])
    _checks: dict[int, ReadCheck] = field(default_factory=dict)
    _row_images: np.ndarray | None = None
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
    def columns(self) -> dict[str, np.ndarray]:
        """Index columns (all but image_id and fragment_path) as numpy arrays."""
        if self._columns is None:
            self._columns = {
                n: int_values(self.index.column(n)) for n in self.index.column_names
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
        """Image row ``pos`` as a dict.

        Rows are converted a block of :data:`ROW_BLOCK` at a time (the last few blocks are
        kept), never whole columns: a table of a million images costs one block of dicts.
        """
        k = pos // ROW_BLOCK
        hit = self._blocks.get(k)
        block = hit if hit is not None else self.table.slice(k * ROW_BLOCK, ROW_BLOCK).to_pylist()
        try:  # threads share this cache: another may have dropped a block meanwhile
            if hit is None:
                self._blocks[k] = block
                while len(self._blocks) > ROW_BLOCKS_KEPT:
                    self._blocks.popitem(last=False)
            else:
                self._blocks.move_to_end(k)
        except KeyError:
            pass
        return block[pos - k * ROW_BLOCK]

    def chunk_rows(self, pos: int) -> np.ndarray:
        """Index rows holding the chunks of image row ``pos``: its part's rows with its image_id.

        A one-image dataset takes every index row.
        """
        if self.table.num_rows == 1:
            return np.arange(self.index.num_rows)
        self._build_groups()
        assert self._groups is not None and self._image_keys is not None
        key = int(self._image_keys[pos])
        keys = self._groups["keys"]
        at = int(np.searchsorted(keys, key))
        if key < 0 or at >= len(keys) or int(keys[at]) != key:
            return np.zeros(0, dtype=np.int64)
        starts = self._groups["starts"]
        return self._groups["order"][int(starts[at]) : int(starts[at + 1])]

    def _build_groups(self) -> None:
        """Index rows grouped by (part, image id), and each image row's key into those groups (built once)."""
        if self._groups is None or self._image_keys is None:
            # (part, image id) of every index row and image row as one integer key, all in numpy
            enc = self.index.column("image_id").dictionary_encode().combine_chunks()
            n = max(len(enc.dictionary), 1)
            key = self.index_part.astype(np.int64) * n + int_values(enc.indices)
            order = np.argsort(key, kind="stable")
            keys, starts = np.unique(key[order], return_index=True)
            codes = pc.index_in(self.table.column("image_id").cast(enc.dictionary.type), value_set=enc.dictionary)
            found = codes.is_valid().to_numpy(zero_copy_only=False)
            ids = codes.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
            # image ids are unique across the images tables (checked here, on the codes: no hash of strings)
            check_unique(ids[found], f"the images tables of {self.path}", "image_id",
                         lambda code: enc.dictionary[int(code)].as_py())
            own = self.image_part.astype(np.int64) * n + np.maximum(ids, 0)
            self._image_keys = np.where(found, own, -1)
            self._groups = {"keys": keys, "starts": np.r_[starts, len(order)], "order": order}

    def verify(self, pos: int, rows: np.ndarray) -> None:
        """Raise DamagedFileError unless chunk ``rows`` write every pixel of image row ``pos`` exactly once
        (checked once per image; chunk ids are checked unique across the index on the first call).

        A chunk missing, repeated, overlapping or outside the image would otherwise read as
        whatever memory held before.
        """
        if pos in self._verified:
            return
        row = self.row(pos)
        first = np.searchsorted(self.index_part, self.index_part[rows], side="left") if len(rows) else rows
        check_image_chunks(f"{self.path} [{self.index_names[int(self.image_part[pos])]}]", str(row["image_id"]),
                           [int(row[f"size_{a}"]) for a in "tczyx"], self.columns, rows, rows - first)
        if not self._verified:
            owned = self.columns["chunk_id"][self.row_images() >= 0]
            check_unique(owned, f"{self.path} [{', '.join(self.index_names)}]", "chunk_id")
        self._verified.add(pos)

    def bound(self, pos: int, rows: np.ndarray) -> None:
        """Raise DamagedFileError when image row ``pos`` declares more pixel bytes than its chunk ``rows``' row groups hold.

        Checked once per image, from the chunk files' footers, before any output is allocated.
        """
        if pos in self._bounded or self.fragment_code is None:
            return
        row = self.row(pos)
        declared = math.prod(int(row[f"size_{a}"]) for a in "tczyx") * np.dtype(row["dtype"]).itemsize
        held = 0
        codes = self.fragment_code[rows]
        groups = self.columns["row_group_id"][rows].astype(np.int64)
        for code in np.unique(codes).tolist():
            sizes = self.fragment(code).group_bytes
            mine = np.unique(groups[codes == code])
            if sizes is None or mine.min(initial=0) < 0 or mine.max(initial=0) >= len(sizes) or (sizes[mine] < 0).any():
                return  # unknown (or out of range: reading says so)
            held += int(sizes[mine].sum())
        if declared > held:
            raise DamagedFileError(
                f"image {row['image_id']!r} of {self.path} declares {declared} bytes of pixels, but the row groups of "
                f"its chunks hold at most {held}; images.parquet or index.parquet is damaged or lying"
            )
        self._bounded.add(pos)

    def read_check(self, code: int) -> ReadCheck:
        """What the index says about the rows of chunk file ``code`` (built on first use)."""
        hit = self._checks.get(code)
        if hit is None:
            assert self.fragment_code is not None
            mine = np.nonzero((self.fragment_code == code) & (self.row_images() >= 0))[0]  # rows some image reads
            hit = self._checks[code] = ReadCheck(
                self.path, str(self.path / self.fragment_names[code]),
                self.columns["row_group_id"][mine].astype(np.int64), self.columns["row_index_in_group"][mine].astype(np.int64),
                self.columns["chunk_id"][mine].astype(np.int64), self.row_dtypes()[mine].tolist(),
                self.index_part[mine], self.index_names,
                self.columns, self.index.column("image_id"), mine,
            )
        return hit

    def row_images(self) -> np.ndarray:
        """The image row of each index row (-1 for rows of no image of their part: left by an interrupted write)."""
        if self._row_images is None:
            if self.table.num_rows == 1:
                self._row_images = np.zeros(self.index.num_rows, dtype=np.int64)
                return self._row_images
            self._build_groups()
            assert self._groups is not None and self._image_keys is not None
            keys, starts, order = self._groups["keys"], self._groups["starts"], self._groups["order"]
            at = np.minimum(np.searchsorted(keys, self._image_keys), max(len(keys) - 1, 0))
            has = (self._image_keys >= 0) & (len(keys) > 0)
            if len(keys):
                has &= keys[at] == self._image_keys
            image_of_group = np.full(len(keys), -1, dtype=np.int64)
            image_of_group[at[has]] = np.nonzero(has)[0]  # ids are unique per part (checked at open)
            out = np.full(self.index.num_rows, -1, dtype=np.int64)
            out[order] = np.repeat(image_of_group, np.diff(starts))
            self._row_images = out
        return self._row_images

    def row_dtypes(self) -> np.ndarray:
        """The dtype name of the image of each index row (None for rows of no image)."""
        distinct, codes = dictionary_codes(self.table.column("dtype"), "")
        known = np.array([dtype_name(v) for v in distinct] + [None], dtype=object)
        per_image = np.concatenate([known[codes], np.array([None], dtype=object)])
        picked: np.ndarray = per_image[self.row_images()]  # -1 picks the trailing None
        return picked

    def fragment(self, code: int) -> Fragment:
        """The chunks file ``fragment_names[code]``, opened once (Parquet, or a chunk store's format)."""
        hit = self._files.get(code)
        if hit is None:
            hit = self._files[code] = self._paged(code) or open_fragment(self.path, self.fragment_names[code])
        return hit

    def _paged(self, code: int) -> Fragment | None:
        """Chunks file ``code`` read by the page ranges its index rows give (None: it has none; read its footer)."""
        assert self.fragment_code is not None
        name = self.fragment_names[code]
        if not listed_codec(self.path, self.manifest, name)[0]:
            return None
        rows = np.nonzero(self.fragment_code == code)[0]
        parts = np.unique(self.index_part[rows])
        if len(parts) != 1:  # a chunks file is written by one part
            return None
        part = int(parts[0])
        local = rows - int(np.searchsorted(self.index_part, part))
        pixels = np.ones(len(rows), dtype=np.int64)
        for a in "tczyx":
            pixels *= self.columns[f"shape_{a}"][rows].astype(np.int64)
        return paged_fragment(self.path, name, self.manifest, self.path / self.index_names[part], local,
                              self.columns["row_group_id"][rows].astype(np.int64),
                              self.columns["row_index_in_group"][rows].astype(np.int64), rows, pixels,
                              lambda row: self.where(row)[1])

    def read_groups(self, code: int, groups: np.ndarray) -> tuple[pa.ChunkedArray, dict[int, int], np.ndarray]:
        """``pixel_bytes`` of row groups ``groups`` (ascending) of one fragment (one read), the first
        row of each group in the result, and the start of each Arrow chunk of the result."""
        frag = self.fragment(code)
        group_rows = frag.group_rows
        bad = groups[(groups < 0) | (groups >= len(group_rows))]
        if len(bad):
            unit = "row groups" if isinstance(frag, ParquetFragment) else "rows"
            raise DamagedFileError(
                f"the index of {self.path} points at {unit} {bad.tolist()[:5]} of "
                f"{self.fragment_names[code]}, which has {len(group_rows)}; the dataset is damaged"
            )
        check = self.read_check(code)
        with self.lock:
            table = frag.read(groups, audit=check.unaudited(groups))
        first = np.cumsum(np.r_[0, group_rows[groups][:-1]]).astype(np.int64)
        check.check(groups, group_rows, first, table)
        col = table.column("pixel_bytes")
        base = dict(zip(groups.tolist(), first.tolist()))
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
    check_manifest_members(path, manifest, MANIFEST)
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
    fragments: dict[str, Fragment] = {}

    def fragment_rows(name: str, ranged: bool = True) -> int:
        if ranged and listed_codec(path, manifest, name)[0]:  # read by page ranges: bounded by its size, no footer parsed
            return ranged_rows_bound(path / name)
        if name not in fragments:
            fragments[name] = open_fragment(path, name)
        return int(fragments[name].group_rows.sum())

    try:  # footers only: lying row counts fail before any table is read
        check_table_rows(path, parts, fragment_rows)
    except DamagedFileError:
        if not (ours.get(PAGES_KEY) or {}):
            raise
        # files rewritten by other tools may not be what the manifest's page ranges say: their footers decide
        check_table_rows(path, parts, lambda name: fragment_rows(name, ranged=False))
    schema = images_schema(path, parts)
    repeated = [f.name for f in schema if f.name != "image_id" and pa.types.is_string(f.type)]
    images, image_part = read_images(path, parts, dictionary=repeated)  # a plate repeats its channels and units
    index, index_part = read_indexes(path, parts, dictionary=True)
    names, codes = dictionary_codes(index.column("fragment_path"), "chunks.parquet")
    names = [check_member(path, n, f"the index tables of {path}", "chunk file") for n in names]
    opened = _Opened(manifest, images, index, threading.Lock(), path, image_part, index_part, names, codes,
                     index_names=[p.index for p in parts])
    opened._files.update({names.index(n): f for n, f in fragments.items() if n in names})
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
        opened.bound(pos, mine)
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
            raise DamagedFileError(f"chunk {r} of {self.path} holds {nbytes} bytes; its shape {shape} needs "
                                   f"{int(np.prod(shape)) * dt.itemsize}")
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

    The row groups all of them need are read with one call per chunk file and batch of
    about :data:`READ_BATCH_BYTES`, each batch placed into the outputs before the next is
    read: a batch of small images costs one Parquet read, a large selection about its own
    size plus one batch.
    """
    if not requests:
        return
    rows_of = [src._chunks.intersecting(sel) for src, sel, _ in requests]
    for (src, sel, out), rows in zip(requests, rows_of):
        if out.shape != sel.shape:
            raise ValueError(f"out has shape {out.shape}; the selection needs {sel.shape}")
    # per chunk file: (request, chunk row) of each row group, and the pixel bytes of each group
    plan: dict[tuple[int, int], tuple[_Opened, dict[int, list[tuple[int, int]]], dict[int, int]]] = {}
    for k, ((src, _, _), rows) in enumerate(zip(requests, rows_of)):
        nbytes = src._chunks.shape[rows].prod(axis=1) * src.meta.dtype.itemsize
        for r, size in zip(rows.tolist(), nbytes.tolist()):
            key = (id(src._opened), int(src._frag[r]))
            opened, users, sizes = plan.setdefault(key, (src._opened, {}, {}))
            g = int(src._rg[r])
            users.setdefault(g, []).append((k, r))
            sizes[g] = sizes.get(g, 0) + int(size)
    checked: dict[int, set[int]] = {id(src._opened): set() for src, _, _ in requests}  # each chunk once per read
    for (_, code), (opened, users, sizes) in plan.items():
        for groups in _batches(sorted(users), sizes):
            col, base, starts = opened.read_groups(code, np.array(groups, dtype=np.int64))
            for g in groups:
                for k, r in users[g]:
                    src, sel, out = requests[k]
                    src._chunks.place(r, src._block(r, col, base, starts, checked[id(src._opened)]), sel, out)
            del col
    for (src, _, _), rows in zip(requests, rows_of):
        src.chunks_read += len(rows)
        src.row_groups_read += len({(int(src._frag[r]), int(src._rg[r])) for r in rows})


def _batches(groups: list[int], sizes: dict[int, int]) -> list[list[int]]:
    """``groups`` (ascending) cut into runs of about :data:`READ_BATCH_BYTES` pixel bytes (at least one group each)."""
    out: list[list[int]] = [[]]
    total = 0
    for g in groups:
        if out[-1] and total + sizes.get(g, 0) > READ_BATCH_BYTES:
            out.append([])
            total = 0
        out[-1].append(g)
        total += sizes.get(g, 0)
    return out


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
    dtypes = {p: opened.row(p)["dtype"] for p in positions if 0 <= p < n_images}
    boxes = [_contiguous(s) for s in sels]
    picked: list[np.ndarray] = []
    for pos, sel, out in zip(positions, sels, outs):
        if not 0 <= pos < n_images:
            raise SchemaError(f"row {pos} out of range; {path} holds images 0..{n_images - 1}")
        if out.shape != sel.shape:
            raise ValueError(f"out has shape {out.shape}; the selection of row {pos} needs {sel.shape}")
        picked.append(opened.chunk_rows(pos))
        opened.verify(pos, picked[-1])
        opened.bound(pos, picked[-1])
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
    item = np.array([np.dtype(dtypes[p]).itemsize for p in positions], dtype=np.int64)[owner]
    lo_box = np.array([b[0] if b is not None else np.zeros(5, np.int64) for b in boxes], dtype=np.int64)[owner]
    hi_box = np.array([b[1] if b is not None else np.zeros(5, np.int64) for b in boxes], dtype=np.int64)[owner]
    lo = np.maximum(origin, lo_box)
    hi = np.minimum(origin + shape, hi_box)
    src_lo, src_hi, dst_lo, dst_hi = (lo - origin).tolist(), (hi - origin).tolist(), (lo - lo_box).tolist(), (hi - lo_box).tolist()
    dts = [np.dtype(dtypes[p]).newbyteorder("<") for p in positions]
    o_list, s_list = owner.tolist(), shape.tolist()
    nbytes = np.prod(shape, axis=1) * item
    # one read per chunk file and batch of row groups; each batch is placed into outs before the next is read
    for code in np.unique(codes).tolist():
        in_file = np.nonzero(codes == code)[0]
        groups = np.unique(rg[in_file])
        sizes = dict(zip(groups.tolist(), np.bincount(np.searchsorted(groups, rg[in_file]), weights=nbytes[in_file],
                                                      minlength=len(groups)).astype(np.int64).tolist()))
        for batch in _batches(groups.tolist(), sizes):
            mine = in_file[np.isin(rg[in_file], batch)]
            data: dict[int, pa.Buffer] = {}
            start = np.zeros(len(every), dtype=np.int64)
            stop = np.zeros(len(every), dtype=np.int64)
            arrow_col, base, starts = opened.read_groups(int(code), np.array(batch, dtype=np.int64))
            first = np.array([base[g] for g in batch], dtype=np.int64)
            at = first[np.searchsorted(np.array(batch), rg[mine])] + rig[mine]
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
            bad = mine[stop[mine] - start[mine] != nbytes[mine]]
            if len(bad):
                j = int(bad[0])
                raise DamagedFileError(f"chunk {int(col['chunk_id'][every[j]])} of {path} holds {int(stop[j] - start[j])} "
                                       f"bytes; its shape {tuple(shape[j].tolist())} needs {int(nbytes[j])}")
            if verify_enabled(verify):  # each chunk once (a chunk row lies in one batch)
                sums = opened.sums
                for j in mine[np.unique(every[mine], return_index=True)[1]].tolist():
                    row = int(every[j])
                    sums.check(row, data[j], int(start[j]), int(stop[j] - start[j]), lambda: opened.where(row))
            start_l = start.tolist()
            for j in mine.tolist():
                k = o_list[j]
                dt, out, box = dts[k], outs[k], boxes[k]
                s = s_list[j]
                block = np.frombuffer(data[j], dtype=dt, count=s[0] * s[1] * s[2] * s[3] * s[4],
                                      offset=start_l[j]).reshape(s)
                if box is None:
                    ChunkTable(origin[j : j + 1], shape[j : j + 1]).place(0, block, sels[k], out)
                    continue
                a, b, c, d = src_lo[j], src_hi[j], dst_lo[j], dst_hi[j]
                src = block[a[0] : b[0], a[1] : b[1], a[2] : b[2], a[3] : b[3], a[4] : b[4]]
                out[c[0] : d[0], c[2] : d[2], c[1] : d[1], c[3] : d[3], c[4] : d[4]] = src.transpose(0, 2, 1, 3, 4)
            del arrow_col, data
