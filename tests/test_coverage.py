"""check_coverage: accepts exactly the box sets that write every pixel once (property tests)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_arrow_core.chunks import ChunkTable
from ome_arrow_core.coverage import MAX_CELLS, check_coverage
from ome_arrow_core.errors import DamagedFileError

Boxes = tuple[np.ndarray, np.ndarray, list[int]]


@st.composite
def regular_grids(draw: st.DrawFn) -> Boxes:
    sizes = [
        draw(st.integers(1, 4)),
        draw(st.integers(1, 3)),
        draw(st.integers(1, 4)),
        draw(st.integers(1, 40)),
        draw(st.integers(1, 40)),
    ]
    chunk = tuple(draw(st.integers(1, n)) for n in sizes)
    table = ChunkTable.regular(dict(zip("TCZYX", sizes)), chunk)  # type: ignore[arg-type]
    return table.origin, table.shape, sizes


@st.composite
def guillotine_tilings(draw: st.DrawFn) -> Boxes:
    """Irregular exact covers: the image cut in two along a random axis, then one of the pieces, and so on."""
    sizes = [
        draw(st.integers(1, 3)),
        draw(st.integers(1, 2)),
        draw(st.integers(1, 3)),
        draw(st.integers(1, 12)),
        draw(st.integers(1, 12)),
    ]
    boxes = [(np.zeros(5, np.int64), np.array(sizes, np.int64))]
    for _ in range(draw(st.integers(0, 25))):
        k = draw(st.integers(0, len(boxes) - 1))
        origin, shape = boxes[k]
        axis = draw(st.integers(0, 4))
        if shape[axis] < 2:
            continue
        cut = draw(st.integers(1, int(shape[axis]) - 1))
        first, second = shape.copy(), shape.copy()
        first[axis], second[axis] = cut, shape[axis] - cut
        moved = origin.copy()
        moved[axis] += cut
        boxes[k : k + 1] = [(origin, first), (moved, second)]
    order = draw(st.permutations(range(len(boxes))))
    return (np.array([boxes[i][0] for i in order]), np.array([boxes[i][1] for i in order]), sizes)


covers = st.one_of(regular_grids(), guillotine_tilings())


@settings(max_examples=150, deadline=None)
@given(covers)
def test_exact_covers_are_accepted(cover: Boxes) -> None:
    origin, shape, sizes = cover
    check_coverage(origin, shape, sizes, "test")


@settings(max_examples=150, deadline=None)
@given(covers, st.data())
def test_a_dropped_box_is_refused(cover: Boxes, data: st.DataObject) -> None:
    origin, shape, sizes = cover
    k = data.draw(st.integers(0, len(origin) - 1))
    with pytest.raises(DamagedFileError):
        check_coverage(np.delete(origin, k, axis=0), np.delete(shape, k, axis=0), sizes, "test")


@settings(max_examples=150, deadline=None)
@given(covers, st.data())
def test_a_repeated_box_is_refused(cover: Boxes, data: st.DataObject) -> None:
    origin, shape, sizes = cover
    k = data.draw(st.integers(0, len(origin) - 1))
    with pytest.raises(DamagedFileError, match="written by 2"):
        check_coverage(np.r_[origin, origin[k : k + 1]], np.r_[shape, shape[k : k + 1]], sizes, "test")


@settings(max_examples=150, deadline=None)
@given(covers, st.data())
def test_a_shifted_box_is_refused(cover: Boxes, data: st.DataObject) -> None:
    origin, shape, sizes = cover
    k = data.draw(st.integers(0, len(origin) - 1))
    axis = data.draw(st.integers(0, 4))
    step = data.draw(st.integers(-3, 3).filter(bool))
    moved = origin.copy()
    moved[k, axis] += step
    with pytest.raises(DamagedFileError):
        check_coverage(moved, shape, sizes, "test")


@settings(max_examples=150, deadline=None)
@given(covers, st.data())
def test_a_grown_or_shrunk_box_is_refused(cover: Boxes, data: st.DataObject) -> None:
    origin, shape, sizes = cover
    k = data.draw(st.integers(0, len(origin) - 1))
    axis = data.draw(st.integers(0, 4))
    changed = shape.copy()
    changed[k, axis] += data.draw(st.sampled_from([-1, 1]))
    with pytest.raises(DamagedFileError):
        check_coverage(origin, changed, sizes, "test")


def test_messages_name_the_place_and_the_row() -> None:
    table = ChunkTable.regular({"T": 1, "C": 1, "Z": 1, "Y": 4, "X": 4}, (1, 1, 1, 2, 2))
    with pytest.raises(
        DamagedFileError,
        match=r"^f\.parquet \[index\]: no chunk row holds the pixel at t=0, c=0, "
        r"z=0, y=2, x=0; a chunk row is missing",
    ):
        check_coverage(
            np.delete(table.origin, 2, 0), np.delete(table.shape, 2, 0), [1, 1, 1, 4, 4], "f.parquet [index]"
        )
    with pytest.raises(DamagedFileError, match=r"chunk row 7 \(origin \(0, 0, 0, 4, 2\) shape \(1, 1, 1, 2, 2\)"):
        origin = table.origin.copy()
        origin[1, 3] = 4
        check_coverage(origin, table.shape, [1, 1, 1, 4, 4], "f", rows=np.arange(6, 10))


def test_pathological_layouts_are_refused_without_building_the_grid() -> None:
    """Boxes whose edges cut the image into far more cells than there are boxes."""
    n = 3000
    rng = np.random.default_rng(0)
    origin = np.zeros((n, 5), np.int64)
    origin[:, 2:] = rng.integers(0, 10**6, (n, 3))
    shape = np.ones((n, 5), np.int64)
    with pytest.raises(DamagedFileError, match="too irregular a layout to verify"):
        check_coverage(origin, shape, [1, 1, 10**6 + 1, 10**6 + 1, 10**6 + 1], "f")
    assert MAX_CELLS < n**3


def test_an_empty_box_list_is_refused() -> None:
    with pytest.raises(DamagedFileError, match="no chunk rows hold the pixels"):
        check_coverage(np.zeros((0, 5)), np.zeros((0, 5)), [1, 1, 1, 2, 2], "f")
