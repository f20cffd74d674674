"""Chunk projections (ChunkTable.projections, box_projections): copying every projected chunk into the output
gives exactly what numpy indexing of the whole image gives, for boxes and index lists alike."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_arrow_core.chunks import ChunkTable, box_projections
from ome_arrow_core.selection import Selection


def _image(sizes: tuple[int, ...]) -> np.ndarray:
    """A TZCYX image whose every pixel is distinct."""
    return np.arange(int(np.prod(sizes)), dtype=np.int32).reshape(sizes)


def _place(table: ChunkTable, tzcyx: np.ndarray, sel: Selection) -> np.ndarray:
    out = np.full(sel.shape, -1, dtype=tzcyx.dtype)
    tczyx = tzcyx.transpose(0, 2, 1, 3, 4)
    for p in table.projections(sel):
        o, s = table.origin[p.row], table.shape[p.row]
        block = np.ascontiguousarray(tczyx[tuple(slice(int(a), int(a + n)) for a, n in zip(o, s))])
        assert block.shape == p.chunk_shape
        p.copy(block, out)
    return out


def _axis(draw: st.DrawFn, size: int) -> range | tuple[int, ...]:
    if draw(st.booleans()):
        start = draw(st.integers(0, size - 1))
        return range(start, draw(st.integers(start + 1, size)))
    return tuple(draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=4)))  # repeats and any order


@st.composite
def cases(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, int, int, int, int], Selection]:
    sizes = tuple(draw(st.integers(1, n)) for n in (3, 3, 3, 9, 11))  # TZCYX
    chunk = tuple(draw(st.integers(1, n)) for n in (sizes[0], sizes[2], sizes[1], sizes[3], sizes[4]))  # TCZYX
    t, z, c = (_axis(draw, sizes[k]) for k in range(3))
    y0 = draw(st.integers(0, sizes[3] - 1))
    x0 = draw(st.integers(0, sizes[4] - 1))
    y = range(y0, draw(st.integers(y0 + 1, sizes[3])))
    x = range(x0, draw(st.integers(x0 + 1, sizes[4])))
    return sizes, chunk, Selection(t, z, c, y, x)  # type: ignore[return-value]


@settings(max_examples=200, deadline=None)
@given(cases())
def test_projections_place_what_numpy_indexing_selects(
    case: tuple[tuple[int, ...], tuple[int, ...], Selection],
) -> None:
    sizes, chunk, sel = case
    table = ChunkTable.regular(dict(zip("TZCYX", sizes)), chunk)  # type: ignore[arg-type]
    image = _image(sizes)
    np.testing.assert_array_equal(_place(table, image, sel), sel.apply(image))


@settings(max_examples=200, deadline=None)
@given(cases())
def test_a_projection_is_complete_only_for_a_chunk_selected_whole(
    case: tuple[tuple[int, ...], tuple[int, ...], Selection],
) -> None:
    sizes, chunk, sel = case
    table = ChunkTable.regular(dict(zip("TZCYX", sizes)), chunk)  # type: ignore[arg-type]
    for p in table.projections(sel):
        o, s = table.origin[p.row], table.shape[p.row]
        # an index list takes every plane of the chunk once, in order (other chunks' planes may be selected too)
        whole = all(
            [i - int(o[k]) for i in sel.axis(ax) if o[k] <= i < o[k] + s[k]] == list(range(int(s[k])))
            for k, ax in enumerate("TCZYX")
            if not isinstance(sel.axis(ax), range)
        )
        inside = all(
            sel.axis(ax).start <= o[k] and o[k] + s[k] <= sel.axis(ax).stop  # type: ignore[union-attr]
            for k, ax in enumerate("TCZYX")
            if isinstance(sel.axis(ax), range)
        )
        assert p.is_complete_chunk == (whole and inside)


def test_box_projections_take_one_box_per_chunk() -> None:
    """Chunks of two images in one call, each projected onto its own image's box; a chunk outside its box is left out."""
    origin = np.array([[0, 0, 0, 0, 0], [0, 0, 0, 0, 4], [0, 0, 0, 0, 0], [0, 0, 0, 0, 4]])
    shape = np.array([[1, 1, 1, 4, 4]] * 4)
    start = np.array([[0, 0, 0, 1, 1], [0, 0, 0, 1, 1], [0, 0, 0, 0, 5], [0, 0, 0, 0, 5]])
    stop = np.array([[1, 1, 1, 3, 3], [1, 1, 1, 3, 3], [1, 1, 1, 4, 8], [1, 1, 1, 4, 8]])
    got = box_projections(origin, shape, start, stop)
    assert [p.row for p in got] == [0, 3]  # chunk 1 misses its box x 1..3, chunk 2 misses x 5..8
    assert got[0].chunk_selection[3:] == (slice(1, 3), slice(1, 3)) and got[0].out_selection[3:] == (slice(0, 2),) * 2
    assert got[1].chunk_selection[4] == slice(1, 4) and got[1].out_selection[4] == slice(0, 3)
    assert not got[0].is_complete_chunk and not got[1].is_complete_chunk


