"""to_xarray (ome-arrow-dask): named dims, physical and channel coordinates, metadata columns, dask-backed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

xr = pytest.importorskip("xarray")
pytest.importorskip("dask.array")

from ome_arrow_core import Channel, ImageMeta, OMEArrow, OMEArrowDataset, write_dataset  # noqa: E402
from ome_arrow_core.errors import ArgumentError, ArgumentTypeError  # noqa: E402
from ome_arrow_dask import to_xarray  # noqa: E402

N = 4


def _meta() -> ImageMeta:
    return ImageMeta(
        sizes={"T": 2, "C": 3, "Z": 4, "Y": 10, "X": 12},
        dtype=np.dtype(np.uint16),
        name="cells",
        physical_size={"X": 0.25, "Y": 0.5, "Z": 2.0},
        physical_unit={"X": "µm", "Y": "µm", "Z": "nm"},
        channels=(Channel("ch-0", "DAPI"), Channel("ch-1", "GFP"), Channel("ch-2", "")),
    )


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    arrs = np.random.default_rng(3).integers(0, 4096, (N, 2, 4, 3, 10, 12), dtype=np.uint16)  # TZCYX
    meta = {"well": [f"A{i}" for i in range(N)], "site": list(range(10, 10 + N)), "score": [0.5 * i for i in range(N)]}
    out = write_dataset(
        [(_meta(), a) for a in arrs],
        tmp_path_factory.mktemp("xr") / "plate",
        metadata=meta,
        chunk_shape=(2, 8, 8),
        dim_order="TZCYX",  # the pairs' arrays are TZCYX: named (pairs are TCZYX by default)
        progress=False,
    )
    return out, arrs


def test_dataset_dataarray(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    arr = to_xarray(OMEArrowDataset.scan(path), layout="TCZYX")
    assert arr.dims == ("image", "T", "C", "Z", "Y", "X") and arr.shape == (N, 2, 3, 4, 10, 12)
    assert type(arr.data).__module__.startswith("dask")  # lazy: nothing read yet
    assert list(arr.coords["C"].values) == ["DAPI", "GFP", "ch-2"]  # an unnamed channel shows its id
    np.testing.assert_allclose(arr.coords["X"].values, np.arange(12) * 0.25)
    np.testing.assert_allclose(arr.coords["Y"].values, np.arange(10) * 0.5)
    np.testing.assert_allclose(arr.coords["Z"].values, np.arange(4) * 2.0)
    assert arr.coords["Z"].attrs["units"] == "nm" and arr.coords["X"].attrs["units"] == "µm"
    assert list(arr.coords["T"].values) == [0, 1]
    assert list(arr.coords["well"].values) == [f"A{i}" for i in range(N)]
    assert arr.coords["site"].dims == ("image",) and list(arr.coords["site"].values) == [10, 11, 12, 13]
    assert "image_id" in arr.coords
    got = arr.sel(C="GFP", image=arr.coords["well"] == "A2").compute()
    np.testing.assert_array_equal(got.values, arrs[2:3, :, :, 1].transpose(0, 1, 2, 3, 4))
    assert float(arr.isel(image=1).mean()) == pytest.approx(float(arrs[1].mean()))


def test_selections_carry_their_coordinates(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    ds = OMEArrowDataset.scan(path, filter={"well": ["A1", "A3"]})
    arr = to_xarray(ds.tensor_views(t=1, c=[2, 0], z=slice(1, 4, 2), roi=(4, 2, 6, 5), layout="CZYX"), columns=["well"])
    assert arr.dims == ("image", "C", "Z", "Y", "X") and arr.shape == (2, 2, 2, 5, 6)
    assert list(arr.coords["C"].values) == ["ch-2", "DAPI"]
    np.testing.assert_allclose(arr.coords["Z"].values, [2.0, 6.0])  # planes 1 and 3
    np.testing.assert_allclose(arr.coords["Y"].values, np.arange(2, 7) * 0.5)  # the roi's own positions
    np.testing.assert_allclose(arr.coords["X"].values, np.arange(4, 10) * 0.25)
    assert set(arr.coords) == {"image", "C", "Z", "Y", "X", "well"}
    want = arrs[[1, 3], 1][:, 1:4:2][:, :, [2, 0], 2:7, 4:10].transpose(0, 2, 1, 3, 4)
    np.testing.assert_array_equal(arr.values, want)


def test_images_and_lazy_views(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    image = OMEArrowDataset.scan(path)[3]
    arr = to_xarray(image, t=0, c=1, layout="ZYX")
    assert arr.dims == ("Z", "Y", "X") and arr.name == "cells"
    np.testing.assert_array_equal(arr.values, arrs[3, 0, :, 1])
    view = image.tensor_view(t=1, z=2, roi=(1, 1, 3, 3), layout="CYX")
    lazy = to_xarray(view)
    assert list(lazy.coords["C"].values) == ["DAPI", "GFP", "ch-2"]
    np.testing.assert_allclose(lazy.coords["X"].values, [0.25, 0.5, 0.75])
    np.testing.assert_array_equal(lazy.values, arrs[3, 1, 2, :, 1:4, 1:4])
    eager = OMEArrow(arrs[0], "TZCYX")  # an in-memory image: default pixel sizes and channel names
    mem = to_xarray(eager, layout="TZCYX")
    assert list(mem.coords["C"].values) == ["C0", "C1", "C2"]
    np.testing.assert_array_equal(mem.values, arrs[0])


def test_errors(plate: tuple[Path, np.ndarray]) -> None:
    path, _ = plate
    ds = OMEArrowDataset.scan(path)
    with pytest.raises(ArgumentError, match="not in the dataset"):
        to_xarray(ds, columns=["nope"])
    with pytest.raises(ArgumentTypeError, match="to_xarray takes"):
        to_xarray(np.zeros(3))
    with pytest.raises(ArgumentTypeError, match="columns"):
        to_xarray(ds[0], columns=["well"])


@pytest.mark.parametrize("image_dim", ["C", "Y", "well", "image_id", 3])
def test_image_dim_that_clashes_is_refused(plate: tuple[Path, np.ndarray], image_dim: object) -> None:
    # "C" failed in xarray (conflicting sizes); "well" silently replaced the well coordinate by image numbers
    with pytest.raises(ArgumentError, match="image_dim"):
        to_xarray(OMEArrowDataset.scan(plate[0]), image_dim=image_dim)
    assert to_xarray(OMEArrowDataset.scan(plate[0]), image_dim="cell").dims[0] == "cell"


def test_a_str_of_columns_is_refused(plate: tuple[Path, np.ndarray]) -> None:
    # was "columns ['w', 'e', 'l', 'l'] are not in the dataset"
    with pytest.raises(ArgumentError, match=r"pass \['well'\]"):
        to_xarray(OMEArrowDataset.scan(plate[0]), columns="well")
    assert list(to_xarray(OMEArrowDataset.scan(plate[0]), columns=["well"]).coords["well"].values[:2]) == ["A0", "A1"]


def test_columns_named_as_axes_do_not_replace_the_axes_coordinates(tmp_path: Path) -> None:
    # a column "X" replaced the X positions by one value per image (a coordinate along "image"), "C" the channel names
    arrs = np.zeros((3, 2, 4, 5), np.uint16)
    meta = {"X": [1.0, 2.0, 3.0], "C": ["a", "b", "c"], "site": [1, 2, 3]}
    ds = OMEArrowDataset.scan(write_dataset(list(arrs), tmp_path / "p", dim_order="CYX", metadata=meta, progress=False))
    arr = to_xarray(ds)
    assert arr.coords["X"].dims == ("X",) and list(arr.coords["X"].values) == [0, 1, 2, 3, 4]
    assert arr.coords["C"].dims == ("C",) and arr.coords["site"].dims == ("image",)
    with pytest.raises(ArgumentError, match=r"columns \['X'\] are named as axes"):
        to_xarray(ds, columns=["X"])
