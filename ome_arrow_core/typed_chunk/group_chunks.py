"""A table's row groups decoded a column chunk at a time, each chunk decoded once per distinct content.

pyarrow decodes a row group column by column at ~10-20 us a column chunk, whatever its size: an images row group
of a plate (1,024 rows of ~31 columns) costs ~0.5 ms, though most of its columns (sizes, dtype, units, channels)
hold the same values in every row group, byte for byte. :class:`ChunkReuse` reads a row group's column chunks as
bytes (one read), looks each up among the chunks it decoded before, and has pyarrow decode only those it has not
seen: a random image of a million then costs the few columns that differ per image (ids, names, locators).

A column chunk's decoded values are a function of its bytes (its pages, their headers included), its column's type,
its codec and value count (recorded in the footer, not in the pages) and how strings are read (dictionary-encoded
or not): the key is all of them, the bytes compared whole (no hash stands in for them). Chunks larger than
:data:`KEYED_BYTES` are decoded every time and not kept (a column of distinct values rarely repeats). The bytes are
those of the row group as the file holds them now, read after the row group's digest was checked, as pyarrow's own
read of them is.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Final

import pyarrow as pa

from .. import parquet_lite as pq
from ..arrow_numpy import as_list

__all__ = ["ChunkReuse", "KEPT_CHUNKS", "KEYED_BYTES"]

#: Decoded column chunks kept (the most recently used), per table.
KEPT_CHUNKS: Final[int] = 256
#: Column chunks of at most this many bytes are looked up and kept; larger ones are decoded each time.
KEYED_BYTES: Final[int] = 4096

#: (column, codec, values, dictionary-encoded, the chunk's bytes).
_Key = tuple[int, str, int, bool, bytes]


def chunk_spans(md: pq.FileMetaData, g: int) -> list[tuple[int, int, str, int]] | None:
    """(first byte, length, codec, values) of each column chunk of row group ``g`` of ``md``, or None when one has
    no plain span."""
    rg = md.row_group(g)
    spans = []
    for c in range(rg.num_columns):
        cc = rg.column(c)
        start, length = cc.data_page_offset, cc.total_compressed_size
        if cc.has_dictionary_page and 0 < cc.dictionary_page_offset < start:
            start = cc.dictionary_page_offset
        if start < 0 or length <= 0:
            return None
        spans.append((int(start), int(length), str(cc.compression), int(cc.num_values)))
    return spans


class _Kept:
    """One decoded column chunk: its field, its values, and them as Python values (made on first use)."""

    __slots__ = ("array", "field", "values")

    def __init__(self, field: pa.Field, array: pa.Array) -> None:
        self.field, self.array = field, array
        self.values: list[Any] | None = None


class ChunkReuse:
    """The row groups of Parquet file ``path``, their column chunks decoded once per distinct content."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._kept: OrderedDict[_Key, _Kept] = OrderedDict()
        #: The kept chunks by ``id`` of their array (each checked to be that array: an id is reused once freed).
        self._by_array: dict[int, _Kept] = {}
        self._schemas: dict[frozenset[str], pa.Schema] = {}

    def values(self, array: pa.Array) -> list[Any] | None:
        """``array`` as Python values (its ``to_pylist()``) when it is a kept chunk's (made once), else None."""
        kept = self._by_array.get(id(array))
        if kept is None or kept.array is not array:
            return None
        if kept.values is None:
            kept.values = as_list(array)
        return kept.values

    def read(self, pf: pq.ParquetFile, g: int, dictionary: frozenset[str]) -> pa.RecordBatch | None:
        """Row group ``g`` of ``pf`` (a reader of :attr:`path`; ``dictionary``: the string columns ``pf`` reads
        dictionary-encoded) as one record batch, or None when it cannot be read by chunks (nested columns, a
        column chunk without a plain span, no rows): read it whole then."""
        md = pf.metadata
        schema = self._schemas.get(dictionary)
        if schema is None:
            schema = self._schemas[dictionary] = pf.schema_arrow
        spans = chunk_spans(md, g)
        if spans is None or not spans or len(spans) != len(schema) or md.row_group(g).num_rows == 0:
            return None
        lo, hi = min(s[0] for s in spans), max(s[0] + s[1] for s in spans)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            data = os.pread(fd, hi - lo, lo)
        finally:
            os.close(fd)
        if len(data) != hi - lo:
            return None  # short: pyarrow's own read of the group names the damage
        keys: list[_Key | None] = []
        found: list[_Kept | None] = []
        for c, (start, length, codec, count) in enumerate(spans):
            if length > KEYED_BYTES:
                keys.append(None)
                found.append(None)
                continue
            key = (c, codec, count, schema[c].name in dictionary, data[start - lo : start - lo + length])
            hit = self._kept.get(key)
            if hit is not None:
                self._kept.move_to_end(key)
            keys.append(key)
            found.append(hit)
        missing = [c for c, hit in enumerate(found) if hit is None]
        if missing:
            fresh = pf.read_row_group(g, columns=[schema[c].name for c in missing], use_threads=False)
            if fresh.num_columns != len(missing):
                return None
            for at, c in enumerate(missing):
                column = fresh.column(at)
                one = _Kept(
                    fresh.schema.field(at), column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
                )
                found[c] = one
                kept_as = keys[c]
                if kept_as is not None:
                    self._kept[kept_as] = one
                    self._by_array[id(one.array)] = one
            while len(self._kept) > KEPT_CHUNKS:
                gone = self._kept.popitem(last=False)[1]
                self._by_array.pop(id(gone.array), None)
        chunks = [hit for hit in found if hit is not None]
        if len({len(hit.array) for hit in chunks}) != 1:
            return None  # columns of unequal lengths: the whole read names the damage
        return pa.RecordBatch.from_arrays(
            [hit.array for hit in chunks], schema=pa.schema([hit.field for hit in chunks], metadata=schema.metadata)
        )
