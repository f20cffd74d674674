"""A table's row groups decoded a column chunk at a time, each chunk decoded once per distinct content.

pyarrow decodes a row group column by column at ~10-20 us a column chunk, whatever its size: an images row group
of a plate (1,024 rows of ~31 columns) costs ~0.5 ms, though most of its columns (sizes, dtype, units, channels)
hold the same values in every row group, byte for byte. :class:`ChunkReuse` reads a row group's column chunks as
bytes (one read), looks each up among the chunks it decoded before, and has pyarrow decode only those it has not
seen: a random image of a million then costs the few columns that differ per image (ids, names, locators).

A column chunk's decoded values are a function of its bytes (its pages, their headers included), how its column is
stored (physical, logical and converted type, length, definition and repetition levels: the schema), how it is read
(its Arrow type, dictionary-encoded or not, and nullability), its codec and value count (recorded in the footer, not
in the pages): the key is all of them, the bytes compared whole (no hash stands in for them), so that the columns of
a group whose chunks are alike (``name`` and ``image_id``, null physical sizes) are decoded once too. Chunks larger
than :data:`KEYED_BYTES` are decoded every time and not kept (a column of distinct values rarely repeats). The bytes
are those of the row group as the file holds them now, read after the row group's digest was checked, as pyarrow's
own read of them is: a damaged chunk differs from the intact one it was copied from, and is decoded (or refused) on
its own.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import pyarrow as pa

from .. import parquet_lite as pq
from ..arrow_numpy import as_list

__all__ = ["ChunkReuse", "Decoded", "KEPT_CHUNKS", "KEYED_BYTES"]

#: Decoded column chunks kept (the most recently used), per table.
KEPT_CHUNKS: Final[int] = 256
#: Column chunks of at most this many bytes are looked up and kept; larger ones are decoded each time.
KEYED_BYTES: Final[int] = 4096

#: (Arrow type read, nullable, Parquet type and levels, codec, values, the chunk's bytes).
_Key = tuple[str, bool, str, str, int, bytes]


def chunk_spans(rg: pq.RowGroupMetaData, columns: Sequence[int]) -> list[tuple[int, int, str, int]] | None:
    """(first byte, length, codec, values) of column chunks ``columns`` of row group ``rg``, or None when one has no
    plain span."""
    spans = []
    for c in columns:
        cc = rg.column(c)
        start, length = cc.data_page_offset, cc.total_compressed_size
        if cc.has_dictionary_page and 0 < cc.dictionary_page_offset < start:
            start = cc.dictionary_page_offset
        if start < 0 or length <= 0:
            return None
        spans.append((int(start), int(length), str(cc.compression), int(cc.num_values)))
    return spans


def _stored(schema: pq.ParquetSchema, c: int) -> str:
    """How leaf column ``c`` of ``schema`` is stored: its physical, logical and converted types, its length and its
    levels ("" past the last leaf)."""
    if c >= len(schema):
        return ""
    col = schema.column(c)
    return (
        f"{col.physical_type}/{col.logical_type}/{col.converted_type}/{col.length}/"
        f"{col.max_definition_level}/{col.max_repetition_level}"
    )


class Decoded:
    """One decoded column chunk: its values, and them as Python values (made when it serves a second row: one row's
    scalar costs less than a list of them all); the columns of any name whose chunks hold the same bytes (and are
    stored and read alike) share it."""

    __slots__ = ("array", "served", "values")

    def __init__(self, array: pa.Array) -> None:
        self.array = array
        self.served = 0
        self.values: list[Any] | None = None


class ChunkReuse:
    """The row groups of Parquet file ``path``, their column chunks decoded once per distinct content."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._kept: OrderedDict[_Key, Decoded] = OrderedDict()
        #: The kept chunks by ``id`` of their array (each checked to be that array: an id is reused once freed).
        self._by_array: dict[int, Decoded] = {}
        self._schemas: dict[frozenset[str], pa.Schema] = {}
        #: Each schema's (type, nullable) of each column, as keys hold them.
        self._kinds: dict[frozenset[str], dict[int, tuple[str, bool, str]]] = {}

    def values(self, array: pa.Array) -> list[Any] | None:
        """``array`` as Python values (its ``to_pylist()``) when it is a kept chunk's (made once), else None."""
        kept = self._by_array.get(id(array))
        if kept is None or kept.array is not array:
            return None
        if kept.values is None:
            kept.served += 1
            if kept.served < 2:
                return None
            kept.values = as_list(array)
        return kept.values

    def value(self, column: Decoded, k: int) -> Any:
        """Row ``k`` of ``column`` as a Python value (from its Python values when it is kept)."""
        values = column.values if column.values is not None else self.values(column.array)
        return column.array[k].as_py() if values is None else values[k]

    def schema(self, pf: pq.ParquetFile, dictionary: frozenset[str]) -> pa.Schema:
        """The Arrow schema ``pf`` reads (``dictionary``: the string columns it reads dictionary-encoded; made once)."""
        schema = self._schemas.get(dictionary)
        if schema is None:
            schema = self._schemas[dictionary] = pf.schema_arrow
            self._kinds[dictionary] = {}
        return schema

    def read(
        self, pf: pq.ParquetFile, g: int, dictionary: frozenset[str], names: Sequence[str]
    ) -> list[Decoded] | None:
        """Columns ``names`` (of the schema, each once) of row group ``g`` of ``pf`` (a reader of :attr:`path`;
        ``dictionary``: the string columns ``pf`` reads dictionary-encoded), or None when they cannot be read by
        chunks (nested columns, a column chunk without a plain span, no rows, a short read): read the group whole
        then."""
        schema = self.schema(pf, dictionary)
        rg = pf.metadata.row_group(g)
        where = [schema.get_field_index(n) for n in names]
        if rg.num_columns != len(schema) or rg.num_rows == 0 or not where or min(where) < 0:
            return None
        spans = chunk_spans(rg, where)
        if spans is None:
            return None
        lo, hi = min(s[0] for s in spans), max(s[0] + s[1] for s in spans)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            data = os.pread(fd, hi - lo, lo)
        finally:
            os.close(fd)
        if len(data) != hi - lo:
            return None  # short: pyarrow's own read of the group names the damage
        kinds = self._kinds[dictionary]
        stored: pq.ParquetSchema | None = None
        keys: list[_Key] = []
        found: list[Decoded | None] = []
        for c, (start, length, codec, count) in zip(where, spans):
            kind = kinds.get(c)
            if kind is None:
                stored = stored or pf.schema  # parsed anew by each ``pf.schema``: once a read
                kind = kinds[c] = (str(schema[c].type), schema[c].nullable, _stored(stored, c))
            key = (*kind, codec, count, data[start - lo : start - lo + length])
            hit = self._kept.get(key) if length <= KEYED_BYTES else None
            if hit is not None:
                self._kept.move_to_end(key)
            keys.append(key)
            found.append(hit)
        first: dict[_Key, int] = {}  # a column chunk the same as another of this read is decoded once
        for at, hit in enumerate(found):
            if hit is None:
                first.setdefault(keys[at], at)
        if first:
            fresh = pf.read_row_group(g, columns=[names[at] for at in first.values()], use_threads=False)
            if fresh.num_columns != len(first):
                return None
            decoded: dict[_Key, Decoded] = {}
            for j, (key, at) in enumerate(first.items()):
                column, field = fresh.column(j), schema[where[at]]
                if column.type != field.type:
                    return None
                one = decoded[key] = Decoded(column.chunk(0) if column.num_chunks == 1 else column.combine_chunks())
                if len(key[-1]) <= KEYED_BYTES:
                    self._kept[key] = one
                    self._by_array[id(one.array)] = one
            found = [decoded[keys[at]] if hit is None else hit for at, hit in enumerate(found)]
            while len(self._kept) > KEPT_CHUNKS:
                gone = self._kept.popitem(last=False)[1]
                self._by_array.pop(id(gone.array), None)
        return [hit for hit in found if hit is not None]
