"""The Thrift walk of a Parquet footer (typed_chunk.thrift_walk): each row group's span, spliced into a one-group
footer that reads as pyarrow's whole footer does; every Thrift type skipped whole; cut, flipped or too deeply nested
bytes raise ThriftError."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_arrow_core.typed_chunk.thrift_walk import ThriftError, one_group_footer, row_group_spans, skip_struct


def _footer_of(data: bytes) -> bytes:
    length = int.from_bytes(data[-8:-4], "little")
    return data[-8 - length : -8]


def _parse(meta: bytes) -> pq.FileMetaData:
    return pq.read_metadata(pa.BufferReader(b"PAR1" + meta + len(meta).to_bytes(4, "little") + b"PAR1"))


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(min_value=0, max_value=60),
    group=st.integers(min_value=1, max_value=9),
    statistics=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_each_spliced_footer_reads_its_row_group_as_the_whole_footer_does(
    rows: int, group: int, statistics: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    table = pa.table(
        {
            "id": [f"image-{k:05d}" for k in range(rows)],
            "n": pa.array(rng.integers(-1000, 1000, rows), pa.int64()),
            "maybe": pa.array([None if k % 3 == 0 else float(k) for k in range(rows)], pa.float64()),
            "word": pa.array([["a", "bb", None][k % 3] for k in range(rows)], pa.string()),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=group, write_statistics=statistics, write_page_checksum=True)
    data = sink.getvalue()
    whole = pq.ParquetFile(pa.BufferReader(data))
    meta = _footer_of(data)
    spans = row_group_spans(meta)
    assert len(spans.starts) == whole.metadata.num_row_groups
    ends = [*spans.starts[1:], spans.end]
    for g, (a, b) in enumerate(zip(spans.starts, ends)):
        assert skip_struct(meta, a) == b
        md = _parse(one_group_footer(meta[: spans.header], meta[a:b], meta[spans.end :]))
        assert md.num_row_groups == 1
        assert md.row_group(0).to_dict() == whole.metadata.row_group(g).to_dict()
        alone = pq.ParquetFile(pa.BufferReader(data), metadata=md).read_row_group(0)
        assert alone.equals(whole.read_row_group(g))
    empty = _parse(one_group_footer(meta[: spans.header], None, meta[spans.end :]))
    assert empty.num_row_groups == 0 and empty.schema.to_arrow_schema() == whole.schema_arrow


@settings(max_examples=60, deadline=None)
@given(cut=st.floats(min_value=0.0, max_value=0.999), where=st.floats(0.0, 0.999), bit=st.integers(0, 7))
def test_truncated_or_flipped_footer_bytes_raise_thrift_errors_or_still_walk(
    cut: float, where: float, bit: int
) -> None:
    sink = io.BytesIO()
    pq.write_table(pa.table({"a": list(range(30)), "b": [str(k) for k in range(30)]}), sink, row_group_size=7)
    meta = _footer_of(sink.getvalue())
    with pytest.raises(ThriftError):
        row_group_spans(meta[: int(cut * len(meta))])
    flipped = bytearray(meta)
    flipped[int(where * len(meta))] ^= 1 << bit
    try:  # a flipped bit may still be a well-formed struct; it must never raise anything else, nor hang
        row_group_spans(bytes(flipped))
    except ThriftError:
        pass


def _struct_of_every_kind() -> bytes:
    """A Thrift compact struct holding a value of every type: each nested in lists, a set, a map and structs."""
    list_of_structs = b"\x2c" + b"\x15\x04\x00" + b"\x18\x02hi\x00"  # list<struct>: {i32 2}, {binary "hi"}
    fields = [
        b"\x11",  # field 1: true (in the header)
        b"\x13\x7f",  # field 2: byte
        b"\x14\xac\x02",  # field 3: i16, a 2-byte varint
        b"\x15\x80\x80\x04",  # field 4: i32, a 3-byte varint
        b"\x16\x01",  # field 5: i64
        b"\x17" + bytes(8),  # field 6: double
        b"\x18\x83\x01" + bytes(131),  # field 7: binary of 131 bytes (a 2-byte length)
        b"\x19\x31\x01\x02\x01",  # field 8: list of 3 booleans, a byte each
        b"\x1a\x26\x02\x04",  # field 9: set of 2 i64
        b"\x1b\x02\x58\x02\x01a\x04\x01b",  # field 10: map<i32, binary> of 2
        b"\x1b\x00",  # field 11: an empty map
        b"\x19" + list_of_structs,  # field 12: list of 2 structs
        b"\x1c\x19\xfc\x12" + bytes(18) + b"\x00",  # field 13: struct {list of 18 empty structs}
        b"\x09\x20\x0c",  # field 16 (long form): an empty list of structs
    ]
    return b"".join(fields) + b"\x00"


def test_every_thrift_type_is_skipped_whole_and_each_cut_raises() -> None:
    meta = _struct_of_every_kind()
    assert skip_struct(meta) == len(meta)
    assert skip_struct(meta + b"tail") == len(meta)
    for cut in range(len(meta)):
        with pytest.raises(ThriftError):
            skip_struct(meta[:cut])


def test_nesting_deeper_than_a_footer_raises_a_thrift_error() -> None:
    deep = b"\x1c" * 40 + b"\x00" * 41  # 40 structs, each the first field of the one around it
    with pytest.raises(ThriftError, match="deeper"):
        skip_struct(deep)
    lists = b"\x19\x19" + b"\x19" * 40  # lists of lists...: refused, not a RecursionError
    with pytest.raises(ThriftError):
        skip_struct(lists)
    shallow = b"\x1c" * 8 + b"\x00" * 9
    assert skip_struct(shallow) == len(shallow)
