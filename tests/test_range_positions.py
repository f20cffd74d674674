"""A range of positions (``ds.select(range(r, len(ds), k))``: a shard) is checked from its ends, as each of its
positions would be checked one by one: the same positions, or the same refusal."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_arrow_core import SelectionError
from ome_arrow_core.dataset.positions import checked_indices


def _one_by_one(indices: range, n: int) -> np.ndarray | type[BaseException]:
    try:
        return checked_indices([int(i) for i in indices], n)
    except Exception as exc:  # the refusal a list of the same positions gets
        return type(exc)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(-30, 30),
    st.integers(-30, 30),
    st.integers(-7, 7).filter(lambda s: s != 0),
    st.integers(0, 25),
)
def test_a_range_is_checked_as_its_positions_are(start: int, stop: int, step: int, n: int) -> None:
    indices = range(start, stop, step)
    want = _one_by_one(indices, n)
    if isinstance(want, np.ndarray):
        got = checked_indices(indices, n)
        assert got.dtype == np.int64 and got.tolist() == want.tolist()
    else:
        with pytest.raises(want):
            checked_indices(indices, n)


def test_a_shard_of_a_million_is_its_positions() -> None:
    got = checked_indices(range(1, 1_000_000, 8), 1_000_000)
    assert got.dtype == np.int64 and len(got) == 125_000 and got[0] == 1 and got[-1] == 999_993
    with pytest.raises(SelectionError, match="image 1000001 is out of range"):
        checked_indices(range(1, 1_000_002, 8), 1_000_000)  # its last, 999,993 + 8, is out: refused
