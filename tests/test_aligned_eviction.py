"""Aligned index row groups dropped and read again (typed_chunk/aligned_index.py, lazy_rows.py).

At most GROUPS_KEPT index row groups stay loaded, besides those a read still holds rows of: images read in any
order, one by one or in batches larger than what is kept, and images held open while others load, read right; a
dropped group read again is checked again (flipped bytes, a truncated table are refused); released rows never read
as anything but their values or zeros.
"""

from __future__ import annotations

import gc
import itertools
import os
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from damage import flip_byte
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_core.errors import OMEArrowError
from ome_arrow_core.typed_chunk import aligned_index
from ome_arrow_core.typed_chunk.lazy_rows import LazyColumns
from ome_arrow_core.typed_chunk.opening import clear_cache, open_dataset

#: Datasets written without pixel locators (as before them): reads here go through the index (see conftest).
pytestmark = pytest.mark.usefixtures("written_without_locators")


def image(i: int) -> np.ndarray:
    """Image ``i`` (ZYX uint16 1x6x5), different for every i."""
    return ((np.arange(30, dtype=np.int64) * 3 + 11 * i) % 65521).astype(np.uint16).reshape(1, 6, 5)


def plate(path: Path, n: int, per_group: int = 2, **options: object) -> Path:
    return write_dataset(
        (image(i) for i in range(n)), path, dim_order="ZYX", images_per_group=per_group, progress=False, **options
    )


@pytest.fixture
def kept_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aligned_index, "GROUPS_KEPT", 1)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31), batch=st.integers(1, 9))
def test_reads_in_any_order_and_batches_larger_than_what_is_kept_are_right(
    tmp_path_factory: pytest.TempPathFactory, seed: int, batch: int
) -> None:
    old = aligned_index.GROUPS_KEPT
    aligned_index.GROUPS_KEPT = 1
    try:
        n = 17
        path = plate(tmp_path_factory.mktemp("p") / "p.ome.parquet", n)
        clear_cache()
        ds = OMEArrowDataset.scan(path)
        order = np.random.default_rng(seed).permutation(n)
        for i in order[:6].tolist():
            np.testing.assert_array_equal(ds[i].to_numpy().reshape(1, 6, 5), image(i))
        for a in range(0, n, batch):  # a batch pins every group it reads until it has read them
            idx = order[a : a + batch].tolist()
            got = ds.read(idx).reshape(len(idx), 1, 6, 5)
            np.testing.assert_array_equal(got, np.stack([image(i) for i in idx]))
        gc.collect()
        ds[int(order[0])].to_numpy()
        assert open_dataset(path).aligned is not None
        assert open_dataset(path).aligned.loaded == 1
    finally:
        aligned_index.GROUPS_KEPT = old


def test_images_held_open_pin_their_groups_while_others_load(tmp_path: Path, kept_one: None) -> None:
    n = 20
    path = plate(tmp_path / "p.ome.parquet", n)
    clear_cache()
    ds = OMEArrowDataset.scan(path)
    held = {i: ds[i] for i in range(0, n, 2)}  # one image of each of the ten groups, not yet read
    aligned = open_dataset(path).aligned
    assert aligned is not None and aligned.loaded == 10  # none may be dropped: their rows are held
    for i in range(1, n, 2):
        np.testing.assert_array_equal(ds[i].to_numpy().reshape(1, 6, 5), image(i))
    for i, img in held.items():
        np.testing.assert_array_equal(img.to_numpy().reshape(1, 6, 5), image(i))
    del held, img
    gc.collect()
    ds[3].to_numpy()
    assert aligned.loaded == 1
    checks = aligned.checks[0]
    assert len(checks) == 1  # the dropped groups' read checks were withdrawn


def _group_span(path: Path, g: int) -> tuple[int, int]:
    """(first byte, bytes) of row group ``g`` of the index table."""
    rg = pq.read_metadata(path / "index.parquet").row_group(g)
    starts = [rg.column(c).dictionary_page_offset or rg.column(c).data_page_offset for c in range(rg.num_columns)]
    return min(starts), sum(rg.column(c).total_compressed_size for c in range(rg.num_columns))


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_dropped_group_read_again_is_checked_again(tmp_path: Path, kept_one: None, damage: str) -> None:
    path = plate(tmp_path / "p.ome.parquet", 12)
    clear_cache()
    opened = open_dataset(path)
    assert opened.aligned is not None
    opened.chunk_rows(0)  # group 0 loaded, its rows not held
    for pos in (2, 4, 6):
        opened.chunk_rows(pos)
    assert opened.aligned.loaded == 1
    at, size = _group_span(path, 0)
    if damage == "flip":
        flip_byte(path / "index.parquet", at + size // 2, 0xFF)
    else:
        os.truncate(path / "index.parquet", at + size // 2)
    with pytest.raises(OMEArrowError):
        opened.chunk_rows(0)
    with pytest.raises(OMEArrowError):  # and stays refused
        opened.chunk_rows(1)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 6000),
    cuts=st.lists(st.integers(0, 6000), min_size=2, max_size=12, unique=True),
    drop=st.integers(0, 10),
)
def test_released_rows_read_as_their_values_or_zeros_and_held_rows_keep_theirs(
    n: int, cuts: list[int], drop: int
) -> None:
    bounds = sorted({min(c, n) for c in cuts} | {0, n})
    ranges = list(itertools.pairwise(bounds))
    cols = LazyColumns(n, {"a": np.int64, "b": np.int32, "c": np.bool_})
    want = {k: (np.arange(n) * 7 + 1).astype(v.dtype) for k, v in cols.arrays.items()}
    want["c"] = np.ones(n, dtype=bool)
    for k, v in cols.arrays.items():
        v[:] = want[k]
    lo, hi = ranges[drop % len(ranges)]
    held = np.array([r for r in ranges if r != (lo, hi)], dtype=np.int64).reshape(-1, 2)
    cols.release(lo, hi, held)
    for k, v in cols.arrays.items():
        inside = np.zeros(n, dtype=bool)
        inside[lo:hi] = True
        np.testing.assert_array_equal(v[~inside], want[k][~inside])
        assert ((v[inside] == want[k][inside]) | (v[inside] == 0)).all()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise(MADV_DONTNEED) zeroes pages on Linux")
