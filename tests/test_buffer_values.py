"""Values read straight from Arrow buffers (``arrow_numpy``) and ``uniques.unique`` equal what pyarrow's and
numpy's own conversions give, for sliced, chunked, nullable and large-offset columns."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_arrow_core.arrow_numpy import binary_lengths, int_column, plain_values, string_values
from ome_arrow_core.uniques import unique, unique_counts, unique_first, unique_inverse

TEXT_TYPES = [pa.string(), pa.large_string(), pa.binary(), pa.large_binary()]


@st.composite
def text_columns(draw: st.DrawFn) -> pa.ChunkedArray | pa.Array:
    kind = draw(st.sampled_from(TEXT_TYPES))
    binary = pa.types.is_binary(kind) or pa.types.is_large_binary(kind)
    values = st.none() | (st.binary(min_size=1, max_size=6) if binary else st.text(min_size=1, max_size=6))
    # distinct values: a value read from the wrong place shows
    chunks = draw(st.lists(st.lists(values, max_size=6, unique_by=repr), min_size=1, max_size=4))
    arrays = [pa.array(c, kind) for c in chunks]
    if draw(st.booleans()):  # dictionary-encoded, as a reader may hand them over
        arrays = [a.dictionary_encode() for a in arrays]
    column: pa.ChunkedArray | pa.Array = pa.chunked_array(arrays, arrays[0].type)
    n = len(column)
    lo = draw(st.integers(0, n))
    column = column.slice(lo, draw(st.integers(0, n - lo)))
    if draw(st.booleans()) and isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column


def _as_text(v: object) -> object:
    return v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v


@settings(max_examples=80, deadline=None)
@given(text_columns(), st.data())
def test_string_values_are_arrows_values(column: pa.ChunkedArray | pa.Array, data: st.DataObject) -> None:
    n = len(column)
    at = np.array(data.draw(st.lists(st.integers(0, max(n - 1, 0)), max_size=8) if n else st.just([])), np.int64)
    expected = [_as_text(v) for v in column.to_pylist()]
    assert string_values(column, at) == [expected[i] for i in at.tolist()]
    if not pa.types.is_dictionary(column.type):
        want = pc.binary_length(column).fill_null(0).to_numpy(zero_copy_only=False)
        assert binary_lengths(column).tolist() == want.tolist()


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["int8", "uint16", "int32", "int64", "float32", "float64", "bool"]),
    st.lists(st.integers(0, 100), max_size=20),
    st.integers(0, 5),
)
def test_plain_values_are_to_numpy(dtype: str, values: list[int], offset: int) -> None:
    array = pa.array(np.array(values).astype(dtype)).slice(min(offset, len(values)))
    got = plain_values(array)
    assert got.dtype == np.dtype(dtype) and got.tolist() == array.to_numpy(zero_copy_only=False).tolist()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.none() | st.integers(-(2**31), 2**31 - 1), max_size=12), st.sampled_from(["int32", "int64", "float64"])
)
def test_int_column_fills_nulls(values: list[int | None], kind: str) -> None:
    column = pa.array([v if v is None or kind != "float64" else float(v) for v in values], kind)
    assert int_column(column, -1).tolist() == [-1 if v is None else v for v in values]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(-(2**62), 2**62), max_size=30), st.sampled_from(["int64", "int32", "uint8", "bool"]))
def test_unique_is_numpys(values: list[int], dtype: str) -> None:
    a = np.array(values, dtype=np.int64)
    a = (a % 2).astype(bool) if dtype == "bool" else a.astype(dtype)
    got = unique(a.reshape(-1, 1) if len(a) % 2 == 0 else a)
    want = np.unique(a)
    assert got.dtype == want.dtype and got.tolist() == want.tolist()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-50, 50), max_size=60), st.sampled_from(["int8", "int64", "uint32", "bool", "float64"]))
def test_unique_first_and_counts_are_numpys(values: list[int], dtype: str) -> None:
    a = np.array(values, dtype=np.int64)
    a = (a % 2).astype(bool) if dtype == "bool" else a.astype(dtype)
    uniq, first = unique_first(a)
    want, want_first = np.unique(a, return_index=True)
    assert uniq.dtype == want.dtype and uniq.tolist() == want.tolist() and first.tolist() == want_first.tolist()
    uniq, counts = unique_counts(a)
    want, want_counts = np.unique(a, return_counts=True)
    assert uniq.tolist() == want.tolist() and counts.tolist() == want_counts.tolist()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.binary(min_size=3, max_size=3), max_size=60) | st.lists(st.integers(-50, 50), max_size=60),
    st.sampled_from(["void", "int16", "bool", "float32"]),
)
def test_unique_inverse_is_numpys(values: list[bytes] | list[int], kind: str) -> None:
    if kind == "void" or (values and isinstance(values[0], bytes)):  # raw byte keys, as arrow_text groups strings
        raw = b"".join(v if isinstance(v, bytes) else (v % 256).to_bytes(1, "little") * 3 for v in values)
        a = np.frombuffer(raw, dtype=np.uint8).view(np.dtype((np.void, 3)))
    else:
        a = np.array(values, dtype=np.int64)
        a = (a % 2).astype(bool) if kind == "bool" else a.astype(kind)
    uniq, first, inverse = unique_inverse(a)
    want, want_first, want_inverse = np.unique(a, return_index=True, return_inverse=True)
    assert uniq.tolist() == want.tolist()
    assert first.tolist() == want_first.tolist()
    assert inverse.tolist() == want_inverse.reshape(-1).tolist()
