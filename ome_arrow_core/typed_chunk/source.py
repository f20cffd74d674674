"""One image of a typed-chunk dataset as a pixel source: reads only the row groups a selection touches."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..boundary import blaming, reading
from ..buffers import arrow_empty, view_buffer
from ..checksums import verify_enabled
from ..chunks import ChunkTable
from ..errors import ArgumentError, DamagedFileError, SchemaError
from ..meta import ImageMeta
from ..selection import Selection
from .fragments import ParquetFragment
from .image_rows import meta_from_row
from .opened import OpenedDataset, open_dataset
from .rows import row_group_batches

__all__ = ["DatasetSource", "read_many", "image_meta"]


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
            self._init(path, open_dataset(path), row, image_id)

    def _init(self, path: Path, opened: OpenedDataset, row: int, image_id: str | None) -> None:
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
        self.meta = meta_from_row(opened.row(pos))
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
        # per chunk row of this image: its index row, row group, row within that group, chunk file (code)
        self._index_rows = mine
        self._row_group = col["row_group_id"][mine].astype(np.int64)
        self._row_in_group = col["row_index_in_group"][mine].astype(np.int64)
        assert opened.fragment_code is not None
        self._chunk_file = opened.fragment_code[mine]
        self.chunks_read = 0
        self.row_groups_read = 0

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles as its location; unpickling reopens it (through the per-process cache)."""
        return (_reopen, (self.path, self.position, self.verify))

    def describe(self) -> dict[str, Any]:
        """Storage facts for ``info()`` (row groups and codec of this image's first chunk file)."""
        nbytes = sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())
        frag = self._opened.fragment(int(self._chunk_file[0]))
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
        for code in np.unique(self._chunk_file[rows]):
            at = np.nonzero(self._chunk_file[rows] == code)[0]
            groups = np.unique(self._row_group[rows[at]])
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
        pos = base[int(self._row_group[r])] + int(self._row_in_group[r])
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
    plan: dict[tuple[int, int], tuple[OpenedDataset, dict[int, list[tuple[int, int]]], dict[int, int]]] = {}
    for k, ((src, _, _), rows) in enumerate(zip(requests, rows_of)):
        nbytes = src._chunks.shape[rows].prod(axis=1) * src.meta.dtype.itemsize
        for r, size in zip(rows.tolist(), nbytes.tolist()):
            key = (id(src._opened), int(src._chunk_file[r]))
            opened, users, sizes = plan.setdefault(key, (src._opened, {}, {}))
            g = int(src._row_group[r])
            users.setdefault(g, []).append((k, r))
            sizes[g] = sizes.get(g, 0) + int(size)
    checked: dict[int, set[int]] = {id(src._opened): set() for src, _, _ in requests}  # each chunk once per read
    for (_, code), (opened, users, sizes) in plan.items():
        for groups in row_group_batches(sorted(users), sizes):
            col, base, starts = opened.read_groups(code, np.array(groups, dtype=np.int64))
            for g in groups:
                for k, r in users[g]:
                    src, sel, out = requests[k]
                    src._chunks.place(r, src._block(r, col, base, starts, checked[id(src._opened)]), sel, out)
            del col
    for (src, _, _), rows in zip(requests, rows_of):
        src.chunks_read += len(rows)
        src.row_groups_read += len({(int(src._chunk_file[r]), int(src._row_group[r])) for r in rows})


def _reopen(path: Path, position: int, verify: bool | None) -> DatasetSource:
    """A DatasetSource unpickled: image row ``position`` of ``path`` reopened (through the per-process cache)."""
    return DatasetSource(path, position, verify=verify)


def image_meta(path: Path, row: int) -> ImageMeta:
    """The metadata of image row ``row`` of the dataset at ``path`` (from the per-process cache)."""
    return meta_from_row(open_dataset(path).row(row))
