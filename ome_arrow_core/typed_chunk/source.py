"""One image of a typed-chunk dataset as a pixel source: reads only the row groups a selection touches."""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..boundary import blaming, reading
from ..buffers import arrow_empty, view_buffer
from ..checksums import verify_enabled
from ..chunks import ChunkProjection, ChunkTable
from ..errors import ArgumentError, SchemaError
from ..meta import ImageMeta
from ..registry import Registry
from ..remote import remote_chunk
from ..selection import Selection
from .box_plans import BoxPlan, box_key, plan_box
from .chunk_reads import Placement, audited_pages, audited_piece, one_block, piece_block, read_placements
from .fragments import ParquetFragment
from .kept_plans import plans_of
from .locators import image_locator, read_located
from .opened import OpenedDataset
from .opening import open_dataset
from .whole_chunks import WholeChunk, whole_blocks, whole_blocks_into, whole_chunk
from .whole_native import read_whole, whole_item

__all__ = ["DatasetSource", "image_meta"]

#: Each opened dataset's chunk table per image row, built once (with its grid) and shared by every source of
#: that image: an opened dataset stands for one version of the files (see ``opening``), so its tables do too.
#: Keyed by ``id(opened)``; an entry goes with its opened dataset.
_TABLES: dict[int, dict[int, ChunkTable]] = {}
_TABLES_LOCK = threading.Lock()


