"""The TIFF reader's lazy reads touch only what a selection needs: pages, tiles, strips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

tifffile = pytest.importorskip("tifffile", reason="needs tifffile (pip install -e backends/tiff)")
pytest.importorskip("ome_arrow_tiff", reason="needs ome-arrow-tiff (pip install -e backends/tiff)")

from tiff_support import MB, lazy, open_source, random_pixels  # noqa: E402

from ome_arrow_core import OMEArrow  # noqa: E402


@pytest.fixture
def stack64(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A 64-plane uint16 TIFF (T=8, Z=8 in tifffile's shaped metadata), one strip per plane."""
    arr = random_pixels((8, 8, 96, 80), "uint16")
    path = tmp_path / "stack64.tif"
    tifffile.imwrite(path, arr, metadata={"axes": "TZYX"}, **MB)
    return path, arr


def test_lazy_plane_reads_one_page(stack64: tuple[Path, np.ndarray]) -> None:
    path, arr = stack64
    src = open_source(path)
    assert src.meta.shape == (8, 8, 1, 96, 80) and src.pages_read == 0
    np.testing.assert_array_equal(lazy(src, "YX", t=5, z=2).to_numpy(), arr[5, 2])
    assert (src.pages_read, src.bytes_read) == (1, 96 * 80 * 2)
    np.testing.assert_array_equal(lazy(src, t=[1, 6], z=7).to_numpy()[:, 0, 0], arr[[1, 6], 7])
    assert src.pages_read == 3
    crop = lazy(src, "YX", t=0, z=0, roi=(10, 30, 20, 5)).to_numpy()
    np.testing.assert_array_equal(crop, arr[0, 0, 30:35, 10:30])
    assert src.pages_read == 4 and src.bytes_read == (3 * 96 + 5) * 80 * 2  # 5 rows of the 4th


def test_scan_reads_nothing_until_collected(stack64: tuple[Path, np.ndarray]) -> None:
    path, arr = stack64
    scanned = OMEArrow.scan(path)
    view = scanned.tensor_view(t=3, z=4)
    assert view.shape == (1, 96, 80) and not view.is_collected
    np.testing.assert_array_equal(view.to_numpy()[0], arr[3, 4])
    assert OMEArrow(path).info()["page_count"] == 64


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_tiled_crop_reads_only_intersecting_tiles(tmp_path: Path, compression: str | None) -> None:
    arr = random_pixels((3, 512, 512), "uint16", seed=1)
    path = tmp_path / "tiled.tif"
    tifffile.imwrite(path, arr, tile=(64, 64), compression=compression, metadata={"axes": "ZYX"}, **MB)
    with tifffile.TiffFile(path) as tf:
        page = tf.series[0][1]
        counts = page.databytecounts
        grid_x = 512 // 64
    src = open_source(path)
    assert src.meta.chunk_shape == (1, 64, 64)
    info = src.describe()
    assert info["tiled"] and info["tile_shape"] == [64, 64]
    assert info["compression"] == ("none" if compression is None else "adobe_deflate")
    # rows 60..69 and columns 120..139 cross the tile grid: tiles (0,1) (0,2) (1,1) (1,2)
    view = lazy(src, "YX", z=1, roi=(120, 60, 20, 10))
    np.testing.assert_array_equal(view.to_numpy(), arr[1, 60:70, 120:140])
    tiles = [ty * grid_x + tx for ty in (0, 1) for tx in (1, 2)]
    assert (src.pages_read, src.segments_read) == (1, 4)
    assert src.bytes_read == sum(counts[i] for i in tiles)
    # one tile exactly
    np.testing.assert_array_equal(lazy(src, "YX", z=2, tile=(3, 5)).to_numpy(), arr[2, 192:256, 320:384])
    assert src.segments_read == 5


def test_compressed_strips_crop_reads_only_needed_strips(tmp_path: Path) -> None:
    arr = random_pixels((2, 100, 60), "int16", seed=2)
    path = tmp_path / "strips.tif"
    tifffile.imwrite(path, arr, rowsperstrip=10, compression="zlib", **MB)
    src = open_source(path)
    np.testing.assert_array_equal(lazy(src, "YX", z=1, roi=(5, 38, 30, 4)).to_numpy(), arr[1, 38:42, 5:35])
    assert src.segments_read == 2  # strips 30..39 and 40..49


def test_truncated_stack_reads_planes_by_offset(tmp_path: Path) -> None:
    arr = random_pixels((4, 5, 32, 48), "float32", seed=3)
    path = tmp_path / "truncated.tif"
    tifffile.imwrite(path, arr, truncate=True, metadata={"axes": "TZYX"}, **MB)
    with tifffile.TiffFile(path) as tf:
        assert len(tf.series[0]) == 1  # one IFD for all 20 planes
    src = open_source(path)
    np.testing.assert_array_equal(lazy(src, "YX", t=3, z=1).to_numpy(), arr[3, 1])
    assert (src.pages_read, src.bytes_read) == (1, 32 * 48 * 4)
    np.testing.assert_array_equal(OMEArrow(path).to_numpy()[:, 0], arr)
