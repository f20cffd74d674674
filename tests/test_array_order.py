"""One 5-D convention, in and out: arrays given to ome-arrow-core and arrays it returns are TCZYX (as OME,
the reference and bioio); the storage order TZCYX only when named (``dim_order="TZCYX"``, ``layout="TZCYX"``)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_arrow_core import ImageMeta, OMEArrow, OMEArrowDataset, write_dataset
from ome_arrow_core.errors import ArgumentError
from ome_arrow_core.ingesting import pair_pixels
from tests.pixels import random_pixels

SETTINGS = settings(max_examples=25, deadline=None)

#: TCZYX shapes, Z == C (> 1) drawn often: the case the shape cannot tell apart.
shapes = st.integers(1, 3).flatmap(
    lambda zc: st.tuples(
        st.integers(1, 2),
        st.one_of(st.just(zc), st.integers(1, 3)),
        st.just(zc),
        st.integers(1, 5),
        st.integers(1, 5),
    )
)


def meta_of(tczyx: tuple[int, ...]) -> ImageMeta:
    return ImageMeta(sizes=dict(zip("TCZYX", tczyx)), dtype=np.dtype("uint16"))


@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_omearrow_array_in_tczyx_out_when_named(shape: tuple[int, ...], seed: int) -> None:
    a = random_pixels(shape, "uint16", seed)
    img = OMEArrow(a)  # 5-D is TCZYX
    assert img.sizes == dict(zip("TZCYX", (shape[0], shape[2], shape[1], shape[3], shape[4])))
    np.testing.assert_array_equal(img.to_numpy(layout="TCZYX"), a)
    np.testing.assert_array_equal(img.export("numpy", layout="TCZYX"), a)
    np.testing.assert_array_equal(img.to_numpy(), a)  # the default is the order it was given in
    np.testing.assert_array_equal(img.to_numpy(layout="TZCYX"), a.transpose(0, 2, 1, 3, 4))  # storage, named
    np.testing.assert_array_equal(OMEArrow(img.to_numpy(layout="TCZYX")).to_numpy(layout="TCZYX"), a)


@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_write_dataset_arrays_and_pairs_use_one_order(shape: tuple[int, ...], seed: int) -> None:
    a = random_pixels(shape, "uint16", seed)
    meta = meta_of(shape)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ds"
        write_dataset([a, (meta, a)], out, progress=False)
        old = a.transpose(0, 2, 1, 3, 4)
        write_dataset([(meta, old)], out, mode="append", dim_order="TZCYX", progress=False)
        ds = OMEArrowDataset.scan(out)
        assert len(ds) == 3
        for i in range(3):
            np.testing.assert_array_equal(ds[i].to_numpy(layout="TCZYX"), a)
            np.testing.assert_array_equal(ds[i].tensor_view(layout="TCZYX").to_numpy(), a)
        np.testing.assert_array_equal(ds.read(layout="TCZYX"), np.stack([a] * 3))


@SETTINGS
@given(shape=shapes)
def test_a_pair_in_the_old_order_fails_loudly(shape: tuple[int, ...]) -> None:
    meta = meta_of(shape)
    old = np.zeros((shape[0], shape[2], shape[1], shape[3], shape[4]), np.uint16)  # TZCYX
    if shape[1] != shape[2]:
        with pytest.raises(ArgumentError, match="shaped TZCYX.*dim_order='TZCYX'"):
            pair_pixels(meta, old)
    else:  # Z == C: the shapes agree, and the array is read as TCZYX, as OMEArrow(array) reads it
        arr = random_pixels(shape, "uint16", 1)
        np.testing.assert_array_equal(pair_pixels(meta, arr), OMEArrow(arr).to_numpy(layout="TZCYX"))


def test_write_dataset_refuses_an_old_order_pair_and_writes_nothing(tmp_path: Path) -> None:
    meta = meta_of((1, 2, 3, 4, 4))
    old = np.zeros((1, 3, 2, 4, 4), np.uint16)
    with pytest.raises(ArgumentError, match=r"shape \(1, 3, 2, 4, 4\).*TCZYX order are \(1, 2, 3, 4, 4\)"):
        write_dataset([(meta, old)], tmp_path / "ds", progress=False)
    assert not (tmp_path / "ds").exists()


def test_a_pair_with_another_named_order_or_a_wrong_shape(tmp_path: Path) -> None:
    meta = meta_of((2, 3, 1, 4, 5))
    a = random_pixels((2, 3, 1, 4, 5))
    cyxt = a[:, :, 0].transpose(1, 2, 3, 0)  # C, Y, X, T (Z of length 1 left out)
    out = write_dataset([(meta, cyxt)], tmp_path / "ds", dim_order="CYXT", progress=False)
    np.testing.assert_array_equal(OMEArrowDataset.scan(out)[0].to_numpy(layout="TCZYX"), a)
    with pytest.raises(ArgumentError, match=r"has shape \(2, 3, 4, 4\).*CYXT order are \(3, 4, 5, 2\)"):
        pair_pixels(meta, np.zeros((2, 3, 4, 4), np.uint16), "CYXT")
    with pytest.raises(ArgumentError, match=r"TCZYX order are \(2, 3, 1, 4, 5\)$"):  # no old-order hint here
        pair_pixels(meta, np.zeros((2, 3, 1, 5, 4), np.uint16))


@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_what_comes_out_goes_back_in_unchanged(shape: tuple[int, ...], seed: int) -> None:
    """Every default output fed back as input gives the same pixels in the same axes (Z == C included)."""
    a = random_pixels(shape, "uint16", seed)
    img = OMEArrow(a)
    assert img.shape == img.to_numpy().shape == img.meta.array_shape == shape
    np.testing.assert_array_equal(OMEArrow(img.to_numpy()).to_numpy(), a)
    np.testing.assert_array_equal(OMEArrow(img.export("numpy")).to_numpy(), a)
    n_t, _, n_z = shape[:3]
    if n_t * n_z > 1:  # several T or Z: the default view is 5-D
        np.testing.assert_array_equal(img.tensor_view().to_numpy(), a)
    else:  # one T and one Z: CYX
        np.testing.assert_array_equal(img.tensor_view().to_numpy(), a[0, :, 0])
    if n_z > 1:  # a multi-Z view (T kept: the default layout is 5-D)
        view = img.tensor_view(t=0, z=slice(0, n_z))
        assert view.layout == "TCZYX"
        np.testing.assert_array_equal(OMEArrow(view.to_numpy()).to_numpy(), a[:1])
    with tempfile.TemporaryDirectory() as tmp:
        out = write_dataset([(img.meta, img.to_numpy())], Path(tmp) / "ds", progress=False)
        ds = OMEArrowDataset.scan(out)
        np.testing.assert_array_equal(ds[0].to_numpy(), a)
        np.testing.assert_array_equal(OMEArrow(ds[0].to_numpy()).to_numpy(), a)
        if n_t * n_z > 1:  # several T or Z: the dataset's default read is 5-D per image
            batch = ds.read()
            assert batch.shape == (1, *shape)
            np.testing.assert_array_equal(OMEArrow(batch[0]).to_numpy(), a)
            np.testing.assert_array_equal(ds.tensor_views()[0].to_numpy(), a)
        else:
            np.testing.assert_array_equal(ds.read()[0], a[0, :, 0])  # one T, one Z: CYX