class DatasetSource:
    """One image of a typed-chunk dataset; reads only the row groups a selection touches.

    Opening parses the manifest, the images and index tables it lists (the base ones, then
    each append's) once per process and file version (a small cache keyed by path, inode,
    size and mtime), and each chunk file on first use, so repeated scans are cheap and
    finding one image among many is a lookup. Chunks may live in several files
    (``fragment_path`` of the index: appends add ``chunks-00001.parquet``...), Parquet or
    a chunk store's format (``chunks.vortex``).
    """

    def __init__(
        self,
        path: Path,
        row: int = 0,
        image_id: str | None = None,
        *,
        verify: bool | None = None,
        registry: Registry | None = None,
    ) -> None:
        """Image ``row`` (or ``image_id``) of the dataset at ``path``; ``verify=False`` skips checksum checks
        on read (None: unless the environment sets ``OME_ARROW_CORE_VERIFY=0``)."""
        self.verify = verify
        with reading(path, None, "opening the dataset"), blaming(path):
            self._init(path, open_dataset(path, registry, verify), row, image_id)

    def _init(self, path: Path, opened: OpenedDataset, row: int, image_id: str | None) -> None:
        self.path = path
        self._opened = opened
        self.manifest = opened.manifest
        self.image_count = opened.image_count
        if image_id is not None:
            pos = opened.position(str(image_id))
        else:
            if not 0 <= row < self.image_count:
                raise ArgumentError(f"row {row} out of range; {path} holds images 0..{self.image_count - 1}")
            pos = row
        self.position = pos
        self.meta = opened.meta(pos)
        self._lock = opened.lock
        self._chunk_table: ChunkTable | None = None
        self._rows_of: np.ndarray | None = None
        #: Where the pixels of a one-chunk image with a pixel locator lie (read with one positioned read, without
        #: its index rows; see :mod:`.locators`); None: read through the index.
        self._located = image_locator(opened, pos)
        #: The remote chunks object its locator points into (its pixels then come in one ranged GET), else None.
        self._remote = None if self._located is None else remote_chunk(path / self._located.file)
        if self._located is None:
            self._load_chunks()
        self.chunks_read = 0
        self.row_groups_read = 0
        #: Read plans of the boxes this image's sources read lately (see :mod:`.kept_plans`), by their TZCYX ranges.
        self._plans = plans_of(opened, pos)

    def _load_chunks(self) -> None:
        """This image's index rows and chunk table (its index row group loaded), checked to cover it exactly."""
        opened, pos = self._opened, self.position
        mine = opened.chunk_rows(pos)
        if len(mine) == 0:
            raise SchemaError(
                f"image {self.meta.id!r} of {self.path} has no chunks in the index; the dataset is damaged"
            )
        table = _chunk_table(opened, pos, mine)
        opened.verify(pos, mine, table)
        opened.bound(pos, mine)
        self._chunk_table, self._rows_of = table, mine

    @property
    def _chunks(self) -> ChunkTable:
        """This image's chunk table (loaded on first use for an image read by its pixel locator)."""
        if self._chunk_table is None:
            self._load_chunks()
        assert self._chunk_table is not None
        return self._chunk_table

    @property
    def _index_rows(self) -> np.ndarray:
        """The index row of each of this image's chunks (rows of ``_chunks``)."""
        if self._rows_of is None:
            self._load_chunks()
        assert self._rows_of is not None
        return self._rows_of

    def _pixels(self) -> np.ndarray:
        """All pixels (TZCYX, read-only) of an image with a pixel locator: one positioned read, checked."""
        assert self._located is not None
        m = self.meta
        algorithm = (self.manifest.get("ome_arrow_core") or {}).get("checksum")
        block = read_located(
            self.path,
            self._located,
            [m.sizes[a] for a in "TCZYX"],
            m.dtype,
            verify_enabled(self.verify),
            algorithm,
            f"image {m.id!r}",
            data=None if self._remote is None else self._remote.read_at(self._located.offset, self._located.length),
        )
        self._count(1)
        return block.transpose(0, 2, 1, 3, 4)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles as its location; unpickling reopens it (through the per-process cache, with the shared registry
        of the receiving process, as OMEArrowDataset does)."""
        return (_reopen, (self.path, self.position, self.verify))

    def describe(self) -> dict[str, Any]:
        """Storage facts for ``info()`` (row groups and codec of this image's first chunk file)."""
        nbytes = sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())
        assert self._opened.fragment_code is not None
        frag = self._opened.fragment(int(self._opened.fragment_code[self._index_rows[0]]))
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
            codec = (
                md.row_group(0).column(md.schema.names.index("pixel_bytes")).compression if md.num_row_groups else None
            )
            facts["compression"] = None if codec is None else "none" if codec == "UNCOMPRESSED" else codec.lower()
        else:
            facts["rows"] = len(frag.group_rows)
            facts["compression"] = self._opened.row(self.position).get("compression")
        return facts

    def read(self, sel: Selection) -> np.ndarray:
        """The selected pixels (TZCYX); a zero-copy view when the selection is one whole chunk."""
        with reading(self.path, None, "reading pixels"), blaming(self.path):
            return self._read(sel)

    def _read(self, sel: Selection) -> np.ndarray:
        if self._located is not None:
            return _selected(self._pixels(), sel)
        key = box_key(sel)
        plan = self._plans.get(key)
        if plan is not None:  # this box was read before: its plan reads (and checks) it again
            if isinstance(plan, WholeChunk):
                verify = verify_enabled(self.verify)
                block = read_whole(self._opened, plan, self.meta.dtype, verify)  # by the C kernel, where it can
                if block is None:
                    block = piece_block(self._opened, plan.piece, plan.row, plan.shape, self.meta.dtype, verify)
                self._count(1)
                return block.transpose(0, 2, 1, 3, 4)
            return self._by_plan(plan)
        projections = self._chunks.projections(sel)
        if whole_chunk(projections):  # the buffer read is the answer
            got = self._whole_chunk(projections[0])
            if key is not None and self._plans.again(key):
                self._whole_plan(key, projections[0])
            return got
        if key is not None and self._plans.again(key):  # a box read again: planned, and read by its plan already
            plan = self._plan(key, projections, sel.shape)
            if plan is not None:
                return self._by_plan(plan)
        out, buf = arrow_empty(sel.shape, self.meta.dtype)
        self._place(projections, out)
        return view_buffer(buf, self.meta.dtype, sel.shape)

    def _by_plan(self, plan: BoxPlan) -> np.ndarray:
        """The box ``plan`` reads, read (and checked) by it."""
        out = plan.read(verify_enabled(self.verify))
        self._count(len(plan.items))
        return out

    def _plan(
        self, key: tuple[range, ...], projections: list[ChunkProjection], shape: tuple[int, ...]
    ) -> BoxPlan | None:
        """The plan of box ``key``, remembered, when it can have one (every chunk audited by now: see plan_box)."""
        rows = self._index_rows[[p.row for p in projections]].tolist()
        plan = plan_box(self._opened, rows, projections, shape, self.meta.dtype)
        if plan is not None:
            self._plans.keep(key, plan)
        return plan

    def _whole_plan(self, key: tuple[range, ...], projection: ChunkProjection) -> None:
        """Remember where box ``key``, one whole chunk just read (and so audited), lies, when it is read by page range."""
        row = int(self._index_rows[projection.row])
        piece = audited_piece(self._opened, row)
        if piece is not None:
            dtype, shape = self.meta.dtype, projection.chunk_shape
            item = whole_item(piece[0], piece[1], math.prod(shape) * dtype.itemsize, dtype)
            self._plans.keep(key, WholeChunk(piece, row, shape, item))

    def _count(self, chunks: int) -> None:
        """Count ``chunks`` chunks read, each its own row group."""
        self.row_groups_read += chunks
        self.chunks_read += chunks

    def read_many(self, sels: Sequence[Selection]) -> list[np.ndarray]:
        """The pixels of each of ``sels`` (TZCYX), each in its own buffer, read together: the chunks they touch
        are fetched in one batched read, each checked (length, checksum) once however many selections share it; a
        selection that is one whole chunk is a view of the buffer that chunk was read into (as :meth:`read`)."""
        with reading(self.path, None, "reading pixels"), blaming(self.path):
            if self._located is not None and sels:
                pixels = self._pixels()
                return [_selected(pixels, sel) for sel in sels]
            together = self._whole_together(sels)
            if together is not None:
                return together
            dtype = self.meta.dtype
            outs: list[np.ndarray] = []
            placements: list[Placement] = []
            each = [self._chunks.projections(sel) for sel in sels]
            placed = {p.row for ps in each if not whole_chunk(ps) for p in ps}
            whole = self._whole_chunks(each, placed)  # selections that are one whole chunk no other reads
            singles: dict[int, np.ndarray] = {}  # such chunks read one by one (when they could not be together)
            for sel, projections in zip(sels, each):
                if whole_chunk(projections) and projections[0].row not in placed:
                    block = whole.get(projections[0].row)
                    if block is not None:
                        outs.append(block.view())  # a view of its own (a chunk asked for twice: two views)
                        continue
                    if audited_pages(self._opened, int(self._index_rows[projections[0].row])):
                        outs.append(self._whole_chunk(projections[0], singles))
                        continue
                out, buf = arrow_empty(sel.shape, dtype)
                outs.append(view_buffer(buf, dtype, sel.shape))
                placements += self._placements(projections, out)
            self._fetch(placements)
            return outs

    def read_many_into(self, sels: Sequence[Selection], outs: Sequence[np.ndarray]) -> bool:
        """Read each of ``sels`` straight into ``outs[i]`` (writable, TZCYX of its shape: a stack's slices), every
        check made, where each is a whole chunk (no two the same) the C kernel reads into ``outs[i]`` as it lies;
        False, ``outs`` partly written or not, where not (:meth:`read_many` reads them then)."""
        with reading(self.path, None, "reading pixels"), blaming(self.path):
            found = self._chunks.whole_chunks(sels) if self._located is None else None
            if found is None or len(set(found[0])) != len(sels):
                return False
            rows, shapes = found
            tczyx = [o.transpose(0, 2, 1, 3, 4) for o in outs]
            index_rows = self._index_rows[rows].tolist()
            if not whole_blocks_into(
                self._opened, index_rows, shapes, self.meta.dtype, tczyx, verify_enabled(self.verify)
            ):
                return False
            self._count(len(rows))
            return True

    def _whole_together(self, sels: Sequence[Selection]) -> list[np.ndarray] | None:
        """The pixels of ``sels`` when each is a whole chunk and no two the same (a stream of tiles that are its
        chunks), read together (:func:`~.whole_chunks.whole_blocks`) with no per-selection projection; None when
        they are not, or cannot be read so (then :meth:`read_many` reads them its usual way)."""
        found = self._chunks.whole_chunks(sels) if len(sels) > 1 else None
        if found is None:
            return None
        rows, shapes = found
        if len(set(rows)) != len(rows):
            return None
        blocks = whole_blocks(
            self._opened, self._index_rows[rows].tolist(), shapes, self.meta.dtype, verify_enabled(self.verify)
        )
        if blocks is None:
            return None
        self._count(len(rows))
        return blocks

    def _whole_chunks(self, each: list[list[ChunkProjection]], placed: set[int]) -> dict[int, np.ndarray]:
        """The pixels (TZCYX) of the whole chunks that selections with projections ``each`` are, by chunk table
        row (those in ``placed`` excepted), read together (:func:`~.whole_chunks.whole_blocks`); empty when they
        cannot be (then each is read on its own)."""
        todo = {ps[0].row: ps[0].chunk_shape for ps in each if whole_chunk(ps) and ps[0].row not in placed}
        if len(todo) < 2:
            return {}
        rows = list(todo)
        blocks = whole_blocks(
            self._opened,
            [int(self._index_rows[r]) for r in rows],
            list(todo.values()),
            self.meta.dtype,
            verify_enabled(self.verify),
        )
        if blocks is None:
            return {}
        self._count(len(rows))
        return dict(zip(rows, blocks))

    def _whole_chunk(self, projection: ChunkProjection, read: dict[int, np.ndarray] | None = None) -> np.ndarray:
        """The pixels (TZCYX) of a selection that is one whole chunk: a read-only view of the buffer its page was
        read into (no copy), checked as every read is; ``read`` keeps the blocks read by this call's caller, so a
        chunk several selections are is read and checked once."""
        row = int(self._index_rows[projection.row])
        block = read.get(row) if read is not None else None
        if block is None:
            block = one_block(self._opened, row, projection.chunk_shape, self.meta.dtype, verify_enabled(self.verify))
            self.row_groups_read += 1
            self.chunks_read += 1
            if read is not None:
                read[row] = block
        return block.transpose(0, 2, 1, 3, 4)

    def read_into(self, sel: Selection, out: np.ndarray) -> None:
        """Write the selected pixels into ``out``, a writable TZCYX array (or strided view) of ``sel.shape``."""
        with reading(self.path, None, "reading pixels"), blaming(self.path):
            if out.shape != sel.shape:
                raise ValueError(f"out has shape {out.shape}; the selection needs {sel.shape}")
            if self._located is not None:
                out[...] = sel.apply(self._pixels())
                return
            key = box_key(sel)
            plan = self._plans.get(key)
            if isinstance(plan, BoxPlan):
                plan.read_into(out, verify_enabled(self.verify))
                self._count(len(plan.items))
                return
            self._place(self._chunks.projections(sel), out)

    def _place(self, projections: list[ChunkProjection], out: np.ndarray) -> None:
        """Read the chunks of ``projections`` (rows of this image's chunk table) into ``out``."""
        self._fetch(self._placements(projections, out))

    def _placements(self, projections: list[ChunkProjection], out: np.ndarray) -> list[Placement]:
        """Where each chunk of ``projections`` (rows of this image's chunk table) lands in ``out``."""
        return [Placement(int(self._index_rows[p.row]), p, out, self.meta.dtype) for p in projections]

    def _fetch(self, placements: list[Placement]) -> None:
        """Read and place ``placements`` in one batch, counting row groups and chunks read."""
        self.row_groups_read += read_placements(self._opened, placements, self.verify)
        self.chunks_read += len(placements)


