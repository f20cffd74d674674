"""Bad selections say what is valid: indices out of range, crops that do not fit, tiles outside the storage's
grid, index sequences that are not ints (SelectionError, with the valid range in the message)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrow, SelectionError


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 6), ax=st.sampled_from("tzc"), data=st.data())
def test_out_of_range_index_names_the_valid_range(n: int, ax: str, data: st.DataObject) -> None:
    shape = {"t": (n, 1, 1), "z": (1, n, 1), "c": (1, 1, n)}[ax] + (2, 3)
    img = OMEArrow(np.zeros(shape, np.uint8), "TZCYX")
    bad = data.draw(st.one_of(st.integers(n, n + 50), st.integers(-n - 50, -n - 1)))
    with pytest.raises(
        SelectionError, match=rf"{ax}={bad} is out of range; valid {ax} indices are 0\.\.{n - 1} \(size {n}\)"
    ):
        img.tensor_view(**{ax: bad})
    with pytest.raises(
        SelectionError, match=rf"{ax} indices \[{bad}\] are out of range; valid {ax} indices are 0\.\.{n - 1}"
    ):
        img.tensor_view(**{ax: [0, bad]})
    with pytest.raises(SelectionError, match=rf"selects nothing; valid {ax} indices are 0\.\.{n - 1}"):
        img.tensor_view(**{ax: slice(n, None)})
    with pytest.raises(SelectionError, match=rf"{ax}=\[\] selects nothing"):
        img.tensor_view(**{ax: []})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"roi": (0, 0, 7, 2)}, r"x range \[0, 7\) does not fit in \[0, 6\)"),
        ({"roi": (2, 4, 1, 2)}, r"y range \[4, 6\) does not fit in \[0, 5\)"),
        ({"roi": (-1, 0, 2, 2)}, r"x range \[-1, 1\) does not fit"),
        ({"roi": (0, 0, 0, 2)}, r"positive length"),
        ({"roi": (0, 0, 2)}, r"roi=\(x, y, w, h\) needs 4 integers, got 3"),
        ({"roi3d": (0, 0, 3, 1, 1, 2)}, r"z range \[3, 5\) does not fit in \[0, 4\)"),
        ({"z": 0, "roi3d": (0, 0, 0, 1, 1, 1)}, "Provide either z or roi3d"),
        ({"roi_nd": (0, 0, 0, 1, 1, 1)}, "roi_nd with 6 values is ambiguous or invalid; pass roi_type="),
        ({"roi_nd": (0, 0, 1)}, "roi_nd with 3 values"),
        ({"roi_nd": (0, 0, 0, 1, 1, 1), "roi_type": "5d"}, "roi_type must be '2d', '2d_timelapse', '3d' or '4d'"),
        ({"roi_nd": (0, 0, 1, 1), "roi_type": "3d"}, "roi_nd for roi_type='3d' needs 6 integers, got 4"),
        ({"t": 0, "roi_nd": (0, 0, 0, 1, 1, 1), "roi_type": "2d_timelapse"}, "Provide either t or roi_nd"),
        ({"roi_nd": (0, 0, 0, 0, 3, 1, 1, 1)}, r"t range \[0, 3\) does not fit in \[0, 2\)"),
        ({"roi": (0, 0, 1, 1), "tile": (0, 0)}, "pass only one of roi, roi3d, roi_nd and tile; got roi, tile"),
        ({"tile": (1, 0)}, r"tile=\(1, 0\) is outside the 1x1 grid of 256x256 tiles; valid ty is 0..0, tx is 0..0"),
        ({"tile": (0, -1)}, r"tile=\(0, -1\) is outside"),
        ({"t": "0"}, "t must be an int, a slice or a sequence of ints, got str"),
        ({"c": True}, "c must be an int, a slice or a sequence of ints, got bool"),
        ({"z": 1.5}, "z must be an int, a slice or a sequence of ints, got float"),
    ],
)
def test_bad_crops_say_what_is_valid(kwargs: dict[str, Any], match: str) -> None:
    img = OMEArrow(np.zeros((2, 3, 4, 5, 6), np.uint8))  # TCZYX: T=2, C=3, Z=4, Y=5, X=6
    with pytest.raises(SelectionError, match=match):
        img.tensor_view(**kwargs)


def test_bad_slice_lazy_crop() -> None:
    img = OMEArrow(np.zeros((5, 6), np.uint8))
    with pytest.raises(SelectionError, match=r"(?i)x range \[4, 9\) does not fit in \[0, 6\)"):
        img.slice_lazy(4, 9, 0, 2)
    with pytest.raises(SelectionError, match=r"(?i)y range \[3, 3\) does not fit"):
        img.slice_lazy(0, 2, 3, 3)
    crop = img.slice_lazy(1, 4, 1, 3)  # 2 x 3: the next crop is checked against it, not the image
    with pytest.raises(SelectionError, match=r"(?i)x range \[0, 4\) does not fit in \[0, 3\)"):
        crop.slice_lazy(0, 4, 0, 1)


def test_tile_grid_follows_the_storage_chunks(tmp_path: Path) -> None:
    arr = np.arange(300 * 520, dtype=np.uint16).reshape(300, 520)
    img = OMEArrow(arr)
    assert img.tensor_view(tile=(1, 2), layout="YX").shape == (44, 8)  # in memory: 256 x 256 tiles
    np.testing.assert_array_equal(img.tensor_view(tile=(1, 1), layout="YX").to_numpy(), arr[256:, 256:512])
    out = tmp_path / "t.ome.parquet"
    img.export("parquet", out, chunk_shape=(100, 200))
    scan = OMEArrow.scan(out)
    np.testing.assert_array_equal(scan.tensor_view(tile=(2, 2), layout="YX").to_numpy(), arr[200:300, 400:520])
    with pytest.raises(SelectionError, match=r"outside the 3x3 grid of 100x200 tiles; valid ty is 0..2, tx is 0..2"):
        scan.tensor_view(tile=(3, 0))


@pytest.mark.parametrize(
    "spec", [np.array([True, False, True]), [True, False, True], [0.0, 2.0], np.array([0.5, 1.7]), ["0"], [1, None]]
)
def test_index_sequences_must_hold_ints(spec: Any) -> None:
    img = OMEArrow(np.zeros((3, 4, 5), np.uint8), "CYX")
    with pytest.raises(SelectionError, match="c indices must be ints, got .*; for a boolean mask pass np.flatnonzero"):
        img.tensor_view(c=spec)
    np.testing.assert_array_equal(  # what the message suggests works
        img.tensor_view(c=np.flatnonzero([True, False, True])).shape, (2, 4, 5)
    )
