"""A row group's head read by a remembered shape (:mod:`ome_arrow_core.typed_chunk.row_heads`) says exactly what
the general page-by-page decoder says: for every head our writer emits (any ids, coordinates, shapes, dtypes, crcs
of any length), and for every damaged head (a byte flipped, cut, inserted), where both must raise ValueError or
agree. A first read of a plate decodes a few heads in full, not one per chunk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_core.typed_chunk import page_columns, parquet_pages, row_heads
from ome_arrow_core.typed_chunk.fragments import chunk_writer
from ome_arrow_core.typed_chunk.parquet_pages import page_ranges
from ome_arrow_core.typed_chunk.row_heads import general_head, row_head, shaped_heads
from ome_arrow_core.typed_chunk.spec import CHUNKS_SCHEMA, FILE_METADATA

I32 = st.integers(-(2**31), 2**31 - 1)
ROWS = st.fixed_dictionaries(
    {
        "image_id": st.text(max_size=12),
        "chunk_id": st.integers(-(2**63), 2**63 - 1),
        **{a: I32 for a in "tczyx"},
        **{f"shape_{a}": I32 for a in "tczyx"},
        "dtype": st.sampled_from(["uint8", "uint16", "float32", "complex128", ""]),
        "pixel_bytes": st.binary(max_size=64),
    }
)


def _forget() -> None:
    """Nothing remembered: no shape, no parsed header, no decoded page."""
    row_heads._shapes.clear()
    row_heads._budget, row_heads._unshaped = row_heads.SHAPES, 0
    parquet_pages._parsed.clear()
    page_columns._decoded_pages.clear()


def _heads(rows: list[dict[str, Any]], file: Path) -> list[bytes]:
    """The heads of ``rows`` written as a chunks file (one row group each), as a write of ours writes them."""
    schema = CHUNKS_SCHEMA.with_metadata(FILE_METADATA)
    with chunk_writer(file, schema, None) as writer:
        for row in rows:
            writer.write_table(pa.Table.from_pylist([row], schema=schema), row_group_size=1)
    ranges = page_ranges(file)
    assert ranges is not None
    raw = file.read_bytes()
    return [raw[int(s) : int(e)] for s, e in zip(ranges.group_offset, ranges.offset)]


def _said(call: Any, head: bytes, fresh: bool = False) -> Any:
    """What ``call`` says of ``head``: its result, or the type of the ValueError it raises."""
    if fresh:
        _forget()
    try:
        return call(memoryview(head), None)
    except ValueError as exc:
        return type(exc)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(rows=st.lists(ROWS, min_size=1, max_size=6))
def test_every_head_we_write_reads_as_the_general_decoder_reads_it(
    rows: list[dict[str, Any]], tmp_path_factory: Any
) -> None:
    heads = _heads(rows, tmp_path_factory.mktemp("heads") / "chunks.parquet")
    _forget()
    for head, row in zip(heads, rows):
        want = _said(general_head, head, fresh=True)
        assert want[0] == {k: v for k, v in row.items() if k != "pixel_bytes"}
        assert _said(row_head, head) == want
    _forget()
    for head in heads:  # each head read by the shapes the others left
        assert _said(row_head, head) == _said(general_head, head)


def test_heads_whose_crcs_differ_in_length_share_one_shape(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    rows = [
        {**dict.fromkeys("tczyx", 0), **{f"shape_{a}": 1 for a in "tczyx"}, "image_id": "im", "chunk_id": k}
        | {"dtype": "uint8", "pixel_bytes": rng.bytes(16)}
        for k in range(120)
    ]
    heads = _heads(rows, tmp_path / "chunks.parquet")
    assert len({len(h) for h in heads}) > 1  # some crc's varint took fewer bytes
    _forget()
    assert row_head(memoryview(heads[0]), None) == general_head(memoryview(heads[0]), None)
    (shape,) = row_heads._shapes
    for head in heads:
        got = row_heads._match(shape, head)
        assert got is not None and got == general_head(memoryview(head), None)


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A head of a chunks file written by write_dataset (row group 1)."""
    arrs = np.random.default_rng(2).integers(0, 65535, (3, 2, 8, 6), dtype=np.uint16)
    path = write_dataset(list(arrs), tmp_path_factory.mktemp("rows") / "p", dim_order="CYX", progress=False)
    ranges = page_ranges(path / "chunks.parquet")
    assert ranges is not None
    return (path / "chunks.parquet").read_bytes()[int(ranges.group_offset[1]) : int(ranges.offset[1])]


