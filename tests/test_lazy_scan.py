"""Lazy scans read nothing until executed, execute once, and then read only the chunks a selection touches."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_arrow_core import LayoutError, LazyTensorView, OMEArrow, SchemaError, TensorView
from ome_arrow_core.layout import AXES

SHAPE = (2, 3, 4, 50, 70)  # TCZYX
CHUNK = (2, 16, 24)  # z, y, x


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, Path]:
    a = np.random.default_rng(0).integers(0, 65535, size=SHAPE, dtype=np.uint16)
    path = tmp_path_factory.mktemp("lazy") / "s.ome.parquet"
    OMEArrow(a).export("parquet", path, chunk_shape=CHUNK)  # z: 2 chunks, y: 4, x: 3
    return a, path


def counters(img: OMEArrow) -> tuple[int, int]:
    src: Any = img.source
    return src.chunks_read, src.row_groups_read


def test_scan_reads_no_pixels_until_collect(stack: tuple[np.ndarray, Path]) -> None:
    a, path = stack
    img = OMEArrow.scan(path)
    assert img.is_lazy and img.sizes == {"T": 2, "Z": 4, "C": 3, "Y": 50, "X": 70} and img.dtype == np.uint16
    assert img.info()["lazy"] is True and img.info()["chunks"] == 2 * 3 * 2 * 4 * 3
    view = img.tensor_view(t=1, z=[3, 0], roi=(30, 10, 20, 12), layout="ZCHW")
    assert isinstance(view, LazyTensorView) and not view.is_collected
    assert view.shape == (2, 3, 12, 20) and view.dtype == np.uint16 and "LazyTensorView" in repr(view)
    narrowed = view.select(c=[2, 0], roi=(1, 1, 10, 5)).with_layout("CZYX")
    crop = img.slice_lazy(5, 40, 3, 30, t_indices=0).slice_lazy(1, 10, 1, 10)
    assert isinstance(narrowed, LazyTensorView) and crop.is_lazy
    assert narrowed.shape == (2, 2, 5, 10) and crop.shape == (1, 3, 4, 9, 9)
    assert counters(img) == (0, 0)
    np.testing.assert_array_equal(narrowed.to_numpy(), a[1][np.ix_([2, 0], [3, 0], range(11, 16), range(31, 41))])
    assert narrowed.is_collected and not view.is_collected
    # z 3 and 0 lie in z-chunks 1 and 0; y 11..16 in y-chunk 0; x 31..41 in x-chunk 1; two channels: 4 chunks
    assert counters(img) == (4, 4)


def test_array_protocols_execute_the_plan(stack: tuple[np.ndarray, Path]) -> None:
    a, path = stack
    img = OMEArrow.scan(path)
    want = a[1][np.ix_([2, 0], [3], range(30, 42), range(10, 30))]  # c, z, y, x
    views = [img.tensor_view(t=1, z=3, c=[2, 0], roi=(10, 30, 20, 12), layout="CYX") for _ in range(4)]
    assert counters(img) == (0, 0) and views[0].__dlpack_device__() == (1, 0)  # asking where reads nothing
    got = np.asarray(views[0])
    assert got.dtype == np.uint16 and views[0].is_collected
    np.testing.assert_array_equal(got, want[:, 0])
    np.testing.assert_array_equal(np.asarray(views[1], dtype=np.float32), want[:, 0].astype(np.float32))
    np.testing.assert_array_equal(np.from_dlpack(views[2]), want[:, 0])
    copied = np.array(views[3], copy=True)
    copied[0, 0, 0] += 1
    np.testing.assert_array_equal(views[3].to_numpy(), want[:, 0])  # the copy was one
    torch = pytest.importorskip("torch")
    tensor = torch.from_dlpack(img.tensor_view(t=1, z=3, c=[2, 0], roi=(10, 30, 20, 12), layout="CYX"))
    np.testing.assert_array_equal(tensor.numpy(), want[:, 0])


def test_layout_errors_come_before_any_read(stack: tuple[np.ndarray, Path]) -> None:
    _, path = stack
    img = OMEArrow.scan(path)
    with pytest.raises(LayoutError, match="drops non-singleton axis C"):
        img.tensor_view(t=0, z=0, layout="YX")
    with pytest.raises(LayoutError, match="unknown axes"):
        img.tensor_view(layout="TZCYXQ")
    with pytest.raises(LayoutError):
        img.tensor_view(t=0, z=0).with_layout("ZYX")
    assert counters(img) == (0, 0)


def test_collect_runs_once_across_threads(stack: tuple[np.ndarray, Path]) -> None:
    a, path = stack
    img = OMEArrow.scan(path)
    view = img.tensor_view(t=0, z=1)
    barrier = threading.Barrier(8)
    results: list[TensorView] = []
    lock = threading.Lock()

    def work() -> None:
        barrier.wait()
        out = view.collect()
        with lock:
            results.append(out)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and len({id(r) for r in results}) == 1
    assert view.collect() is results[0]
    assert counters(img)[0] == 3 * 4 * 3  # one plane of each channel, read once: 12 chunks per plane
    np.testing.assert_array_equal(results[0].to_numpy(), a[0, :, 1])


def test_eager_open_reads_everything_once(stack: tuple[np.ndarray, Path]) -> None:
    a, path = stack
    img = OMEArrow(path)
    assert not img.is_lazy and img.info()["lazy"] is False
    before = img.source
    np.testing.assert_array_equal(img.tensor_view(layout="TCZYX").to_numpy(), a)
    assert img.source is before and isinstance(img.tensor_view(), TensorView)


def grid_counts(
    sel: list[list[int]], chunk5: tuple[int, ...], shape5: tuple[int, ...], rows_per_group: int
) -> tuple[int, int]:
    """Chunks (and row groups) holding selected pixels, by arithmetic over the regular TCZYX grid."""
    per_axis = [sorted({i // c for i in idx}) for idx, c in zip(sel, chunk5)]
    n_chunks = [-(-n // c) for n, c in zip(shape5, chunk5)]
    rows = [0]
    for k, hits in enumerate(per_axis):  # row number of a chunk: C-order over the TCZYX grid
        rows = [r * n_chunks[k] + h for r in rows for h in hits]
    return len(rows), len({r // rows_per_group for r in rows})


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 4), st.integers(1, 30), st.integers(1, 30)),
    chunk=st.tuples(st.integers(1, 3), st.integers(1, 12), st.integers(1, 12))
    | st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(1, 12), st.integers(1, 12)),
    rows_per_group=st.integers(1, 4),
)
def test_crops_read_only_intersecting_chunks(
    data: st.DataObject, shape: tuple[int, ...], chunk: tuple[int, ...], rows_per_group: int
) -> None:
    T, C, Z, Y, X = shape
    a = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape)
    t = data.draw(st.lists(st.integers(0, T - 1), min_size=1, max_size=2, unique=True), label="t")
    c = data.draw(st.lists(st.integers(0, C - 1), min_size=1, max_size=3, unique=True), label="c")
    z = data.draw(st.lists(st.integers(0, Z - 1), min_size=1, max_size=3, unique=True), label="z")
    y0, x0 = data.draw(st.integers(0, Y - 1)), data.draw(st.integers(0, X - 1))
    h, w = data.draw(st.integers(1, Y - y0)), data.draw(st.integers(1, X - x0))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.ome.parquet"
        OMEArrow(a).export("parquet", path, chunk_shape=chunk, rows_per_group=rows_per_group)
        img = OMEArrow.scan(path)
        view = img.tensor_view(t=t, c=c, z=z, roi=(x0, y0, w, h), layout="TCZYX")
        assert counters(img) == (0, 0)
        got = view.to_numpy()
        np.testing.assert_array_equal(got, a[np.ix_(t, c, z, range(y0, y0 + h), range(x0, x0 + w))])
        chunk5 = tuple(min(s, n) for s, n in zip((1, 1, *chunk) if len(chunk) == 3 else chunk, shape))
        sel = [t, c, z, list(range(y0, y0 + h)), list(range(x0, x0 + w))]
        assert counters(img) == grid_counts(sel, chunk5, shape, rows_per_group)


def test_prefetched_tiles_cover_the_view_exactly_once(stack: tuple[np.ndarray, Path]) -> None:
    a, path = stack
    img = OMEArrow.scan(path)
    view = img.tensor_view(t=1, z=2, roi=(3, 4, 61, 45))  # CYX 3 x 45 x 61
    assert isinstance(view, LazyTensorView)
    out = np.zeros((3, 45, 61), np.int64)
    hits = np.zeros((45, 61), np.int32)
    shapes = []
    tiles = list(view.iter_dlpack(tile_size=(16, 24), prefetch=2))
    assert not view.is_collected  # tiles are read on their own, never the whole view
    for k, cap in enumerate(tiles):
        tile = np.from_dlpack(cap)
        ty, tx = divmod(k, 3)
        out[:, ty * 16 : ty * 16 + tile.shape[1], tx * 24 : tx * 24 + tile.shape[2]] = tile
        hits[ty * 16 : ty * 16 + tile.shape[1], tx * 24 : tx * 24 + tile.shape[2]] += 1
        shapes.append(tile.shape)
    assert len(tiles) == 3 * 3
    assert shapes[0] == (3, 16, 24) and shapes[2] == (3, 16, 13) and shapes[-1] == (3, 13, 13)  # edges are smaller
    assert (hits == 1).all()
    np.testing.assert_array_equal(out, a[1, :, 2, 4:49, 3:64])


def test_tiles_read_only_their_own_chunks(stack: tuple[np.ndarray, Path]) -> None:
    a, path = stack
    img = OMEArrow.scan(path)
    view = img.tensor_view(t=0, z=0, c=1, layout="YX")
    tiles = [np.from_dlpack(c) for c in view.iter_dlpack(tile_size=(16, 24))]  # tiles are the storage chunks
    assert len(tiles) == 4 * 3
    assert counters(img)[0] == 4 * 3  # each chunk read once, by its own tile
    np.testing.assert_array_equal(np.block([[tiles[r * 3 + c] for c in range(3)] for r in range(4)]), a[0, 1, 0])


def test_prefetch_keeps_order_and_stops_cleanly(stack: tuple[np.ndarray, Path]) -> None:
    a, path = stack
    view = OMEArrow.scan(path).tensor_view(c=0, layout="TZYX")
    for prefetch in (0, 1, 3, 8):
        got = [np.from_dlpack(c) for c in view.iter_dlpack(batch_size=1, prefetch=prefetch)]
        assert len(got) == 2
        np.testing.assert_array_equal(np.concatenate(got), a[:, 0])
    it = view.iter_dlpack(batch_size=1, tile_size=(10, 10), prefetch=4)
    first = np.from_dlpack(next(it))
    it.close()  # abandoning an iterator with reads in flight must not hang or raise
    np.testing.assert_array_equal(first, a[0:1, 0, :, 0:10, 0:10])


def test_scanned_record_files_are_lazy_too(tmp_path: Path) -> None:
    a = np.random.default_rng(2).integers(0, 255, size=(1, 2, 3, 20, 30), dtype=np.uint8)
    path = tmp_path / "r.parquet"
    OMEArrow(a).export("parquet", path, layout="record")
    img = OMEArrow.scan(path)
    assert img.is_lazy and img.sizes == dict(zip(AXES, (1, 3, 2, 20, 30)))
    view = img.tensor_view(z=2, c=1, roi=(4, 5, 6, 7), layout="YX")
    assert isinstance(view, LazyTensorView)
    np.testing.assert_array_equal(view.to_numpy(), a[0, 1, 2, 5:12, 4:10])


def test_channel_policy_first_reads_only_the_first_selected_channel(stack: tuple[np.ndarray, Path]) -> None:
    a, path = stack
    img = OMEArrow.scan(path)
    view = img.tensor_view(t=1, z=0, c=[2, 1], layout="YX", channel_policy="first")
    assert isinstance(view, LazyTensorView) and view.shape == (50, 70)
    np.testing.assert_array_equal(view.to_numpy(), a[1, 2, 0])
    assert counters(img)[0] == 4 * 3  # one plane of one channel
    eager = OMEArrow(path).tensor_view(t=1, z=0, c=[2, 1], layout="YX", channel_policy="first")
    np.testing.assert_array_equal(eager.to_numpy(), a[1, 2, 0])


def test_lazy_casts_know_their_dtype(stack: tuple[np.ndarray, Path]) -> None:
    a, path = stack
    img = OMEArrow.scan(path)
    view = img.tensor_view(t=0, z=0, dtype="float32")
    assert isinstance(view, LazyTensorView) and view.dtype == np.float32 and counters(img) == (0, 0)
    assert view.select(c=1).dtype == np.float32 and view.with_layout("YXC").dtype == np.float32
    out = view.to_numpy()
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, a[0, :, 0].astype(np.float32))


def test_read_errors_surface_through_prefetching_iterators(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = tmp_path / "bad.ome.parquet"
    OMEArrow(np.zeros((1, 40, 40), np.uint16), "CYX").export("parquet", out, chunk_shape=(10, 10))
    table = pq.read_table(out / "chunks.parquet")
    blobs = table.column("pixel_bytes").to_pylist()
    blobs[9] = blobs[9][:7]  # chunk 9 is damaged
    table = table.set_column(
        table.schema.get_field_index("pixel_bytes"), "pixel_bytes", pa.array(blobs, pa.large_binary())
    )
    pq.write_table(table, out / "chunks.parquet", row_group_size=1)
    view = OMEArrow.scan(out).tensor_view(layout="YX")
    got = []
    with pytest.raises(SchemaError, match="holds 7 bytes"):
        for cap in view.iter_dlpack(tile_size=(10, 10), prefetch=3):
            got.append(np.from_dlpack(cap))
    assert len(got) == 9  # the tiles before the damaged one arrive, in order