def _selected(pixels: np.ndarray, sel: Selection) -> np.ndarray:
    """Selection ``sel`` of an image's whole ``pixels`` (TZCYX, read-only): themselves when it is all of them,
    else a copy of its own."""
    if sel == Selection.full(dict(zip("TZCYX", pixels.shape))):
        return pixels
    return np.array(sel.apply(pixels), copy=True, order="C")


def _chunk_table(opened: OpenedDataset, pos: int, rows: np.ndarray) -> ChunkTable:
    """The chunk table of image row ``pos`` (index rows ``rows``) of ``opened``, made once per opened dataset."""
    with _TABLES_LOCK:
        tables = _TABLES.get(id(opened))
        if tables is None:
            tables = _TABLES[id(opened)] = {}
            weakref.finalize(opened, _TABLES.pop, id(opened), None)
        hit = tables.get(pos)
        if hit is None:
            hit = tables[pos] = opened.chunk_table(rows)
        return hit


def _reopen(path: Path, position: int, verify: bool | None) -> DatasetSource:
    """A DatasetSource unpickled: image row ``position`` of ``path`` reopened (through the per-process cache)."""
    return DatasetSource(path, position, verify=verify)


def image_meta(path: Path, row: int, registry: Registry | None = None) -> ImageMeta:
    """The metadata of image row ``row`` of the dataset at ``path`` (from the per-process cache)."""
    with blaming(path):
        return open_dataset(path, registry).meta(row)
