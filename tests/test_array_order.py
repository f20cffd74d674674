"""One 5-D convention for arrays given to ome-arrow-core: TCZYX (as OME, the reference and bioio), the
storage order TZCYX only when named (``dim_order="TZCYX"``, ``to_numpy(layout="TCZYX")`` for the way back)."""

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


def ambiguous(tczyx: tuple[int, ...]) -> bool:
    return tczyx[1] == tczyx[2] > 1


@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_omearrow_array_in_tczyx_out_when_named(shape: tuple[int, ...], seed: int) -> None:
    a = random_pixels(shape, "uint16", seed)
    img = OMEArrow(a)  # 5-D is TCZYX
    assert img.sizes == dict(zip("TZCYX", (shape[0], shape[2], shape[1], shape[3], shape[4])))
    np.testing.assert_array_equal(img.to_numpy(layout="TCZYX"), a)
    np.testing.assert_array_equal(img.export("numpy", layout="TCZYX"), a)
    np.testing.assert_array_equal(img.to_numpy(), a.transpose(0, 2, 1, 3, 4))  # the storage order, unchanged
    np.testing.assert_array_equal(OMEArrow(img.to_numpy(layout="TCZYX")).to_numpy(layout="TCZYX"), a)


@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_write_dataset_arrays_and_pairs_use_one_order(shape: tuple[int, ...], seed: int) -> None:
    a = random_pixels(shape, "uint16", seed)
    meta = meta_of(shape)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ds"
        if ambiguous(shape):  # Z == C > 1: the pair's order must be named
            write_dataset([a], out, progress=False)
            write_dataset([(meta, a)], out, mode="append", dim_order="TCZYX", progress=False)
        else:
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
    if ambiguous(shape):
        with pytest.raises(ArgumentError, match="ambiguous.*dim_order='TCZYX'"):
            pair_pixels(meta, old)
    elif shape[1] != shape[2]:
        with pytest.raises(ArgumentError, match="shaped TZCYX.*dim_order='TZCYX'"):
            pair_pixels(meta, old)
    else:  # Z == C == 1: both orders are the same array
        assert pair_pixels(meta, old).shape == meta.shape


def test_write_dataset_refuses_an_old_order_pair_and_writes_nothing(tmp_path: Path) -> None:
    meta = meta_of((1, 2, 3, 4, 4))
    old = np.zeros((1, 3, 2, 4, 4), np.uint16)
    with pytest.raises(ArgumentError, match=r"shape \(1, 3, 2, 4, 4\).*TCZYX order are \(1, 2, 3, 4, 4\)"):
        write_dataset([(meta, old)], tmp_path / "ds", progress=False)
    assert not (tmp_path / "ds").exists()
    with pytest.raises(ArgumentError, match="ambiguous"):
        write_dataset([(meta_of((1, 2, 2, 4, 4)), np.zeros((1, 2, 2, 4, 4), np.uint16))], tmp_path / "ds")
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
