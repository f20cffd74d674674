"""Parquet page headers (Thrift compact protocol) as :func:`page_header` reads them: every header a Thrift writer
can produce decodes to its fields, whatever unknown fields and statistics surround them; a header cut short
raises ShortHeader; any other bytes raise ValueError, never anything else.

The encoder here is written from the Thrift compact protocol specification, independently of the parser.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ome_arrow_core.typed_chunk.parquet_pages import (
    DATA_PAGE,
    DATA_PAGE_V2,
    DICTIONARY_PAGE,
    PageHeader,
    ShortHeader,
    page_header,
)

# compact protocol type ids
TRUE, FALSE, BYTE, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT = range(1, 13)
I32_VALUES = st.integers(-(2**31), 2**31 - 1)
SIZES = st.integers(0, 2**31 - 1)


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        if n < 0x80:
            out.append(n)
            return bytes(out)
        out.append((n & 0x7F) | 0x80)
        n >>= 7


def zigzag(n: int) -> bytes:
    return varint((n << 1) ^ (n >> 63))


def value(kind: int, v: Any) -> bytes:
    """The bytes of value ``v`` of compact type ``kind`` (bools in a container: one byte)."""
    if kind in (TRUE, FALSE):
        return bytes([1 if v else 2])
    if kind == BYTE:
        return bytes([v & 0xFF])
    if kind in (I16, I32, I64):
        return zigzag(v)
    if kind == DOUBLE:
        return struct.pack("<d", v)
    if kind == BINARY:
        return varint(len(v)) + v
    if kind in (LIST, SET):
        elem, items = v
        head = bytes([(len(items) << 4) | elem]) if len(items) < 15 else bytes([0xF0 | elem]) + varint(len(items))
        return head + b"".join(value(elem, x) for x in items)
    if kind == MAP:
        key, val, pairs = v
        if not pairs:
            return varint(0)
        return (
            varint(len(pairs)) + bytes([(key << 4) | val]) + b"".join(value(key, a) + value(val, b) for a, b in pairs)
        )
    assert kind == STRUCT
    return encode_struct(v)


def encode_struct(fields: list[tuple[int, int, Any]]) -> bytes:
    """A struct of (field id, type, value) fields, in the order given (ids as deltas where they fit)."""
    out = bytearray()
    last = 0
    for fid, kind, v in fields:
        wire = (TRUE if v else FALSE) if kind in (TRUE, FALSE) else kind
        if 0 < fid - last <= 15:
            out.append(((fid - last) << 4) | wire)
        else:
            out.append(wire)
            out += zigzag(fid)
        last = fid
        if kind not in (TRUE, FALSE):
            out += value(kind, v)
    out.append(0)
    return bytes(out)


def scalars(kind: int) -> st.SearchStrategy[Any]:
    return {
        TRUE: st.booleans(),
        BYTE: st.integers(0, 255),
        I16: st.integers(-(2**15), 2**15 - 1),
        I32: I32_VALUES,
        I64: st.integers(-(2**63), 2**63 - 1),
        DOUBLE: st.floats(allow_nan=False),
        BINARY: st.binary(max_size=40),
    }[kind]


def typed_values(depth: int) -> st.SearchStrategy[tuple[int, Any]]:
    """(type, value) of any compact type, containers and structs nested up to ``depth``."""
    simple = st.sampled_from([TRUE, BYTE, I16, I32, I64, DOUBLE, BINARY]).flatmap(
        lambda k: scalars(k).map(lambda v: (k, v))
    )
    if depth <= 0:
        return simple
    elem_kinds = st.sampled_from([TRUE, BYTE, I32, I64, BINARY])
    lists = elem_kinds.flatmap(lambda e: st.lists(scalars(e), max_size=17).map(lambda xs: (LIST, (e, xs))))
    maps = st.tuples(elem_kinds, elem_kinds).flatmap(
        lambda kv: st.lists(st.tuples(scalars(kv[0]), scalars(kv[1])), max_size=4).map(
            lambda ps: (MAP, (kv[0], kv[1], ps))
        )
    )
    structs = unknown_fields(depth - 1, 1, 40).map(lambda fs: (STRUCT, fs))
    return st.one_of(simple, lists, maps, structs)


def unknown_fields(depth: int, low: int, high: int) -> st.SearchStrategy[list[tuple[int, int, Any]]]:
    return st.lists(
        st.tuples(st.integers(low, high), typed_values(depth)).map(lambda t: (t[0], t[1][0], t[1][1])),
        max_size=3,
        unique_by=lambda f: f[0],
    )


def statistics() -> st.SearchStrategy[list[tuple[int, int, Any]]]:
    """A Statistics struct: min/max (old and new), null and distinct counts, exactness flags."""
    return st.lists(
        st.sampled_from(
            [(1, BINARY), (2, BINARY), (3, I64), (4, I64), (5, BINARY), (6, BINARY), (7, TRUE), (8, TRUE)]
        ).flatmap(lambda f: scalars(f[1]).map(lambda v: (f[0], f[1], v))),
        unique_by=lambda f: f[0],
        max_size=8,
    ).map(sorted)


@st.composite
def headers(draw: st.DrawFn) -> tuple[bytes, PageHeader]:
    """An encoded PageHeader with unknown fields and statistics around the known ones, and what it says."""
    kind = draw(st.sampled_from([DATA_PAGE, DICTIONARY_PAGE, DATA_PAGE_V2]))
    usize, csize = draw(SIZES), draw(SIZES)
    crc = draw(st.none() | I32_VALUES)
    n, enc, other = draw(I32_VALUES), draw(I32_VALUES), draw(I32_VALUES)
    def_bytes, rep_bytes, compressed = draw(I32_VALUES), draw(I32_VALUES), draw(st.none() | st.booleans())
    if kind == DATA_PAGE:
        sub = [(1, I32, n), (2, I32, enc), (3, I32, other), (4, I32, other)]
        sub += [(5, STRUCT, draw(statistics()))] if draw(st.booleans()) else []
        sub_id = 5
    elif kind == DICTIONARY_PAGE:
        sub = [(1, I32, n), (2, I32, enc)] + ([(3, TRUE, draw(st.booleans()))] if draw(st.booleans()) else [])
        sub_id = 7
    else:
        sub = [(1, I32, n), (2, I32, other), (3, I32, other), (4, I32, enc), (5, I32, def_bytes), (6, I32, rep_bytes)]
        sub += [(7, TRUE, compressed)] if compressed is not None else []
        sub += [(8, STRUCT, draw(statistics()))] if draw(st.booleans()) else []
        sub_id = 8
    sub += draw(unknown_fields(2, 9, 30))  # fields a later format version may add
    top = [(1, I32, kind), (2, I32, usize), (3, I32, csize)] + ([(4, I32, crc)] if crc is not None else [])
    top += [(sub_id, STRUCT, sub)]
    top += draw(unknown_fields(2, 9, 200))
    if draw(st.booleans()):  # fields need not come in id order
        top = draw(st.permutations(top))
    data = encode_struct(top)
    return data, PageHeader(
        type=kind,
        uncompressed_size=usize,
        compressed_size=csize,
        crc=crc,
        num_values=n,
        encoding=enc,
        definition_level_encoding=other if kind == DATA_PAGE else -1,
        definition_levels_bytes=def_bytes if kind == DATA_PAGE_V2 else -1,
        repetition_levels_bytes=rep_bytes if kind == DATA_PAGE_V2 else -1,
        is_compressed=compressed is not False if kind == DATA_PAGE_V2 else True,
        size=len(data),
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(headers(), st.binary(max_size=16))
def test_every_encoded_header_decodes_to_its_fields(header: tuple[bytes, PageHeader], tail: bytes) -> None:
    data, expected = header
    assert page_header(data + tail) == expected  # the page's bytes follow: size says where they start
    assert page_header(memoryview(data + tail)) == expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(headers(), st.data())
def test_a_header_cut_short_raises_short_header(header: tuple[bytes, PageHeader], data: st.DataObject) -> None:
    raw, _ = header
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(ShortHeader):
        page_header(raw[:cut])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(headers(), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4))
def test_damaged_headers_raise_value_error_or_decode(header: tuple[bytes, PageHeader], flips: list[Any]) -> None:
    raw = bytearray(header[0])
    for at, byte in flips:
        raw[at % len(raw)] = byte
    try:
        got = page_header(bytes(raw))
    except ValueError:
        return
    assert 0 < got.size <= len(raw) and got.uncompressed_size >= 0 and got.compressed_size >= 0


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_raise_value_error_or_decode(raw: bytes) -> None:
    try:
        page_header(raw)
    except ValueError:
        pass


def test_negative_sizes_and_missing_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        page_header(encode_struct([(1, I32, DATA_PAGE), (2, I32, -1), (3, I32, 4)]))
    with pytest.raises(ValueError, match="lacks"):
        page_header(encode_struct([(1, I32, DATA_PAGE), (3, I32, 4)]))
    with pytest.raises(ValueError, match="deeper"):  # nesting no Parquet header has: refused, not a RecursionError
        page_header(bytes([0x1C]) * 5000)  # field 1, a struct, whose field 1 is a struct, ...
