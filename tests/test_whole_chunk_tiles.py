"""The fast path of tile streams whose tiles are whole chunks: which boxes are whole chunks (worked out on the grid,
never by projection), the window selections of a stream, and the reads that take no per-tile projection: each
tile the file's pixels in a buffer of its own, every check made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ome_arrow_core.typed_chunk.whole_chunks as whole_chunks
from ome_arrow_core import OMEArrow
from ome_arrow_core.chunks import ChunkTable
from ome_arrow_core.dtypes import in_stored_order
from ome_arrow_core.iteration import grouped, windows
from ome_arrow_core.selection import Selection
from ome_arrow_core.typed_chunk.box_native import installed
from ome_arrow_core.view_spec import channels_read


def axis_index(draw: st.DrawFn, n: int) -> range | tuple[int, ...]:
    """A range (any step) or a gather of indices of an axis of ``n``."""
    if draw(st.booleans()):
        start = draw(st.integers(0, n - 1))
        return range(start, draw(st.integers(start + 1, n)), draw(st.sampled_from([1, 1, 1, 2])))
    return tuple(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=3, unique=True)))


@st.composite
def grids_and_boxes(draw: st.DrawFn) -> tuple[ChunkTable, list[Selection]]:
    sizes = dict(zip("TCZYX", [draw(st.integers(1, 3)) for _ in "TCZ"] + [draw(st.integers(1, 40)) for _ in "YX"]))
    edge = tuple(draw(st.integers(1, sizes[a])) for a in "TCZYX")
    table = ChunkTable.regular(sizes, edge)  # type: ignore[arg-type]
    boxes = []
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.booleans()):  # a chunk of the grid, exactly (ranges of its extent)
            row = draw(st.integers(0, len(table) - 1))
            lo, n = table.origin[row].tolist(), table.shape[row].tolist()
            t, c, z, y, x = (range(a, a + b) for a, b in zip(lo, n))
            boxes.append(Selection(t=t, z=z, c=c, y=y, x=x))
        else:  # anything: part of a chunk, several, a gather, a step
            t, c, z = (axis_index(draw, sizes[a]) for a in "TCZ")
            y0, x0 = draw(st.integers(0, sizes["Y"] - 1)), draw(st.integers(0, sizes["X"] - 1))
            y = range(y0, draw(st.integers(y0 + 1, sizes["Y"])))
            x = range(x0, draw(st.integers(x0 + 1, sizes["X"])))
            boxes.append(Selection(t=t, z=z, c=c, y=y, x=x))
    return table, boxes


@settings(max_examples=300, deadline=None)
@given(grids_and_boxes())
def test_whole_chunks_are_the_boxes_projections_find_one_complete_chunk_in(
    case: tuple[ChunkTable, list[Selection]],
) -> None:
    table, sels = case
    for _ in range(2):  # worked out, then remembered
        found = table.whole_chunks(sels)
        projected = [table.projections(sel) for sel in sels]
        whole = all(len(ps) == 1 and ps[0].is_complete_chunk for ps in projected)
        boxes = all(type(a) is range and a.step == 1 for s in sels for a in (s.t, s.z, s.c, s.y, s.x))
        if found is None:  # (gathers and steps are left to projections even when they pick a whole chunk)
            assert not (whole and boxes)
        else:
            assert whole
            rows, shapes = found
            assert rows == [ps[0].row for ps in projected]
            assert shapes == [ps[0].chunk_shape for ps in projected]


def test_a_table_that_is_no_grid_has_no_whole_chunks_found_on_it() -> None:
    table = ChunkTable(np.array([[0, 0, 0, 0, 0], [0, 0, 0, 0, 3]]), np.array([[1, 1, 1, 4, 3], [1, 1, 1, 4, 5]]))
    sel = Selection(t=range(1), z=range(1), c=range(1), y=range(4), x=range(3))
    assert table.grid is None and table.whole_chunks([sel]) is None


@st.composite
def views_and_windows(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """Arguments of ``tensor_view`` on a 2x3x2x30x40 image, and of ``windows`` over the view."""
    pick = st.one_of(st.none(), st.integers(0, 1), st.lists(st.integers(0, 1), min_size=1, max_size=2, unique=True))
    layout = draw(st.sampled_from(["TCZYX", "CZYX", "ZYX", "YX"]))
    kw: dict[str, Any] = {"layout": layout, "t": draw(pick), "z": draw(pick)}
    if layout in ("ZYX", "YX"):
        kw["channel_policy"] = "first"
    if draw(st.booleans()):
        y0, x0 = draw(st.integers(0, 20)), draw(st.integers(0, 30))
        kw["roi"] = (x0, y0, draw(st.integers(1, 40 - x0)), draw(st.integers(1, 30 - y0)))
    tiles: dict[str, int] = {"Y": draw(st.integers(4, 30)), "X": draw(st.integers(4, 40))}
    if "Z" in layout and draw(st.booleans()):
        tiles["Z"] = draw(st.integers(1, 2))
    return kw, {"batch_size": draw(st.sampled_from([None, 1, 2])), "tiles": tiles}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(views_and_windows())
def test_window_selections_are_the_views_selection_narrowed_by_each_window(
    tmp_path_factory: pytest.TempPathFactory, case: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    view_kw, window_kw = case
    out = tmp_path_factory.mktemp("w") / "w.ome.parquet"
    if not out.exists():
        OMEArrow(np.zeros((2, 3, 2, 30, 40), np.uint8), "TCZYX").export("parquet", out)
    try:
        view = OMEArrow.scan(out).tensor_view(**view_kw)
    except Exception:  # a layout that cannot drop the axes selected: no view, nothing to stream
        return
    items = windows(view._sizes, **window_kw)
    base = view.selection
    want = [
        channels_read(base.select(**{ax.lower(): i for ax, i in w.items()}), view.layout, view._policy) for w in items
    ]
    assert view._window_selections(items) == want


def written(tmp: Path, a: np.ndarray, chunk: tuple[int, int], codec: str | None) -> Path:
    out = tmp / "s.ome.parquet"
    OMEArrow(a, "ZCYX").export("parquet", out, chunk_shape=(1, *chunk), compression=codec)
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    dtype=st.sampled_from(["uint8", "int16", "uint16", "float32", "float64", ">u2", ">f4"]),
    yx=st.tuples(st.integers(5, 70), st.integers(5, 70)),
    chunk=st.tuples(st.integers(3, 30), st.integers(3, 30)),
    prefetch=st.integers(0, 2),
    codec=st.sampled_from([None, "zstd"]),
    kernel=st.booleans(),
)
def test_tiles_that_are_whole_chunks_are_read_together_each_the_files_pixels_in_its_own_buffer(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    dtype: str,
    yx: tuple[int, int],
    chunk: tuple[int, int],
    prefetch: int,
    codec: str | None,
    kernel: bool,
) -> None:
    """Read together by the Python steps (one ``preadv`` per run of pages) or, where the C kernel is installed and
    on, by its ``read_each`` (uncompressed pages of this machine's byte order; the others by the Python steps)."""
    rng = np.random.default_rng(sum(yx) + chunk[0])
    a = (rng.standard_normal((2, 1, *yx)) * 100).astype(dtype)
    img = OMEArrow.scan(written(tmp_path_factory.mktemp("t"), a, chunk, codec))
    img.to_numpy()  # audited: whole chunks are read by page ranges from now on
    together = native = 0
    real, real_native = whole_chunks.page_values_apart, whole_chunks.read_apart

    def counted(frag: Any, groups: np.ndarray) -> Any:
        nonlocal together
        together += len(groups)
        return real(frag, groups)

    def counted_native(opened: Any, frag: Any, groups: np.ndarray, *args: Any) -> Any:
        nonlocal together, native
        got = real_native(opened, frag, groups, *args)
        if got is not None:
            together += len(groups)
            native += len(groups)
        return got

    with monkeypatch.context() as m:
        m.setattr(whole_chunks, "page_values_apart", counted)
        m.setattr(whole_chunks, "read_apart", counted_native)
        m.setenv("OME_ARROW_KERNELS", "1" if kernel else "0")
        kept = []
        for z in range(2):
            stream = img.tensor_view(z=z, c=0, layout="YX").iter_dlpack(tile_size=chunk, prefetch=prefetch)
            got = [np.from_dlpack(t) for t in stream]
            want = [a[z, 0, y : y + chunk[0], x : x + chunk[1]] for y in range(0, yx[0], chunk[0])
                    for x in range(0, yx[1], chunk[1])]  # fmt: skip
            assert len(got) == len(want)
            for g, e in zip(got, want):
                assert g.dtype == e.dtype.newbyteorder("=") and not g.flags.writeable
                np.testing.assert_array_equal(g, e)
            kept += list(zip(got, want))
    tiles = len(kept)
    per_plane = grouped(range(tiles // 2), 1)  # a group of one tile is read on its own, the others together
    assert together == 2 * sum(len(g) for g in per_plane if len(g) > 1)
    by_kernel = kernel and installed() is not None and codec is None and in_stored_order(np.dtype(img.meta.dtype))
    assert native == (together if by_kernel else 0)
    assert len({g.__array_interface__["data"][0] for g, _ in kept}) == tiles  # no two tiles share memory
    for _ in range(2):  # streams again: fresh buffers, never the kept tiles'
        for z in range(2):
            list(img.tensor_view(z=z, c=0, layout="YX").iter_dlpack(tile_size=chunk, prefetch=prefetch))
    for g, e in kept:
        np.testing.assert_array_equal(g, e)
