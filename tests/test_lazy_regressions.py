"""Lazy scans read nothing until executed, then only the chunks a selection touches."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from ome_arrow_core import LazyTensorView, OMEArrow


@pytest.fixture
def stack(tmp_path: Path) -> tuple[np.ndarray, Path]:
    a = np.random.default_rng(0).integers(0, 1000, size=(2, 3, 4, 100, 120), dtype=np.uint16)  # TCZYX
    path = tmp_path / "s.ome.parquet"
    OMEArrow(a).export("parquet", path, chunk_shape=(32, 32))  # 4 x 4 chunks per plane
    return a, path


def test_scan_reads_no_pixels_until_collect(stack: tuple[np.ndarray, Path]) -> None:
    a, path = stack
    img = OMEArrow.scan(path)
    assert img.is_lazy and img.sizes == {"T": 2, "Z": 4, "C": 3, "Y": 100, "X": 120}
    view = img.tensor_view(t=1, z=2, roi=(40, 10, 30, 20))
    assert isinstance(view, LazyTensorView) and view.shape == (3, 20, 30)
    assert img.source.chunks_read == 0
    narrowed = view.select(c=[2, 0]).with_layout("YXC")
    assert isinstance(narrowed, LazyTensorView) and img.source.chunks_read == 0
    np.testing.assert_array_equal(narrowed.to_numpy(), a[1, [2, 0], 2, 10:30, 40:70].transpose(1, 2, 0))
    # rows 10..30 touch chunk rows 0; cols 40..70 touch chunk cols 1 and 2: 2 chunks x 2 channels
    assert img.source.chunks_read == 4


def test_collect_runs_once_across_threads(stack: tuple[np.ndarray, Path]) -> None:
    _, path = stack
    img = OMEArrow.scan(path)
    view = img.tensor_view(t=0, z=0)
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(view.collect())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(r) for r in results}) == 1
    assert img.source.chunks_read == 3 * 16


def test_prefetched_tiles_cover_every_pixel_once(stack: tuple[np.ndarray, Path]) -> None:
    a, path = stack
    img = OMEArrow.scan(path)
    seen = np.zeros((100, 120), np.int32)
    out = np.zeros((3, 100, 120), np.uint16)
    shapes = []
    for cap in img.tensor_view(t=1, z=3).iter_dlpack(tile_size=(48, 50), prefetch=3):
        tile = np.from_dlpack(cap)
        shapes.append(tile.shape)
    assert len(shapes) == 3 * 3 and shapes[-1] == (3, 4, 20)  # edge tiles are smaller
    i = 0
    for y in range(0, 100, 48):
        for x in range(0, 120, 50):
            h, w = shapes[i][1:]
            seen[y : y + h, x : x + w] += 1
            i += 1
    assert (seen == 1).all()
    tiles = [np.from_dlpack(c) for c in img.tensor_view(t=1, z=3).iter_dlpack(tile_size=(48, 50), prefetch=2)]
    i = 0
    for y in range(0, 100, 48):
        for x in range(0, 120, 50):
            out[:, y : y + tiles[i].shape[1], x : x + tiles[i].shape[2]] = tiles[i]
            i += 1
    np.testing.assert_array_equal(out, a[1, :, 3])


def test_batches_over_t_and_shuffle_is_seeded() -> None:
    a = np.arange(5 * 4 * 4, dtype=np.int16).reshape(5, 4, 4)
    view = OMEArrow(a, dim_order="TYX").tensor_view(layout="TYX")
    batches = [np.from_dlpack(c) for c in view.iter_dlpack(batch_size=2)]
    assert [b.shape[0] for b in batches] == [2, 2, 1]
    np.testing.assert_array_equal(np.concatenate(batches), a)
    order = lambda seed: [int(np.from_dlpack(c)[0, 0, 0]) // 16 for c in view.iter_dlpack(shuffle=True, seed=seed)]
    assert order(3) == order(3) and sorted(order(3)) == [0, 1, 2, 3, 4]
    assert any(order(s) != order(3) for s in range(4, 10))


def test_iter_tiles_3d() -> None:
    a = np.arange(1 * 1 * 3 * 4 * 4, dtype=np.uint16).reshape(1, 1, 3, 4, 4)
    caps = list(OMEArrow(a).tensor_view().iter_tiles_3d(tile_size=(2, 2, 2)))
    assert len(caps) == 8
    first = np.from_dlpack(caps[0])
    assert first.shape == (1, 1, 2, 2, 2)  # the default layout: TCZYX
    np.testing.assert_array_equal(first, a[:, :, 0:2, 0:2, 0:2])


def test_scanned_tiff_and_eager_agree() -> None:
    path = Path(__file__).resolve().parent / "data" / "ome-artificial" / "multi-channel-z-series.ome.tiff"
    pytest.importorskip("ome_arrow_tiff", reason="TIFF backend not installed")
    eager = OMEArrow(path)
    lazy = OMEArrow.scan(path).tensor_view(z=3, roi=(100, 50, 64, 32))
    np.testing.assert_array_equal(lazy.to_numpy(), eager.tensor_view(z=3, roi=(100, 50, 64, 32)).to_numpy())


def test_repeated_indices_inside_a_multi_plane_chunk(tmp_path: Path) -> None:
    a = np.arange(1 * 2 * 3 * 8 * 10, dtype=np.uint16).reshape(1, 2, 3, 8, 10)  # TCZYX
    path = tmp_path / "z.ome.parquet"
    OMEArrow(a).export("parquet", path, chunk_shape=(3, 4, 5))  # chunks span all three planes
    got = OMEArrow.scan(path).tensor_view(z=[0, 0, 2], c=[1, 1], layout="ZCYX").to_numpy()
    np.testing.assert_array_equal(got, a[0][[1, 1]][:, [0, 0, 2]].transpose(1, 0, 2, 3))


@pytest.mark.parametrize(
    "kwargs",
    [{"roi": (0.5, 0, 2, 2)}, {"roi3d": (0, 0, 0, 2, 2, 1.0)}, {"roi_nd": (0, 0, 2.7, 2)}, {"tile": (True, 0)}],
)
def test_non_integer_regions_are_refused(kwargs: dict[str, object]) -> None:
    from ome_arrow_core import SelectionError

    img = OMEArrow(np.zeros((4, 4), np.uint8))
    with pytest.raises(SelectionError, match="takes integers"):
        img.tensor_view(**kwargs)  # type: ignore[arg-type]
