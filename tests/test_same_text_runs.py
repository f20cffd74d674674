"""same_text (arrow_text.py) on runs of rows: a read's chunk rows against their index rows, compared in Arrow at once
when both are one run of one chunk, must say what a value-by-value comparison says (nulls, types, chunks, lies)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_arrow_core.arrow_text import same_text

_values = st.lists(st.one_of(st.none(), st.text(max_size=4)), min_size=1, max_size=30)


def _column(values: list[str | None], how: str, split: int) -> pa.Array | pa.ChunkedArray:
    kind = {"plain": pa.string(), "large": pa.large_string(), "binary": pa.binary()}.get(how, pa.string())
    data = [None if v is None or how != "binary" else v.encode() for v in values]
    arr = pa.array([v if how != "binary" else d for v, d in zip(values, data)], kind)
    if how == "dictionary":
        arr = arr.dictionary_encode()
    if split < 0:
        return arr
    cut = split % (len(values) + 1)
    return pa.chunked_array([arr.slice(0, cut), arr.slice(cut)], type=arr.type)


@settings(max_examples=200, deadline=None)
@given(
    a=_values,
    edits=st.lists(st.tuples(st.integers(0, 29), st.one_of(st.none(), st.text(max_size=4))), max_size=2),
    how_a=st.sampled_from(["plain", "large", "dictionary", "binary"]),
    how_b=st.sampled_from(["plain", "large"]),
    split_a=st.integers(-3, 40),
    split_b=st.integers(-3, 40),
    data=st.data(),
)
def test_runs_compare_as_value_by_value(
    a: list[str | None],
    edits: list[tuple[int, str | None]],
    how_a: str,
    how_b: str,
    split_a: int,
    split_b: int,
    data: st.DataObject,
) -> None:
    b = list(a)  # mostly equal to a: the fast path's case, with a few lies
    for at, value in edits:
        b[at % len(b)] = value
    b = data.draw(st.sampled_from([b, ["x", *b], [*b, None]]))
    k = data.draw(st.integers(1, min(len(a), len(b))))
    i = data.draw(st.integers(0, len(a) - k))
    j = data.draw(st.integers(0, len(b) - k))
    at_a, at_b = np.arange(i, i + k, dtype=np.int64), np.arange(j, j + k, dtype=np.int64)
    got = same_text(_column(a, how_a, split_a), at_a, _column(b, how_b, split_b), at_b).tolist()
    assert got == [a[i + m] == b[j + m] for m in range(k)]