@st.composite
def grid_boxes(draw: st.DrawFn) -> tuple[dict[str, int], tuple[int, int, int, int, int], list[range]]:
    sizes = {ax: draw(st.integers(1, n)) for ax, n in zip("TCZYX", (3, 3, 4, 12, 13))}
    chunk = tuple(draw(st.integers(1, sizes[ax])) for ax in "TCZYX")
    box = []
    for ax in "TCZYX":
        start = draw(st.integers(0, sizes[ax] - 1))
        box.append(range(start, draw(st.integers(start + 1, sizes[ax]))))
    return sizes, chunk, box  # type: ignore[return-value]


@settings(max_examples=300, deadline=None)
@given(grid_boxes(), st.booleans())
def test_grid_boxes_project_as_box_projections_do(
    case: tuple[dict[str, int], tuple[int, int, int, int, int], list[range]], shuffled: bool
) -> None:
    """The per-axis projection of boxes over a regular grid (the fast path) returns exactly the projections the
    array computation does, in row order; a table whose rows are not in grid order takes the array path."""
    sizes, chunk, box = case
    table = ChunkTable.regular(sizes, chunk)
    if shuffled and len(table) > 1:
        order = np.random.default_rng(len(table)).permutation(len(table))
        table = ChunkTable(table.origin[order], table.shape[order])
    t, c, z, y, x = box
    got = table.projections(Selection(t, z, c, y, x))
    start = np.array([[r.start for r in box]], dtype=np.int64)
    stop = np.array([[r.stop for r in box]], dtype=np.int64)
    expected = box_projections(table.origin, table.shape, start, stop)
    assert sorted(got) == sorted(expected) if shuffled else got == expected
    assert [p.row for p in got] == sorted(p.row for p in got)


def brute_grid(table: ChunkTable) -> tuple[np.ndarray, np.ndarray] | None:
    """ChunkTable.grid the plain way: every cell of the chunk edge's grid holds exactly one row, clipped at the
    image's end."""
    edge = table.shape.max(axis=0)
    full = (table.origin + table.shape).max(axis=0)
    counts = [-(-int(f) // int(e)) for f, e in zip(full, edge)]
    cells = np.full(counts, -1, dtype=np.int64)
    for row, (o, s) in enumerate(zip(table.origin.tolist(), table.shape.tolist())):
        if any(a % int(e) for a, e in zip(o, edge)):
            return None
        if any(n != min(int(e), int(f) - a) for n, e, f, a in zip(s, edge, full, o)):
            return None
        cell = tuple(a // int(e) for a, e in zip(o, edge))
        if cells[cell] != -1:
            return None
        cells[cell] = row
    return (edge, cells) if (cells >= 0).all() else None


@settings(max_examples=200, deadline=None)
@given(grid_boxes(), st.sampled_from(["ordered", "shuffled", "dropped", "doubled"]))
def test_grid_is_the_cell_of_every_row(
    case: tuple[dict[str, int], tuple[int, int, int, int, int], list[range]], how: str
) -> None:
    """The grid of a table in cell order (no scatter), shuffled, with a chunk missing or listed twice is what
    the plain construction finds (None when the chunks do not tile the image once each)."""
    sizes, chunk, _ = case
    table = ChunkTable.regular(sizes, chunk)
    order = np.arange(len(table))
    rng = np.random.default_rng(len(table))
    if how == "shuffled":
        order = rng.permutation(len(table))
    elif how == "dropped" and len(table) > 1:
        order = np.delete(order, int(rng.integers(len(table))))
    elif how == "doubled":
        order = np.append(order, int(rng.integers(len(table))))
    table = ChunkTable(table.origin[order], table.shape[order])
    got, want = table.grid, brute_grid(table)
    assert (got is None) == (want is None)
    if got is not None and want is not None:
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
