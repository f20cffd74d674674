"""The warm single-image fast paths: box plans shared by images of one grid (chunks.cached_plan), selections that
are one whole chunk read into their own buffer by read_many (no copy), and the layout shape remembered by lazy
views. Each equals numpy's slice of the original pixels, and damage is still refused on each."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from damage import audited, chunk_page, flip_byte, lie_in_length
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ome_arrow_core.chunks as chunks
import ome_arrow_core.typed_chunk.chunk_reads as chunk_reads
import ome_arrow_core.typed_chunk.whole_chunks as whole_chunks
from ome_arrow_core import OMEArrow
from ome_arrow_core.chunks import ChunkTable, grid_box_projections
from ome_arrow_core.errors import ChecksumError, DamagedFileError, LayoutError
from ome_arrow_core.lazy import layout_shape
from ome_arrow_core.selection import Selection
from ome_arrow_core.typed_chunk import DatasetSource

ZCYX = (3, 2, 70, 90)
CHUNK = (1, 32, 40)  # ZYX: 3 x 3 chunks a plane, edge ones clipped


def image(seed: int, shape: tuple[int, ...] = ZCYX) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4096, shape).astype("<u2")


def written(tmp: Path, a: np.ndarray, name: str = "s", **options: Any) -> Path:
    out = tmp / f"{name}.ome.parquet"
    OMEArrow(a, "ZCYX").export("parquet", out, **{"chunk_shape": CHUNK, "compression": None, **options})
    return out


@st.composite
def boxes(draw: st.DrawFn) -> tuple[int, int, int, int, int, int]:
    z, c, ny, nx = ZCYX
    y0, x0 = draw(st.integers(0, ny - 1)), draw(st.integers(0, nx - 1))
    return (
        draw(st.integers(0, z - 1)),
        draw(st.integers(0, c - 1)),
        x0,
        y0,
        draw(st.integers(1, nx - x0)),
        draw(st.integers(1, ny - y0)),
    )


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(picks=st.lists(boxes(), min_size=1, max_size=6))
def test_images_of_one_grid_share_box_plans_and_each_reads_its_own_pixels(
    tmp_path_factory: pytest.TempPathFactory, picks: list[tuple[int, int, int, int, int, int]]
) -> None:
    tmp = tmp_path_factory.mktemp("p")
    a, b = image(1), image(2)
    one, two = OMEArrow.scan(written(tmp, a, "a")), OMEArrow.scan(written(tmp, b, "b"))
    for z, c, x, y, w, h in picks * 2:  # each box twice: the second read of each takes the remembered plan
        for img, px in ((one, a), (two, b)):
            got = img.tensor_view(z=z, c=c, roi=(x, y, w, h), layout="YX").to_numpy()
            np.testing.assert_array_equal(got, px[z, c, y : y + h, x : x + w])


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.tuples(*(st.integers(1, n) for n in (3, 3, 3, 40, 40))),
    edge=st.tuples(*(st.integers(1, n) for n in (2, 2, 2, 16, 16))),
    data=st.data(),
)
def test_a_remembered_plan_is_the_plan_worked_out_afresh(
    sizes: tuple[int, ...], edge: tuple[int, ...], data: st.DataObject
) -> None:
    table = ChunkTable.regular(dict(zip("TCZYX", sizes)), tuple(min(e, n) for e, n in zip(edge, sizes)))  # type: ignore[arg-type]
    box = []
    for n in sizes:
        lo = data.draw(st.integers(0, n - 1))
        box.append(range(lo, data.draw(st.integers(lo + 1, n))))
    sel = Selection(t=box[0], c=box[1], z=box[2], y=box[3], x=box[4])
    fresh = grid_box_projections(*table._ordered_grid, box)  # type: ignore[misc]
    assert table.projections(sel) == fresh
    assert table.projections(sel) == fresh  # remembered (when small enough), and the same
    other = ChunkTable.regular(dict(zip("TCZYX", sizes)), tuple(min(e, n) for e, n in zip(edge, sizes)))  # type: ignore[arg-type]
    assert other.projections(sel) == fresh


def test_plans_are_kept_for_a_bounded_number_of_boxes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunks, "PLANS", 5)
    monkeypatch.setattr(chunks, "_plans", {})
    table = ChunkTable.regular({"T": 1, "C": 1, "Z": 1, "Y": 64, "X": 64}, (1, 1, 1, 8, 8))
    for k in range(20):
        sel = Selection(t=range(1), c=range(1), z=range(1), y=range(k, k + 9), x=range(0, 3))
        assert table.projections(sel) == grid_box_projections(*table._ordered_grid, [sel.t, sel.c, sel.z, sel.y, sel.x])  # type: ignore[misc]
        assert len(chunks._plans) <= 5
    whole = Selection.full({"T": 1, "C": 1, "Z": 1, "Y": 64, "X": 64})  # 64 chunks: at most PLAN_CHUNKS
    monkeypatch.setattr(chunks, "PLAN_CHUNKS", 63)
    table.projections(whole)
    assert all(len(v) <= 63 for v in chunks._plans.values())


def test_a_table_not_numbered_in_grid_order_is_planned_afresh() -> None:
    base = ChunkTable.regular({"T": 1, "C": 1, "Z": 1, "Y": 20, "X": 20}, (1, 1, 1, 10, 10))
    order = np.array([3, 2, 1, 0])
    table = ChunkTable(base.origin[order], base.shape[order])
    assert table._dense_grid is None
    sel = Selection(t=range(1), c=range(1), z=range(1), y=range(5, 15), x=range(0, 20))
    assert sorted(p.row for p in table.projections(sel)) == [0, 1, 2, 3]
    assert {(p.row, p.chunk_selection[3].start) for p in table.projections(sel)} == {(0, 0), (1, 0), (2, 5), (3, 5)}


class Counted:
    """Counts whole chunks read by positioned reads (one_block's, and whole_blocks' read together, by the Python steps
    or the C kernel) and page_stream placements (the real functions run)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.whole = 0
        self.placed = 0
        whole, placed = chunk_reads._positioned_block, chunk_reads.place_pages
        together, kernel = whole_chunks.page_values_apart, whole_chunks.read_apart

        def counting_whole(*args: Any) -> Any:
            self.whole += 1
            return whole(*args)

        def counting_together(frag: Any, groups: np.ndarray) -> Any:
            self.whole += len(groups)
            return together(frag, groups)

        def counting_kernel(opened: Any, frag: Any, groups: np.ndarray, *args: Any) -> Any:
            got = kernel(opened, frag, groups, *args)
            self.whole += 0 if got is None else len(groups)  # (None: the Python steps read them, counted there)
            return got

        def counting_placed(*args: Any) -> None:
            self.placed += 1
            placed(*args)

        monkeypatch.setattr(chunk_reads, "_positioned_block", counting_whole)
        monkeypatch.setattr(whole_chunks, "page_values_apart", counting_together)
        monkeypatch.setattr(whole_chunks, "read_apart", counting_kernel)
        monkeypatch.setattr(chunk_reads, "place_pages", counting_placed)


