"""Explicit dtype= casts are checked (casting="unsafe" opts out); integer arguments are never truncated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ome_arrow_core import DTypeError, OMEArrow, OMEArrowDataset, write_dataset
from ome_arrow_core.casting import cast_pixels
from ome_arrow_core.errors import ArgumentError, SelectionError

WIDE = np.array([[0, 300], [255, 7]], dtype=np.uint16)


def test_an_overflowing_cast_is_refused_naming_both_ranges() -> None:
    img = OMEArrow(WIDE)
    with pytest.raises(
        DTypeError,
        match=r"uint16 pixels to uint8 would change values: they range from 0 to 300, "
        r"uint8 holds 0\.\.255.*casting='unsafe'",
    ):
        img.tensor_view(layout="YX", dtype="uint8")


def test_unsafe_casting_wraps_like_numpy() -> None:
    view = OMEArrow(WIDE).tensor_view(layout="YX", dtype="uint8", casting="unsafe")
    np.testing.assert_array_equal(view.to_numpy(), WIDE.astype(np.uint8))
    assert view.to_numpy()[0, 1] == 44


def test_casts_that_fit_are_exact() -> None:
    small = np.array([[0, 255], [128, 7]], dtype=np.uint16)
    np.testing.assert_array_equal(OMEArrow(small).tensor_view(layout="YX", dtype="uint8").to_numpy(), small)
    floats = np.array([[0.0, 255.9], [-0.5, 3.2]])
    np.testing.assert_array_equal(
        OMEArrow(floats).tensor_view(layout="YX", dtype="uint8").to_numpy(), floats.astype(np.uint8)
    )  # fractions truncate as numpy does


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_floats_into_integers_are_refused(bad: float) -> None:
    with pytest.raises(DTypeError, match="NaN or infinity"):
        OMEArrow(np.array([[1.0, bad]], np.float32)).tensor_view(layout="YX", dtype="int16")


def test_float_overflow_into_float32_is_refused_but_infinities_pass() -> None:
    with pytest.raises(DTypeError, match="1e\\+300 is among them"):
        OMEArrow(np.array([[1e300, 1.0]])).tensor_view(layout="YX", dtype="float32")
    kept = OMEArrow(np.array([[np.inf, np.nan]])).tensor_view(layout="YX", dtype="float32").to_numpy()
    assert np.isinf(kept[0, 0]) and np.isnan(kept[0, 1])


def test_negative_values_into_unsigned_are_refused() -> None:
    with pytest.raises(DTypeError, match="from -1 to 5"):
        OMEArrow(np.array([[-1, 5]], np.int8)).tensor_view(layout="YX", dtype="uint16")


def test_a_bad_casting_name_is_an_argument_error() -> None:
    with pytest.raises(ArgumentError, match=r"casting must be one of \['checked', 'unsafe'\], got 'same_kind'"):
        OMEArrow(WIDE).tensor_view(dtype="uint8", casting="same_kind")  # type: ignore[arg-type]


def test_lazy_views_and_dataset_views_check_the_same_way(tmp_path: Path) -> None:
    images = [np.full((2, 8, 8), v, np.uint16) for v in (10, 300)]
    root = write_dataset(images, tmp_path / "d", dim_order="CYX")
    ds = OMEArrowDataset.scan(root)
    lazy = ds[1].tensor_view(layout="CYX", dtype="uint8")
    with pytest.raises(DTypeError, match="from 300 to 300"):
        lazy.to_numpy()
    with pytest.raises(DTypeError, match="from 300 to 300"):
        lazy.select(c=0).to_numpy()  # views derived from it keep the policy
    np.testing.assert_array_equal(ds[0].tensor_view(layout="CYX", dtype="uint8").to_numpy(), images[0])
    views = ds.tensor_views(layout="CYX", dtype="uint8")
    np.testing.assert_array_equal(views.read([0]), images[0][None])
    with pytest.raises(DTypeError):
        views.read()
    with pytest.raises(DTypeError):
        views.read(out=np.empty((2, 2, 8, 8), np.uint8))
    with pytest.raises(DTypeError):
        views[1].to_numpy()
    wrapped = ds.tensor_views(layout="CYX", dtype="uint8", casting="unsafe")
    np.testing.assert_array_equal(wrapped.read(), np.stack(images).astype(np.uint8))
    out = np.empty((2, 2, 8, 8), np.uint8)
    assert wrapped.read(out=out) is out and out[1, 0, 0, 0] == 44
    np.testing.assert_array_equal(wrapped[1].to_numpy(), images[1].astype(np.uint8))


def test_dask_blocks_cast_as_views_do(tmp_path: Path) -> None:
    pytest.importorskip("dask")
    from ome_arrow_dask import to_dask

    images = [np.full((2, 8, 8), v, np.uint16) for v in (10, 300)]
    ds = OMEArrowDataset.scan(write_dataset(images, tmp_path / "d", dim_order="CYX"))
    arr = to_dask(ds.tensor_views(layout="CYX", dtype="uint8"))
    assert arr.dtype == np.uint8
    with pytest.raises(DTypeError):
        arr.compute()
    got = to_dask(ds.tensor_views(layout="CYX", dtype="uint8", casting="unsafe")).compute()
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, np.stack(images).astype(np.uint8))


def _fits(values: np.ndarray, dtype: np.dtype) -> bool:
    """Whether every value survives ``astype(dtype)`` (fractions truncated, as numpy does)."""
    wide = values.astype(np.float64)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return bool(
            np.isfinite(wide).all() and (np.trunc(wide) >= info.min).all() and (np.trunc(wide) <= info.max).all()
        )
    with np.errstate(over="ignore"):
        return not (np.isfinite(values) & np.isinf(values.astype(dtype))).any()


@settings(max_examples=300, deadline=None)
@given(
    hnp.arrays(st.sampled_from([np.int8, np.int16, np.uint16, np.int32, np.float32, np.float64]), st.integers(1, 20)),
    st.sampled_from(["uint8", "int8", "uint16", "int16", "int32", "float32"]),
)
def test_checked_casts_refuse_exactly_what_does_not_fit(values: np.ndarray, target: str) -> None:
    dtype = np.dtype(target)
    try:
        out = cast_pixels(values, dtype)
    except DTypeError:
        assert not _fits(values, dtype)
        return
    assert _fits(values, dtype)
    np.testing.assert_array_equal(out, values.astype(dtype))


# -- integer arguments ------------------------------------------------------------------------------
@pytest.fixture()
def dataset(tmp_path: Path) -> OMEArrowDataset:
    return OMEArrowDataset.scan(write_dataset([np.zeros((2, 16, 16), np.uint8)] * 2, tmp_path / "d", dim_order="CYX"))


@pytest.mark.parametrize(
    "call,what",
    [
        (lambda ds: ds.read(roi=(0, 0, 4.5, 4)), "roi=(x, y, w, h)"),
        (lambda ds: ds.read([0, 1], rois=[(0, 0, 4, 4), (0, 0, 4.0, 4)]), "rois[1]=(x, y, w, h)"),
        (lambda ds: ds[0].tensor_view(roi=(np.float64(1), 0, 4, 4)), "roi=(x, y, w, h)"),
        (lambda ds: ds[0].tensor_view(tile=(0.0, 0)), "tile=(ty, tx)"),
        (lambda ds: list(ds[0].tensor_view().iter_dlpack(tile_size=(4.5, 4))), "tile_size=(h, w)"),
        (lambda ds: list(ds[0].tensor_view().iter_tiles_3d((1, 4.0, 4))), "tile_size=(d, h, w)"),
        (lambda ds: list(ds[0].tensor_view(layout="TZCYX").iter_dlpack(batch_size=1.0)), "batch_size"),
        (
            lambda ds: write_dataset(
                [np.zeros((16, 16), np.uint8)], Path(ds.locate(0).path).parent / "x", chunk_shape=(8.5, 8)
            ),
            "chunk_shape",
        ),
        (
            lambda ds: ds[0].export("parquet", Path(ds.locate(0).path).parent / "y", chunk_shape=(8, True)),
            "chunk_shape",
        ),
    ],
)
def test_non_integer_sizes_are_refused_not_truncated(dataset: OMEArrowDataset, call: Any, what: str) -> None:
    with pytest.raises(ArgumentError, match="takes (integers|an integer)") as err:
        call(dataset)
    assert str(err.value).startswith(what)
    assert isinstance(err.value, SelectionError)  # what roi= raised before, for callers catching that


def test_float_indices_are_never_truncated(dataset: OMEArrowDataset) -> None:
    with pytest.raises((ArgumentError, TypeError)):
        dataset.read([0.7])
    with pytest.raises((ArgumentError, TypeError)):
        dataset.select([1.0])
    assert dataset.read([np.int64(1)]).shape[0] == 1
