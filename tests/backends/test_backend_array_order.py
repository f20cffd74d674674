"""The backends' default outputs are TCZYX, as every 5-D array the core returns (Z != C so a swap shows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ome_arrow_core import OMEArrow, OMEArrowDataset, write_dataset
from tests.pixels import random_pixels

TCZYX = (2, 3, 4, 5, 6)  # T=2 C=3 Z=4


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    arrs = np.stack([random_pixels(TCZYX, "uint16", seed) for seed in range(3)])
    out = write_dataset(list(arrs), tmp_path_factory.mktemp("order") / "ds", chunk_shape=(2, 4, 4), progress=False)
    return out, arrs


def test_torch_tensors_are_tczyx(images: tuple[Path, np.ndarray]) -> None:
    pytest.importorskip("torch")
    path, arrs = images
    view = OMEArrow.scan(path, row=1).tensor_view()
    np.testing.assert_array_equal(view.to_torch().numpy(), arrs[1])
    np.testing.assert_array_equal(OMEArrow(arrs[1]).tensor_view().to_torch(mode="arrow").numpy(), arrs[1])


def test_jax_arrays_are_tczyx(images: tuple[Path, np.ndarray]) -> None:
    pytest.importorskip("jax")
    path, arrs = images
    np.testing.assert_array_equal(np.asarray(OMEArrow.scan(path, row=2).tensor_view().to_jax()), arrs[2])


def test_dask_arrays_and_xarray_dims_are_tczyx(images: tuple[Path, np.ndarray]) -> None:
    pytest.importorskip("dask.array")
    pytest.importorskip("xarray")
    from ome_arrow_dask import to_dask, to_xarray

    path, arrs = images
    ds = OMEArrowDataset.scan(path)
    np.testing.assert_array_equal(to_dask(ds).compute(), arrs)
    np.testing.assert_array_equal(to_dask(ds[1]).compute(), arrs[1])
    xa = to_xarray(ds)
    assert xa.dims == ("image", "T", "C", "Z", "Y", "X")
    np.testing.assert_array_equal(xa.values, arrs)
    assert to_xarray(ds, layout="TZCYX").dims == ("image", "T", "Z", "C", "Y", "X")  # storage order, named


def test_dataset_reads_and_dlpack_tiles_are_tczyx(images: tuple[Path, np.ndarray]) -> None:
    path, arrs = images
    ds = OMEArrowDataset.scan(path)
    np.testing.assert_array_equal(ds.read(), arrs)
    np.testing.assert_array_equal(ds.tensor_views().read([2, 0]), arrs[[2, 0]])
    np.testing.assert_array_equal(ds.read(layout="TZCYX"), arrs.transpose(0, 1, 3, 2, 4, 5))
    tiles = [np.from_dlpack(t) for t in ds[0].tensor_view().iter_dlpack(batch_size=None)]
    assert len(tiles) == 1
    np.testing.assert_array_equal(tiles[0], arrs[0])