def test_whole_pages_of_released_rows_are_handed_back() -> None:
    n = 1 << 16
    cols = LazyColumns(n, {"a": np.int64})
    cols.arrays["a"][:] = 5
    cols.release(1000, 60000, np.array([[0, 1000], [60000, n]], dtype=np.int64))
    a = cols.arrays["a"]
    assert (a[:1000] == 5).all() and (a[60000:] == 5).all()
    assert (a[1024:59904] == 0).all()  # the pages wholly inside read as fresh zeros


def test_a_batch_over_groups_of_whole_pages_reads_right_while_others_are_released(
    tmp_path: Path, kept_one: None
) -> None:
    n, per = 2600, 1024  # index row groups of 1,024 rows: their arrays' pages are released whole when dropped
    tiny = [np.full((1, 2, 2), i % 65521, dtype=np.uint16) for i in range(n)]
    path = write_dataset(iter(tiny), tmp_path / "p.ome.parquet", dim_order="ZYX", images_per_group=per, progress=False)
    clear_cache()
    ds = OMEArrowDataset.scan(path)
    idx = [5, 2599, 1030, 2047, 6, 2048]
    np.testing.assert_array_equal(ds.read(idx).reshape(len(idx), 1, 2, 2), np.stack([tiny[i] for i in idx]))
    held = [ds[i] for i in (7, 1500)]
    for i in (2100, 10, 1200, 2500):
        np.testing.assert_array_equal(ds[i].to_numpy().reshape(1, 2, 2), tiny[i])
    for i, img in zip((7, 1500), held):
        np.testing.assert_array_equal(img.to_numpy().reshape(1, 2, 2), tiny[i])


def test_threads_dropping_and_loading_groups_while_others_read_get_every_image(tmp_path: Path, kept_one: None) -> None:
    from concurrent.futures import ThreadPoolExecutor

    n = 60
    path = plate(tmp_path / "p.ome.parquet", n, per_group=3)
    clear_cache()
    ds = OMEArrowDataset.scan(path)
    order = [int(i) for i in np.random.default_rng(7).permutation(np.repeat(np.arange(n), 3))]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda i: ds[i].to_numpy().reshape(1, 6, 5), order))
        batches = list(pool.map(lambda a: ds.read(order[a : a + 5]), range(0, len(order), 5)))
    for i, a in zip(order, got):
        np.testing.assert_array_equal(a, image(i))
    for a, b in zip(range(0, len(order), 5), batches):
        idx = order[a : a + 5]
        np.testing.assert_array_equal(b.reshape(len(idx), 1, 6, 5), np.stack([image(i) for i in idx]))


def _group() -> aligned_index._Loaded:
    return aligned_index._Loaded(0, 1, None, None)  # type: ignore[arg-type]


def test_a_batch_holding_many_rows_prunes_its_holders_a_few_times_not_once_per_image() -> None:
    found = _group()
    alive, last, prunes = [], found.holders, 0
    for _ in range(1024):  # a batch read holds each image's rows until it has read them all
        rows = np.zeros(2, dtype=np.int64)
        found.hold(rows)
        alive.append(rows)
        if found.holders is not last:  # each pruning makes a new list (``last`` keeps the old one alive)
            last, prunes = found.holders, prunes + 1
    assert len(found.holders) == 1024 and found.held  # none forgotten while alive
    assert prunes <= 6  # pruned when the holders doubled (32, 64, ... 512), not 992 times
    del alive, rows, last
    gc.collect()
    assert not found.held


def test_dead_holders_are_still_forgotten_as_rows_die() -> None:
    found = _group()
    kept = []
    for k in range(2000):
        rows = np.zeros(2, dtype=np.int64)
        found.hold(rows)
        if k % 100 == 0:
            kept.append(rows)
        del rows
        assert len(found.holders) <= max(aligned_index._PRUNE_AT, 2 * len(kept)) + 1
    assert found.held
    del kept
    gc.collect()
    assert not found.held
    found.hold(np.zeros(2, dtype=np.int64))
    assert not found.held