def test_whole_chunk_selections_read_together_are_views_of_their_own_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = image(3)
    src = audited(written(tmp_path, a))
    full = Selection.full(src.meta.sizes)
    whole = full.select(z=1, c=0, y=range(32, 64), x=range(40, 80))  # one whole chunk
    edge = full.select(z=2, c=1, y=range(64, 70), x=range(80, 90))  # a clipped edge chunk, whole
    part = full.select(z=0, c=1, y=range(3, 50), x=range(5, 60))  # four chunks in part
    counted = Counted(monkeypatch)
    outs = src.read_many([whole, edge, part, whole])
    for sel, got in zip([whole, edge, part, whole], outs):
        np.testing.assert_array_equal(got, sel.apply(a[None]))
        assert not got.flags.writeable
    assert counted.whole == 2 and counted.placed == 1  # the chunk asked for twice was read once
    assert outs[0] is not outs[3] and np.shares_memory(outs[0], outs[3])
    shared = full.select(z=0, c=1, y=range(0, 32), x=range(0, 40))  # a whole chunk the partial selection reads too
    counted.whole = counted.placed = 0
    for sel, got in zip([shared, part], src.read_many([shared, part])):
        np.testing.assert_array_equal(got, sel.apply(a[None]))
    assert counted.whole == 0 and counted.placed == 1  # read (and checked) once, with the rest


def test_whole_chunks_of_an_image_not_read_before_are_read_together_and_audited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = image(4)
    src = DatasetSource(written(tmp_path, a))
    full = Selection.full(src.meta.sizes)
    sels = [full.select(z=z, c=c, y=range(0, 32), x=range(0, 40)) for z in range(3) for c in range(2)]
    counted = Counted(monkeypatch)
    for sel, got in zip(sels, src.read_many(sels)):
        np.testing.assert_array_equal(got, sel.apply(a[None]))
    assert counted.whole == 0  # through the footer, which audits them: one batch
    for sel, got in zip(sels, src.read_many(sels)):
        np.testing.assert_array_equal(got, sel.apply(a[None]))
    assert counted.whole == len(sels)  # audited now: each by one positioned read


