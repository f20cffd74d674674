"""The direct writer's vectorized thrift bytes (typed_chunk.thrift_rows) against one value, one row at a time."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_arrow_core.typed_chunk.thrift_rows import (
    Var,
    assemble,
    byte_strings,
    fixed,
    uvarint,
    varint_columns,
    varints,
    zigzag_bytes,
)

_I64 = st.integers(-(1 << 63), (1 << 63) - 1)


def _rows(var: Var) -> list[bytes]:
    return [bytes(var.data[i, : var.lens[i]]) for i in range(len(var.lens))]


@given(st.lists(st.one_of(_I64, st.integers(-300, 300)), max_size=40))
def test_varints_are_each_values_zigzag_varint(values: list[int]) -> None:
    assert _rows(varints(np.array(values, dtype=np.int64))) == [zigzag_bytes(v) for v in values]


@given(st.lists(st.one_of(st.integers(0, (1 << 63) - 1), st.integers(0, 200)), max_size=40))
def test_unsigned_varints_are_each_values_varint(values: list[int]) -> None:
    assert _rows(varints(np.array(values, dtype=np.int64), zigzag=False)) == [uvarint(v) for v in values]


@given(st.integers(0, 5), st.integers(1, 4), st.data())
def test_varint_columns_are_each_columns_varints(rows: int, cols: int, data: st.DataObject) -> None:
    values = np.array(data.draw(st.lists(_I64, min_size=rows * cols, max_size=rows * cols)), dtype=np.int64)
    table = values.reshape(rows, cols)
    got = varint_columns(table)
    assert len(got) == cols
    for k, var in enumerate(got):
        assert _rows(var) == [zigzag_bytes(int(v)) for v in table[:, k]]


@st.composite
def _segments(draw: st.DrawFn) -> tuple[list[bytes | Var], list[list[bytes]], int]:
    """Segments of ``rows`` rows (constants, varints, byte strings, fixed-width rows) and each row's pieces."""
    rows = draw(st.integers(0, 6))
    segs: list[bytes | Var] = []
    pieces: list[list[bytes]] = [[] for _ in range(rows)]
    for kind in draw(st.lists(st.sampled_from(["const", "varint", "strings", "fixed"]), max_size=12)):
        if kind == "const":
            seg = draw(st.binary(max_size=5))
            segs.append(seg)
            parts = [seg] * rows
        elif kind == "varint":
            values = draw(st.lists(_I64, min_size=rows, max_size=rows))
            segs.append(varints(np.array(values, dtype=np.int64)))
            parts = [zigzag_bytes(v) for v in values]
        elif kind == "strings":
            parts = draw(st.lists(st.binary(max_size=7), min_size=rows, max_size=rows))
            segs.append(byte_strings(parts))
        else:
            width = draw(st.integers(1, 4))
            parts = draw(st.lists(st.binary(min_size=width, max_size=width), min_size=rows, max_size=rows))
            table = np.frombuffer(b"".join(parts), dtype=np.uint8).reshape(rows, width)
            segs.append(fixed(table))
        for row, part in zip(pieces, parts):
            row.append(part)
    return segs, pieces, rows


@settings(max_examples=200)
@given(_segments())
def test_assemble_lays_out_each_rows_segments_in_order(case: tuple[list[bytes | Var], list[list[bytes]], int]) -> None:
    segs, pieces, rows = case
    buf, starts = assemble(segs, rows)
    assert buf.tobytes() == b"".join(b"".join(row) for row in pieces)
    assert starts.shape == (rows, len(segs) + 1)
    for r, row in enumerate(pieces):
        for s, part in enumerate(row):
            assert buf[starts[r, s] : starts[r, s + 1]].tobytes() == part
        if r + 1 < rows:
            assert starts[r, -1] == starts[r + 1, 0]
