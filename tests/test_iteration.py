"""Streaming a view: batches over T, 2-D and 3-D tiles with smaller edge tiles, seeded shuffles."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrow, SelectionError
from ome_arrow_core.errors import ArgumentError
from ome_arrow_core.iteration import windows


def locate(full: np.ndarray, item: np.ndarray) -> list[list[int]]:
    """For an item cut from ``full`` (unique values), the indices it takes along each axis; checks it is that block."""
    flat = full.reshape(-1)
    order = np.argsort(flat)
    where = order[np.searchsorted(flat[order], item.reshape(-1))]
    assert np.array_equal(flat[where], item.reshape(-1)), "item holds values that are not in the view"
    coords = np.unravel_index(where, full.shape)
    lists = []
    for k in range(full.ndim):
        ck = coords[k].reshape(item.shape)
        lists.append(ck[tuple(slice(None) if j == k else 0 for j in range(full.ndim))].tolist())
    np.testing.assert_array_equal(item, full[np.ix_(*lists)])
    return lists


@st.composite
def stream_case(draw: st.DrawFn) -> dict[str, Any]:
    layout = draw(st.sampled_from(["TCYX", "CYX", "TZCYX", "YX", "TYX", "ZYX", "YXC", "TYXC"]))
    sizes = {ax: draw(st.integers(1, 4 if ax in "TZC" else 13)) for ax in layout}
    if "T" not in layout:
        sizes.setdefault("T", 1)
    tile = draw(st.none() | st.tuples(st.integers(1, 14), st.integers(1, 14)))
    return {
        "layout": layout,
        "sizes": sizes,
        "tile": tile,
        "batch_size": draw(st.none() | st.integers(1, 5)),
        "shuffle": draw(st.booleans()),
        "seed": draw(st.integers(0, 3)),
        "prefetch": draw(st.sampled_from([0, 2])),
        "lazy": draw(st.booleans()),
    }


@settings(max_examples=100, deadline=None)
@given(case=stream_case())
def test_every_pixel_is_streamed_exactly_once(case: dict[str, Any]) -> None:
    layout, sizes = case["layout"], case["sizes"]
    dims = "".join(a for a in "TZCYX" if a in sizes or a in layout)
    shape = tuple(sizes.get(a, 1) for a in dims)
    arr = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape)
    img = OMEArrow(arr, dims)
    with tempfile.TemporaryDirectory() as d:
        if case["lazy"]:  # a scanned dataset: each item is its own read
            img.export("parquet", Path(d) / "s.ome.parquet", chunk_shape=(2, 5, 6))
            img = OMEArrow.scan(Path(d) / "s.ome.parquet")
        check_stream(img.tensor_view(layout=layout), case)


def check_stream(view: Any, case: dict[str, Any]) -> None:
    layout, tile = case["layout"], case["tile"]
    full = view.to_numpy()
    items = [
        np.from_dlpack(c)
        for c in view.iter_dlpack(
            batch_size=case["batch_size"],
            tile_size=tile,
            shuffle=case["shuffle"],
            seed=case["seed"],
            prefetch=case["prefetch"],
        )
    ]
    hits = np.zeros(full.shape, np.int32)
    starts = []
    for item in items:
        assert item.dtype == full.dtype and item.ndim == full.ndim
        idx = locate(full, item)
        hits[np.ix_(*idx)] += 1
        for ax, lst in zip(layout, idx):
            n = full.shape[layout.index(ax)]
            if ax == "T":
                assert len(lst) <= (case["batch_size"] or n)
                if not case["shuffle"]:
                    assert lst == list(range(lst[0], lst[0] + len(lst))) and lst[0] % (case["batch_size"] or n) == 0
            elif tile is not None and ax in "YX":
                size = tile[0] if ax == "Y" else tile[1]
                assert lst == list(range(lst[0], lst[0] + len(lst))) and lst[0] % size == 0
                assert len(lst) == min(size, n - lst[0])  # full tiles except at the edge
            else:
                assert lst == list(range(n))  # untiled axes come whole
        starts.append(tuple(lst[0] for ax, lst in zip(layout, idx) if ax == "T" or (tile and ax in "YX")))
    assert (hits == 1).all()
    if not case["shuffle"]:
        assert starts == sorted(starts)  # T batches outermost, then tile rows, then tile columns


def test_batches_over_t() -> None:
    a = np.arange(5 * 2 * 3 * 4, dtype=np.int16).reshape(5, 2, 3, 4)  # TCYX
    view = OMEArrow(a).tensor_view()
    assert view.layout == "TCZYX"
    batches = [np.from_dlpack(c) for c in view.iter_dlpack(batch_size=2)]
    assert [b.shape for b in batches] == [(2, 2, 1, 3, 4), (2, 2, 1, 3, 4), (1, 2, 1, 3, 4)]
    np.testing.assert_array_equal(np.concatenate(batches)[:, :, 0], a)
    whole = list(view.iter_dlpack(batch_size=None))
    assert len(whole) == 1 and np.from_dlpack(whole[0]).shape == (5, 2, 1, 3, 4)
    assert len(list(view.iter_dlpack())) == 5  # default: one T per item
    with pytest.raises(SelectionError, match="batch_size must be >= 1, got 0"):
        list(view.iter_dlpack(batch_size=0))


def test_layouts_without_t_yield_one_item_per_tile() -> None:
    a = np.arange(2 * 9 * 7, dtype=np.uint8).reshape(2, 9, 7)
    view = OMEArrow(a, "CYX").tensor_view()
    assert [np.from_dlpack(c).shape for c in view.iter_dlpack(batch_size=4)] == [(2, 9, 7)]
    tiles = [np.from_dlpack(c) for c in view.iter_dlpack(tile_size=(4, 5))]
    assert [t.shape for t in tiles] == [(2, 4, 5), (2, 4, 2), (2, 4, 5), (2, 4, 2), (2, 1, 5), (2, 1, 2)]
    np.testing.assert_array_equal(np.block([[tiles[2 * r], tiles[2 * r + 1]] for r in range(3)]), a)


def first_values(view: Any, **kwargs: Any) -> list[int]:
    return [int(np.from_dlpack(c).reshape(-1)[0]) for c in view.iter_dlpack(**kwargs)]


def test_shuffle_is_reproducible_with_a_seed_and_differs_across_seeds() -> None:
    a = np.arange(12 * 20 * 20, dtype=np.int32).reshape(12, 20, 20)
    view = OMEArrow(a, "TYX").tensor_view(layout="TYX")
    plain = first_values(view, batch_size=1, tile_size=(5, 5))
    runs = {seed: first_values(view, batch_size=1, tile_size=(5, 5), shuffle=True, seed=seed) for seed in range(4)}
    assert first_values(view, batch_size=1, tile_size=(5, 5), shuffle=True, seed=2) == runs[2]
    assert len({tuple(r) for r in runs.values()}) == 4  # every seed gives its own order
    assert all(sorted(r) == sorted(plain) and r != plain for r in runs.values())  # the same items, reordered
    # tiles alone are shuffled too
    plane = OMEArrow(a[0], "YX").tensor_view(layout="YX")
    tiles = {seed: first_values(plane, tile_size=(5, 5), shuffle=True, seed=seed) for seed in range(3)}
    assert len({tuple(r) for r in tiles.values()}) == 3
    assert all(sorted(r) == first_values(plane, tile_size=(5, 5)) for r in tiles.values())
    # T batches are gathered from a permutation of T
    batches = [np.from_dlpack(c) for c in view.iter_dlpack(batch_size=5, shuffle=True, seed=9)]
    assert [b.shape[0] for b in batches] == [5, 5, 2]
    ts = [int(v) // 400 for b in batches for v in b[:, 0, 0]]
    assert sorted(ts) == list(range(12)) and ts != list(range(12))
    assert [w["T"] for w in windows({"T": 12}, batch_size=5, shuffle=True, seed=9)] == [
        tuple(ts[0:5]),
        tuple(ts[5:10]),
        tuple(ts[10:12]),
    ]


def test_iter_tiles_3d() -> None:
    a = np.arange(2 * 5 * 3 * 7 * 9, dtype=np.uint16).reshape(2, 5, 3, 7, 9)  # TZCYX
    view = OMEArrow(a, "TZCYX").tensor_view(layout="TZCYX")
    caps = list(view.iter_tiles_3d((2, 4, 4)))
    assert len(caps) == 3 * 2 * 3  # z: 2+2+1, y: 4+3, x: 4+4+1; T comes whole by default
    tiles = [np.from_dlpack(c) for c in caps]
    assert tiles[0].shape == (2, 2, 3, 4, 4) and tiles[-1].shape == (2, 1, 3, 3, 1)
    np.testing.assert_array_equal(tiles[0], a[:, 0:2, :, 0:4, 0:4])
    np.testing.assert_array_equal(tiles[-1], a[:, 4:5, :, 4:7, 8:9])
    assert len(list(view.iter_tiles_3d((2, 4, 4), batch_size=1))) == 2 * 18
    zyx = OMEArrow(np.arange(5 * 7 * 9, dtype=np.int32).reshape(5, 7, 9), "ZYX").tensor_view(layout="ZYX")
    out = np.zeros((5, 7, 9), np.int64)
    for cap in zyx.iter_tiles_3d((3, 3, 3), shuffle=True, seed=1):
        tile = np.from_dlpack(cap)
        z, y, x = (int(i) for i in np.unravel_index(int(tile[0, 0, 0]), (5, 7, 9)))
        out[z : z + tile.shape[0], y : y + tile.shape[1], x : x + tile.shape[2]] += 1
    assert (out == 1).all()


def test_tiling_errors() -> None:
    view = OMEArrow(np.zeros((2, 6, 6), np.uint8), "CYX").tensor_view()
    with pytest.raises(SelectionError, match="cannot tile over Z: the view's layout has no Z axis"):
        list(view.iter_tiles_3d((1, 2, 2)))
    with pytest.raises(SelectionError, match="tile size along Y must be >= 1, got 0"):
        list(view.iter_dlpack(tile_size=(0, 2)))


@pytest.mark.parametrize("lazy", [False, True], ids=["in memory", "file"])
@pytest.mark.parametrize(
    ("option", "value", "match"),
    [
        ("prefetch", 1.5, r"prefetch takes an integer, got 1.5; round it first"),
        ("prefetch", "2", r"prefetch takes an integer, got '2' \(a str\)$"),
        ("prefetch", True, r"prefetch takes an integer, got True \(a bool\)$"),
        ("prefetch", -1, "prefetch must be >= 0"),
        ("seed", "a", "seed takes an int >= 0"),
        ("seed", 1.5, "seed takes an int >= 0"),
        ("seed", -3, "seed takes an int >= 0"),
    ],
)
def test_a_bad_prefetch_or_seed_is_an_argument_error_at_the_call(
    tmp_path: Path, lazy: bool, option: str, value: Any, match: str
) -> None:
    """Not numpy's or itertools' TypeError/ValueError at the first item (nor a negative prefetch taken as 0)."""
    img = OMEArrow(np.arange(2 * 6 * 6, dtype=np.uint8).reshape(2, 6, 6), "ZYX")
    if lazy:
        img.export("parquet", tmp_path / "a.ome.parquet")
        img = OMEArrow.scan(tmp_path / "a.ome.parquet")
    view = img.tensor_view()
    for stack in (None, 2):
        with pytest.raises(ArgumentError, match=match):
            view.iter_dlpack(tile_size=3, shuffle=True, stack=stack, **{option: value})
        with pytest.raises(ArgumentError, match=match):
            view.iter_tiles_3d((1, 3, 3), shuffle=True, stack=stack, **{option: value})


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [
        ("stack", True, r"^stack takes an integer, got True \(a bool\)$"),
        ("batch_size", 2.0, r"^batch_size takes an integer, got 2.0; round it first$"),
        ("tile_size", (4, "4"), r"^tile_size=\(h, w\) takes integers, got \['4'\] in \(4, '4'\) \(a str\)$"),
    ],
)
def test_a_count_that_is_not_an_integer_is_named_with_its_type(option: str, value: Any, match: str) -> None:
    """No "got [True] in (True,); round them first" for one value that is not a number."""
    view = OMEArrow(np.zeros((2, 6, 6), np.uint8), "ZYX").tensor_view()
    with pytest.raises(ArgumentError, match=match):
        view.iter_dlpack(**{option: value})


def test_items_can_be_contiguous_or_writable_copies() -> None:
    a = np.arange(3 * 8 * 10, dtype=np.float32).reshape(3, 8, 10)
    view = OMEArrow(a, "CYX").tensor_view(layout="YXC")
    for cap in view.iter_dlpack(tile_size=(3, 3), contiguous=True):
        assert np.from_dlpack(cap).flags.c_contiguous
    for cap in view.iter_dlpack(tile_size=(3, 3), mode="numpy"):
        out = np.from_dlpack(cap)
        assert out.flags.writeable and not np.shares_memory(out, view.to_numpy())
    zero_copy = [np.from_dlpack(c) for c in view.iter_dlpack(tile_size=(3, 3))]
    assert all(not t.flags.writeable for t in zero_copy)


def test_select_window() -> None:
    a = np.arange(4 * 6 * 8, dtype=np.int32).reshape(4, 6, 8)
    view = OMEArrow(a, "ZYX").tensor_view(layout="ZYX")
    sub = view.select_window(Y=range(1, 4), W=range(2, 8, 2))
    np.testing.assert_array_equal(sub.to_numpy(), a[:, 1:4, 2:8:2])
    assert np.shares_memory(sub.to_numpy(), view.to_numpy())
    with pytest.raises(SelectionError, match=r"axes \['C'\] are not in layout 'ZYX'"):
        view.select_window(C=range(1))


def test_windows_cover_the_product_of_batches_and_tiles() -> None:
    got = windows({"T": 3, "Y": 5, "X": 4}, batch_size=2, tiles={"Y": 2, "X": 3})
    expected = [
        {"T": t, "Y": y, "X": x}
        for t, y, x in itertools.product(
            [range(2), range(2, 3)], [range(2), range(2, 4), range(4, 5)], [range(3), range(3, 4)]
        )
    ]
    assert got == expected