def test_damage_in_a_streamed_tile_is_refused(tmp_path: Path) -> None:
    a = image(5)
    out = written(tmp_path, a)
    img = OMEArrow.scan(out)
    img.to_numpy()  # audited
    view = img.tensor_view(z=1, c=0, layout="YX")
    tiles = [np.from_dlpack(t).copy() for t in view.iter_dlpack(tile_size=(32, 40), prefetch=2)]
    assert len(tiles) == 9
    np.testing.assert_array_equal(tiles[4], a[1, 0, 32:64, 40:80])
    src = audited(out)
    middle = np.flatnonzero((src._chunks.origin == [0, 0, 1, 32, 40]).all(axis=1))  # TCZYX: z=1, c=0, the middle
    row = int(src._index_rows[int(middle[0])])
    off, size = chunk_page(src, int(src._opened.columns["row_group_id"][row]))
    flip_byte(out / "chunks.parquet", off + size // 2)
    with pytest.raises(ChecksumError, match="do not match their checksum"):
        list(view.iter_dlpack(tile_size=(32, 40), prefetch=2))
    flip_byte(out / "chunks.parquet", off + size // 2)  # repaired
    again = [np.from_dlpack(t).copy() for t in view.iter_dlpack(tile_size=(32, 40), prefetch=2)]
    for x, y in zip(tiles, again):
        np.testing.assert_array_equal(x, y)
    os.truncate(out / "chunks.parquet", off + 11)
    with pytest.raises(DamagedFileError, match="the file is truncated"):
        list(view.iter_dlpack(tile_size=(32, 40), prefetch=2))


def test_a_lying_length_in_a_whole_chunk_page_is_refused(tmp_path: Path) -> None:
    a = image(6)
    out = written(tmp_path, a)
    src = audited(out)
    full = Selection.full(src.meta.sizes)
    whole = full.select(z=0, c=0, y=range(0, 32), x=range(0, 40))
    off, _ = chunk_page(src, 0)
    lie_in_length(out / "chunks.parquet", off)  # the value's length prefix lies
    with pytest.raises(DamagedFileError, match="one defined PLAIN value"):
        src.read_many([whole, whole])


def test_the_layout_shape_is_remembered_and_a_bad_layout_refused_every_time(tmp_path: Path) -> None:
    img = OMEArrow.scan(written(tmp_path, image(7)))
    assert img.tensor_view(z=1, c=0, layout="YX").shape == (70, 90)
    assert img.tensor_view(z=1, layout="CYX").shape == (2, 70, 90)
    assert layout_shape((1, 3, 2, 70, 90), "ZCYX", "error") == (3, 2, 70, 90)
    assert layout_shape((1, 1, 2, 5, 6), "YX", "first") == (5, 6)
    for _ in range(2):
        with pytest.raises(LayoutError, match="drops non-singleton axis C"):
            img.tensor_view(z=1, layout="YX")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    chunk=st.tuples(st.integers(5, 70), st.integers(7, 90)),
    tile=st.tuples(st.integers(5, 70), st.integers(7, 90)),
    same=st.booleans(),
    prefetch=st.integers(0, 3),
)
def test_tile_streams_equal_numpys_tiles_whole_chunk_or_not(
    tmp_path_factory: pytest.TempPathFactory,
    chunk: tuple[int, int],
    tile: tuple[int, int],
    same: bool,
    prefetch: int,
) -> None:
    a = image(8)
    img = OMEArrow.scan(written(tmp_path_factory.mktemp("t"), a, chunk_shape=(1, *chunk)))
    img.to_numpy()  # audited: whole-chunk tiles are read by positioned reads
    h, w = chunk if same else tile  # tiles that are the chunks (each its read buffer), or any other tiling
    for z, c in ((0, 1), (2, 0)):
        view = img.tensor_view(z=z, c=c, layout="YX")
        got = [np.from_dlpack(t) for t in view.iter_dlpack(tile_size=(h, w), prefetch=prefetch)]
        want = [a[z, c, y : y + h, x : x + w] for y in range(0, ZCYX[2], h) for x in range(0, ZCYX[3], w)]
        assert len(got) == len(want)
        for g, e in zip(got, want):
            np.testing.assert_array_equal(g, e)
