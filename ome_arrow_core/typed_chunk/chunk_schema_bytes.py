"""The chunks schema's fixed Thrift bytes, for the direct chunks writer (:mod:`.direct_chunks`): each column's
name, physical type and value width, the footer's schema elements and key-value metadata (``ARROW:schema`` and
ours, as pyarrow writes them), and the head of each column's ``ColumnMetaData``."""

from __future__ import annotations

import functools

import pyarrow as pa
import pyarrow.parquet as pq

from .spec import CHUNKS_SCHEMA, FILE_METADATA
from .thrift_rows import STOP, binary, head, uvarint

__all__ = ["COLUMNS", "PIXELS", "key_values", "list_header", "schema_elements", "meta_head"]

#: Parquet physical types.
_INT32, _INT64, _BYTE_ARRAY = 1, 2, 6


@functools.lru_cache(maxsize=1)
def key_values() -> bytes:
    """The footer's key_value_metadata list: ours and ``ARROW:schema``, as pyarrow writes them."""
    schema = CHUNKS_SCHEMA.with_metadata(FILE_METADATA)
    sink = pa.BufferOutputStream()
    pq.write_table(schema.empty_table(), sink)
    meta = pq.read_metadata(pa.BufferReader(sink.getvalue())).metadata or {}
    items = [head(1, 8) + binary(k) + head(1, 8) + binary(v) + STOP for k, v in meta.items()]
    return list_header(len(items), 12) + b"".join(items)


def list_header(n: int, kind: int) -> bytes:
    """The header of a thrift list of ``n`` elements of type ``kind``."""
    return bytes(((n << 4) | kind,)) if n < 15 else bytes((0xF0 | kind,)) + uvarint(n)


def _kinds() -> list[tuple[str, int, int]]:
    """(name, physical type, value width: 4/8 for ints, 0 for strings, -1 for pixel_bytes) of each column."""
    out = []
    for f in CHUNKS_SCHEMA:
        if f.type == pa.int32():
            out.append((f.name, _INT32, 4))
        elif f.type == pa.int64():
            out.append((f.name, _INT64, 8))
        elif f.type == pa.string():
            out.append((f.name, _BYTE_ARRAY, 0))
        elif f.type == pa.large_binary():
            out.append((f.name, _BYTE_ARRAY, -1))
        else:  # pragma: no cover - CHUNKS_SCHEMA has only these
            raise AssertionError(f"no direct encoding for {f}")
    return out


#: (name, physical type, value width) of each column, in order.
COLUMNS = _kinds()
#: Where ``pixel_bytes`` is (last: readers of page ranges expect it there).
PIXELS = CHUNKS_SCHEMA.get_field_index("pixel_bytes")
assert PIXELS == len(COLUMNS) - 1


def schema_elements() -> bytes:
    """The footer's schema: the list of SchemaElements (the root, then a leaf per column)."""
    root = head(3, 5) + b"\x00" + head(1, 8) + binary(b"schema") + head(1, 5) + uvarint(2 * len(COLUMNS)) + STOP
    leaves = []
    for name, physical, width in COLUMNS:
        leaf = head(1, 5) + uvarint(2 * physical) + head(2, 5) + b"\x02" + head(1, 8) + binary(name.encode())
        if width == 0:  # a string: converted type UTF8, logical type STRING
            leaf += head(2, 5) + b"\x00" + head(4, 12) + head(1, 12) + STOP + STOP
        leaves.append(leaf + STOP)
    return list_header(len(leaves) + 1, 12) + root + b"".join(leaves)


def meta_head(name: str, physical: int) -> bytes:
    """ColumnMetaData up to num_values: type, encodings [PLAIN, RLE], path, codec UNCOMPRESSED."""
    return (
        head(1, 5)
        + uvarint(2 * physical)
        + head(1, 9)
        + list_header(2, 5)
        + b"\x00\x06"
        + head(1, 9)
        + list_header(1, 8)
        + binary(name.encode())
        + head(1, 5)
        + b"\x00"
        + head(1, 6)
    )