def _damaged(head: bytes) -> list[tuple[str, bytes]]:
    out = []
    for at in range(len(head)):
        for mask in (0x01, 0x80, 0xFF):
            out.append((f"byte {at} ^ {mask:#x}", head[:at] + bytes([head[at] ^ mask]) + head[at + 1 :]))
        out.append((f"cut at {at}", head[:at]))
        out.append((f"0x80 inserted at {at}", head[:at] + b"\x80" + head[at:]))
    return out


def test_every_damaged_head_reads_as_the_general_decoder_reads_it(head: bytes) -> None:
    """A flipped, cut or lengthened head: the shape of the good head (remembered) never reads it otherwise."""
    _forget()
    good = _said(row_head, head)
    assert isinstance(good, tuple) and len(row_heads._shapes) == 1
    shape = row_heads._shapes[0]
    for what, bad in _damaged(head):
        row_heads._shapes[:] = [shape]
        warm = _said(row_head, bad)
        assert warm == _said(general_head, bad, fresh=True), what


def test_a_lying_pixel_page_size_is_not_read_by_the_shape(head: bytes) -> None:
    """The pixel page's sizes are structure: a head that says other sizes is read afresh (and the reader compares
    them with the index)."""
    _forget()
    _, compressed, _ = row_head(memoryview(head), None)
    at = head.rfind(_size_varint(compressed))
    assert at > 0
    other = _size_varint(compressed + 2)
    lying = head[:at] + other + head[at + len(other) :]
    got = _said(row_head, lying)
    assert got == _said(general_head, lying, fresh=True)
    assert not isinstance(got, tuple) or got[1] != compressed


def _by_rows(heads: list[bytes]) -> tuple[dict[str, list[Any]], tuple[int, int]] | None:
    """What the general decoder says of each of ``heads``, column by column, when all decode to one pixel page size."""
    said = [_said(general_head, h) for h in heads]
    if not all(isinstance(s, tuple) for s in said) or len({s[1:] for s in said}) != 1:
        return None
    return {name: [s[0][name] for s in said] for name, _ in page_columns.COLUMNS}, said[0][1:]


def _listed(shaped: tuple[dict[str, Any], tuple[int, int]] | None) -> Any:
    return None if shaped is None else ({k: list(v) for k, v in shaped[0].items()}, shaped[1])


def test_heads_read_at_once_are_what_each_reads_as(tmp_path: Path) -> None:
    """shaped_heads (a first read's heads audit, column by column) says of heads of one shape what the general decoder
    says of each one; of heads of no shape remembered, nothing."""
    rng = np.random.default_rng(5)
    rows = [
        {**{a: int(v) for a, v in zip("tczyx", rng.integers(-(2**31), 2**31, 5))}, "image_id": "im", "chunk_id": k}
        | {**{f"shape_{a}": 1 for a in "tczyx"}, "dtype": "uint16", "pixel_bytes": rng.bytes(16)}
        for k in range(-40, 40)
    ]
    heads = _heads(rows, tmp_path / "chunks.parquet")
    _forget()
    assert shaped_heads(heads) is None  # nothing remembered yet
    row_head(memoryview(heads[0]), None)
    got = shaped_heads(heads)
    assert got is not None and _listed(got) == _by_rows(heads)
    assert all(isinstance(v, list) or v.dtype == np.int64 for v in got[0].values())


def test_damaged_heads_among_good_ones_are_never_read_otherwise(head: bytes) -> None:
    """A damaged head among good ones: shaped_heads gives nothing (each is then read by itself, saying what is wrong)
    or exactly what the general decoder says of each."""
    _forget()
    row_head(memoryview(head), None)
    shape = row_heads._shapes[0]
    for what, bad in _damaged(head):
        row_heads._shapes[:] = [shape]
        got = _listed(shaped_heads([head, bad, head]))
        assert got is None or got == _by_rows([head, bad, head]), what


def _size_varint(n: int) -> bytes:
    """The zigzag varint of i32 ``n``, as a header holds a size."""
    v, out = (n << 1) ^ (n >> 31), bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    return bytes([*out, v])


def test_a_first_read_of_a_plate_parses_few_page_headers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cold reads of every image (80 chunks, 18 page headers each): the Thrift decoder runs for a head or two,
    not for each chunk's."""
    arrs = np.random.default_rng(3).integers(0, 4096, (40, 2, 16, 16), dtype=np.uint16)
    path = write_dataset(list(arrs), tmp_path / "p", dim_order="CYX", progress=False)
    _forget()
    calls = []
    parse = parquet_pages._parse
    monkeypatch.setattr(parquet_pages, "_parse", lambda *a: calls.append(1) or parse(*a))
    ds = OMEArrowDataset.scan(path)
    got = ds.read(range(len(ds)))
    assert np.array_equal(np.asarray(got).reshape(arrs.shape), arrs)
    assert 0 < len(calls) <= 3 * 18
