"""The images tables of an opened dataset, read by the row group: a row costs its row group, not the table.

Opening reads the footers only (each part's row counts per row group); a row is read with
the rest of its row group (the most recent :data:`GROUPS_KEPT` groups kept in Arrow memory: random access over a
million images stays bounded) and only that row becomes a dict; an image's metadata and pixel locator read only
their columns of its row group (:data:`IMAGE_COLUMNS`), each column chunk decoded once per distinct content (see
:mod:`.group_chunks`); a column is read alone, once; the whole table only when asked for.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa

from .. import parquet_lite as pq
from ..arrow_numpy import as_list
from ..boundary import reading
from ..errors import DamagedFileError
from ..meta import ImageMeta
from ..uniques import unique
from .footers import footer, footers_of, group_starts
from .group_chunks import ChunkReuse, Decoded
from .group_sums import TableGuard
from .image_rows import META_COLUMNS, meta_from_row
from .record_reads import RECORD_COLUMNS, PartRecords
from .spec import LOCATOR_COLUMNS
from .tables import Part, read_images

__all__ = ["ImageRows", "ROWS_KEPT", "GROUPS_KEPT"]

#: Image rows kept as dicts (the most recently used; ~2 KiB each).
ROWS_KEPT = 4096
#: Images row groups kept decoded (the most recently used; a plate's holds 1,024 rows, ~0.1-0.3 MiB).
GROUPS_KEPT = 64
#: String columns of one value per image (each row's differs): a row group of at most :data:`PLAIN_ROWS` rows reads
#: them plain, not dictionary-encoded (a dictionary of 1,024 distinct names costs ~50 us a row group more to read
#: and holds each value once anyway).
PER_IMAGE: Final[frozenset[str]] = frozenset({"image_id", "name"})
#: Row groups larger than this read every repeated string dictionary-encoded, names too (a foreign table may be
#: one huge row group of images all named alike: as Python lists, a plain column would be a string per row).
PLAIN_ROWS: Final[int] = 65536
#: Images row groups kept as Python lists too (the most recently used; ~1-2 MiB each): a group is converted
#: whole once it has served one in :data:`_CONVERT_AFTER` of its rows (a scan of a plate), so that each further
#: row costs a dict, not a scalar per column.
LISTS_KEPT = 4
#: The columns reading an image needs (its metadata, its pixel locator): a row group's are decoded together when
#: some of them are asked for.
IMAGE_COLUMNS: Final[tuple[str, ...]] = (*META_COLUMNS, *LOCATOR_COLUMNS)
_IMAGE_SET: Final[frozenset[str]] = frozenset(IMAGE_COLUMNS)
_CONVERT_AFTER = 8


class ImageRows:
    """The images tables of ``parts`` (one row per image, parts in order): rows, columns, the table, on demand."""

    def __init__(
        self, path: Path, parts: Sequence[Part], dictionary: Sequence[str], guard: TableGuard | None = None
    ) -> None:
        """``dictionary``: string columns read dictionary-encoded (a plate repeats its channels and units);
        ``guard``: checks each row group before it is read (and the tables whole before they are read whole)."""
        self.path, self.parts, self.dictionary = path, list(parts), list(dictionary)
        self.guard = guard
        #: Each part's images table read a row group at a time without parsing its footer whole (None: parsed).
        self.footers = footers_of(path, [p.images for p in self.parts], guard)
        self.starts = [
            group_starts(path, p.images) if f is None else np.concatenate([[0], np.cumsum(f.group_rows)])
            for p, f in zip(self.parts, self.footers)
        ]
        counts = [int(s[-1]) for s in self.starts]
        #: What each part's row groups read dictionary-encoded (see :data:`PER_IMAGE`).
        self.group_dictionary = [
            [n for n in self.dictionary if n not in PER_IMAGE or (len(s) > 1 and int(np.diff(s).max()) > PLAIN_ROWS)]
            for s in self.starts
        ]
        self.first = np.concatenate([[0], np.cumsum(np.asarray(counts, dtype=np.int64))]).astype(np.int64)
        self._table: pa.Table | None = None
        self._columns: dict[str, pa.ChunkedArray] = {}
        self._files: dict[int, pq.ParquetFile] = {}
        #: Each part's images row groups decoded a column chunk at a time (see :mod:`.group_chunks`).
        self._chunks = [ChunkReuse(path / p.images) for p in self.parts]
        self._groups: OrderedDict[tuple[int, int], pa.RecordBatch] = OrderedDict()
        #: The columns of each row group decoded so far (the most recent :data:`GROUPS_KEPT` groups).
        self._decoded: OrderedDict[tuple[int, int], dict[str, Decoded]] = OrderedDict()
        #: Each part's schema as its row groups are read (known once one was).
        self._schemas: dict[int, pa.Schema] = {}
        self._names: dict[int, frozenset[str]] = {}
        self._rows: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._lists: OrderedDict[tuple[int, int], list[list[Any]]] = OrderedDict()
        self._values: OrderedDict[tuple[int, int, str], list[Any]] = OrderedDict()
        self._served: dict[tuple[int, int], int] = {}
        self._metas: OrderedDict[int, ImageMeta] = OrderedDict()
        #: Each part's image records (see :mod:`.image_records`), where it has usable ones.
        self.records = (
            None
            if guard is None
            else PartRecords(path, guard.manifest, [p.images for p in self.parts], self.first, guard.enabled)
        )
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return int(self.first[-1])

    def records_held(self) -> AbstractContextManager[None]:
        """A block during which the records files stay open (a batch's rows: see :meth:`PartRecords.held`)."""
        return nullcontext() if self.records is None else self.records.held(self._lock)

    def part_of(self) -> np.ndarray:
        """The part of each image row (read-only; one part: a broadcast zero, no array of a million images)."""
        if len(self.parts) == 1:
            return np.broadcast_to(np.int32(0), (len(self),))
        return np.repeat(np.arange(len(self.parts), dtype=np.int32), np.diff(self.first))

    def table(self) -> pa.Table:
        """Every images table as one table (read whole on first use)."""
        with self._lock:
            if self._table is None:
                self._check_whole()
                self._table = read_images(self.path, self.parts, dictionary=self.dictionary)[0]
            return self._table

    def column(self, name: str) -> pa.ChunkedArray:
        """Column ``name`` of every images table, read alone (once)."""
        with self._lock:
            if self._table is not None:
                return self._table.column(name)
            hit = self._columns.get(name)
            if hit is None:
                self._check_whole()
                hit = self._columns[name] = read_images(self.path, self.parts, [name], dictionary=self.dictionary)[
                    0
                ].column(name)
            return hit

    def _check_whole(self) -> None:
        if self.guard is not None:
            self.guard.whole([p.images for p in self.parts])

    def row(self, pos: int) -> dict[str, Any]:
        """Image row ``pos`` as a dict (read with its row group)."""
        with self._lock:
            hit = self._rows.get(pos)
            if hit is not None:
                self._rows.move_to_end(pos)
                return hit
            row = self._rows[pos] = self._row(pos)
            while len(self._rows) > ROWS_KEPT:
                self._rows.popitem(last=False)
            return row

    def _row(self, pos: int) -> dict[str, Any]:
        """Image row ``pos`` as a dict, made now (lock held)."""
        part, g, k = self.locate(pos)
        group = self._group(part, g)
        lists = self._group_lists((part, g), group)
        if lists is not None:
            return dict(zip(group.schema.names, [values[k] for values in lists]))
        reuse = self._chunks[part]  # one row's scalars (a sliced table's to_pylist converts slowly), or kept values
        row = {}
        for name, column in zip(group.schema.names, group.columns):
            values = reuse.values(column)
            row[name] = column[k].as_py() if values is None else values[k]
        return row

    def scalars(self, pos: int, names: Sequence[str]) -> list[Any]:
        """Columns ``names`` of image row ``pos`` (None for a column its table lacks): from its row when kept, else
        from those columns of its row group alone (no row made, no other column decoded)."""
        with self._lock:
            hit = self._rows.get(pos)
            if hit is not None:
                return [hit.get(n) for n in names]
            if self.records is not None and RECORD_COLUMNS.issuperset(names):
                rec = self.records.row(pos)
                if rec is not None:
                    return [rec[n] for n in names]
            part, g, k = self.locate(pos)
            columns = self._group_columns(part, g, names)
            if columns is not None:
                reuse = self._chunks[part]
                return [reuse.value(columns[n], k) if n in columns else None for n in names]
            group = self._group(part, g)
            have = group.schema.names
            return [group.column(have.index(n))[k].as_py() if n in have else None for n in names]

    def value(self, pos: int, name: str) -> Any:
        """Column ``name`` of image row ``pos``: of its row as :meth:`row` has it, or from its row group's column,
        converted to Python values once (a batch's dtypes need not convert every column of every row)."""
        with self._lock:
            hit = self._rows.get(pos)
            if hit is not None:
                return hit[name]
            part, g, k = self.locate(pos)
            return self._group_values(part, g, name)[k]

    def values(self, positions: Sequence[int], name: str) -> list[Any]:
        """:meth:`value` of many image rows, located together (a batch's rows: one search per part, not two per
        row; no row dict needed)."""
        parts, groups, within = self.locate_many(positions)
        with self._lock:
            return [self._group_values(p, g, name)[k] for p, g, k in zip(parts, groups, within)]

    def locate_many(self, positions: Sequence[int]) -> tuple[list[int], list[int], list[int]]:
        """:meth:`locate` of many image rows at once: (parts, row groups, rows in them), one entry per position."""
        pos = np.asarray(positions, dtype=np.int64)
        if not len(pos):
            return [], [], []
        if len(self.parts) == 1:
            parts = np.zeros(len(pos), dtype=np.int64)
        else:
            parts = np.searchsorted(self.first, pos, side="right") - 1
        groups = np.empty(len(pos), dtype=np.int64)
        within = np.empty(len(pos), dtype=np.int64)
        for part in (unique(parts) if len(self.parts) > 1 else parts[:1]).tolist():
            mine = np.flatnonzero(parts == part) if len(self.parts) > 1 else slice(None)
            local = pos[mine] - int(self.first[part])
            starts = self.starts[part]
            g = np.searchsorted(starts, local, side="right") - 1
            groups[mine], within[mine] = g, local - starts[g]
        return parts.tolist(), groups.tolist(), within.tolist()

    def _group_values(self, part: int, g: int, name: str) -> list[Any]:
        """Column ``name`` of row group ``g`` of ``part`` as Python values (converted once; call with the lock)."""
        values = self._values.get((part, g, name))
        if values is None:
            group = self._group(part, g)
            if name not in group.schema.names:
                raise KeyError(name)
            values = self._values[(part, g, name)] = as_list(group.column(name))
            while len(self._values) > GROUPS_KEPT:
                self._values.popitem(last=False)
        else:
            self._values.move_to_end((part, g, name))
        return values

    def _group_lists(self, key: tuple[int, int], group: pa.RecordBatch) -> list[list[Any]] | None:
        """The columns of row group ``key`` as Python lists, once it has served enough rows (else None)."""
        lists = self._lists.get(key)
        if lists is not None:
            self._lists.move_to_end(key)
            return lists
        served = self._served[key] = self._served.get(key, 0) + 1
        if served * _CONVERT_AFTER < group.num_rows:
            return None
        lists = self._lists[key] = [as_list(column) for column in group.columns]
        while len(self._lists) > LISTS_KEPT:
            self._lists.popitem(last=False)
        return lists

    def meta(self, pos: int) -> ImageMeta:
        """The metadata of image row ``pos`` (made once from its row, or from its :data:`META_COLUMNS` alone: the most
        recent :data:`ROWS_KEPT` are kept)."""
        with self._lock:
            hit = self._metas.get(pos)
            if hit is not None:
                self._metas.move_to_end(pos)
                return hit
            row = self._rows.get(pos)
            made = self.records.meta(pos) if row is None and self.records is not None else None
            if made is not None:  # from its image record
                self._metas[pos] = made
                while len(self._metas) > ROWS_KEPT:
                    self._metas.popitem(last=False)
                return made
            if row is None:  # its metadata's columns alone (see META_COLUMNS)
                part, g, k = self.locate(pos)
                columns = self._group_columns(part, g, META_COLUMNS)
                reuse = self._chunks[part]
                row = self._row(pos) if columns is None else {n: reuse.value(c, k) for n, c in columns.items()}
        meta = meta_from_row(row)  # ImageMeta is frozen: one object serves every source of the image
        with self._lock:
            self._metas[pos] = meta
            while len(self._metas) > ROWS_KEPT:
                self._metas.popitem(last=False)
        return meta

    def locate(self, pos: int) -> tuple[int, int, int]:
        """(part, row group in its images table, row in that group) of image row ``pos``."""
        part = int(np.searchsorted(self.first, pos, side="right")) - 1
        local = pos - int(self.first[part])
        g = int(np.searchsorted(self.starts[part], local, side="right")) - 1
        return part, g, local - int(self.starts[part][g])

    def group(self, part: int, g: int) -> pa.RecordBatch:
        """Row group ``g`` of the images table of ``part`` (read once)."""
        with self._lock:
            return self._group(part, g)

    def image_batch(self, part: int, g: int) -> pa.RecordBatch:
        """The columns of :data:`IMAGE_COLUMNS` (those the table has) of row group ``g`` of ``part``: what reading its
        images needs, the other columns not decoded."""
        with self._lock:
            columns = self._group_columns(part, g, IMAGE_COLUMNS)
            if columns is None:
                return self._group(part, g)
            return self._batch(part, columns)

    def _batch(self, part: int, columns: dict[str, Decoded]) -> pa.RecordBatch:
        """``columns`` of ``part``'s images table as a record batch (its schema's fields and metadata)."""
        schema = self._schemas[part]
        return pa.RecordBatch.from_arrays(
            [c.array for c in columns.values()],
            schema=pa.schema([schema.field(n) for n in columns], metadata=schema.metadata),
        )

    def _group(self, part: int, g: int) -> pa.RecordBatch:
        group = self._groups.get((part, g))
        if group is None:
            group = self._groups[(part, g)] = self._read_group(part, g)
            while len(self._groups) > GROUPS_KEPT:
                gone = self._groups.popitem(last=False)[0]
                self._lists.pop(gone, None)
                self._served.pop(gone, None)
        else:
            self._groups.move_to_end((part, g))
        return group

    def _file(self, part: int) -> pq.ParquetFile:
        """The images table of ``part`` opened with its whole footer (parsed once, and checked, at open)."""
        pf = self._files.get(part)
        if pf is None:  # repeated strings stay dictionary-encoded: a foreign table may be one huge row group
            name = self.parts[part].images
            md = footer(self.path, name)
            have = set(md.schema.to_arrow_schema().names)
            pf = self._files[part] = pq.ParquetFile(
                self.path / name,
                metadata=md,
                read_dictionary=[n for n in self.group_dictionary[part] if n in have] or None,
                **pq.LOCAL_READS,
            )
        return pf

    def _reader(self, part: int, g: int) -> tuple[pq.ParquetFile, int]:
        """A reader of row group ``g`` of the images table of ``part``, and that group's number in it (its bytes
        checked first)."""
        name = self.parts[part].images
        if self.guard is not None:
            self.guard.group(name, g)  # its bytes, before pyarrow decodes them
        by_group = self.footers[part]
        if by_group is not None and by_group.serves(g):  # its footer is not parsed whole
            return by_group.reader(g, [n for n in self.group_dictionary[part] if n in by_group.schema.names]), 0
        return self._file(part), g

    def _group_columns(self, part: int, g: int, names: Sequence[str] | None) -> dict[str, Decoded] | None:
        """Columns ``names`` (None: all; those the table lacks left out) of row group ``g`` of ``part``, each
        decoded once (see :mod:`.group_chunks`), or None when the group is to be read whole (lock held)."""
        key = (part, g)
        have = self._decoded.get(key)
        if have is None:
            have = self._decoded[key] = {}
            while len(self._decoded) > GROUPS_KEPT:
                self._decoded.popitem(last=False)
        else:
            self._decoded.move_to_end(key)
        schema = self._schemas.get(part)
        if schema is None or [n for n in (schema.names if names is None else names) if n not in have]:
            name = self.parts[part].images
            with reading(self.path, name, "reading an images row group"):
                pf, at = self._reader(part, g)
                dictionary = frozenset(self.group_dictionary[part])
                schema = self._schemas[part] = self._chunks[part].schema(pf, dictionary)
                table = self._names.setdefault(part, frozenset(schema.names))
                ask = IMAGE_COLUMNS if names is not None and _IMAGE_SET.issuperset(names) else names
                wanted = [
                    n for n in dict.fromkeys(schema.names if ask is None else ask) if n in table and n not in have
                ]
                got = self._chunks[part].read(pf, at, dictionary, wanted) if wanted else []
            if got is None:
                return None
            rows = int(self.starts[part][g + 1] - self.starts[part][g])
            for column in got:
                if len(column.array) != rows:
                    raise DamagedFileError(
                        f"{self.path / name}: row group {g} holds {len(column.array)} rows, its footer says "
                        f"{rows}; the images table is damaged"
                    )
            have.update(zip(wanted, got))
        return {n: have[n] for n in (schema.names if names is None else names) if n in have}

    def _read_group(self, part: int, g: int) -> pa.RecordBatch:
        name = self.parts[part].images
        want = int(self.starts[part][g + 1] - self.starts[part][g])
        columns = self._group_columns(part, g, None)
        if columns:
            return self._batch(part, columns)
        with reading(self.path, name, "reading an images row group"):  # whole (see ChunkReuse.read)
            pf, at = self._reader(part, g)
            table = pf.read_row_group(at, use_threads=False).combine_chunks()
        batch = table.to_batches()[0] if table.num_rows else pa.RecordBatch.from_pylist([], schema=table.schema)
        if batch.num_rows != want:
            raise DamagedFileError(
                f"{self.path / name}: row group {g} holds {batch.num_rows} rows, its footer says "
                f"{want}; the images table is damaged"
            )
        return batch
