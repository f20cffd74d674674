"""Property tests: tensor views agree with plain numpy indexing for any selection and layout."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_arrow_core import LayoutError, OMEArrow, SelectionError
from ome_arrow_core.layout import AXES

SETTINGS = settings(max_examples=80, deadline=None)


@st.composite
def image(draw: st.DrawFn) -> np.ndarray:
    shape = tuple(draw(st.integers(1, n)) for n in (3, 3, 3, 9, 9))
    dtype = draw(st.sampled_from(["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64"]))
    return np.arange(int(np.prod(shape))).astype(dtype).reshape(shape)  # TZCYX


def index_spec(n: int) -> st.SearchStrategy[object]:
    return st.one_of(
        st.none(),
        st.integers(-n, n - 1),
        st.builds(slice, st.one_of(st.none(), st.integers(-n, n)), st.one_of(st.none(), st.integers(-n, n)),
                  st.sampled_from([None, 1, 2, -1, -2])),
        st.lists(st.integers(0, n - 1), min_size=1, max_size=4),
    )


def as_list(spec: object, n: int) -> list[int]:
    if spec is None:
        return list(range(n))
    if isinstance(spec, int):
        return [spec % n]
    if isinstance(spec, slice):
        return list(range(n))[spec]
    return list(spec)  # type: ignore[call-overload]


@SETTINGS
@given(data=st.data(), arr=image())
def test_tensor_view_matches_numpy(data: st.DataObject, arr: np.ndarray) -> None:
    img = OMEArrow(arr, dim_order="TZCYX")
    specs = {ax: data.draw(index_spec(n), label=ax) for ax, n in zip("tzc", arr.shape[:3])}
    lists = {ax: as_list(s, n) for (ax, s), n in zip(specs.items(), arr.shape[:3])}
    ny, nx = arr.shape[3:]
    y0, x0 = data.draw(st.integers(0, ny - 1)), data.draw(st.integers(0, nx - 1))
    h, w = data.draw(st.integers(1, ny - y0)), data.draw(st.integers(1, nx - x0))
    layout = data.draw(st.permutations(AXES).map("".join))
    layout = layout.replace("Y", data.draw(st.sampled_from("YH"))).replace("X", data.draw(st.sampled_from("XW")))
    if any(len(v) == 0 for v in lists.values()):
        with pytest.raises(SelectionError):
            img.tensor_view(**specs, roi=(x0, y0, w, h), layout=layout)
        return
    view = img.tensor_view(**specs, roi=(x0, y0, w, h), layout=layout)
    expected = arr[np.ix_(lists["t"], lists["z"], lists["c"], range(y0, y0 + h), range(x0, x0 + w))]
    order = layout.replace("H", "Y").replace("W", "X")
    expected = expected.transpose([AXES.index(a) for a in order])
    got = view.to_numpy()
    assert got.dtype == arr.dtype
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(np.from_dlpack(view.to_dlpack()), expected)


@SETTINGS
@given(data=st.data(), arr=image())
def test_dropping_axes(data: st.DataObject, arr: np.ndarray) -> None:
    img = OMEArrow(arr, dim_order="TZCYX")
    kept = data.draw(st.sets(st.sampled_from("TZC")))
    layout = "".join(a for a in AXES if a in kept or a in "YX")
    sizes = dict(zip(AXES, arr.shape))
    dropped_big = [a for a in "TZC" if a not in kept and sizes[a] > 1]
    if dropped_big:
        with pytest.raises(LayoutError, match="drops non-singleton"):
            img.tensor_view(layout=layout)
    else:
        assert img.tensor_view(layout=layout).shape == tuple(sizes[a] for a in layout)
    if dropped_big == ["C"]:
        v = img.tensor_view(layout=layout, channel_policy="first")
        idx = tuple(slice(None) if a in layout else 0 for a in AXES)
        np.testing.assert_array_equal(v.to_numpy(), arr[idx])


@SETTINGS
@given(data=st.data(), arr=image())
def test_chained_slice_lazy_composes(data: st.DataObject, arr: np.ndarray) -> None:
    img = OMEArrow(arr, dim_order="TZCYX")
    ny, nx = arr.shape[3:]
    y0, x0 = data.draw(st.integers(0, ny - 1)), data.draw(st.integers(0, nx - 1))
    y1, x1 = data.draw(st.integers(y0 + 1, ny)), data.draw(st.integers(x0 + 1, nx))
    a = img.slice_lazy(x0, x1, y0, y1)
    yy0, xx0 = data.draw(st.integers(0, y1 - y0 - 1)), data.draw(st.integers(0, x1 - x0 - 1))
    yy1, xx1 = data.draw(st.integers(yy0 + 1, y1 - y0)), data.draw(st.integers(xx0 + 1, x1 - x0))
    t = data.draw(st.lists(st.integers(0, arr.shape[0] - 1), min_size=1, max_size=3))
    b = a.slice_lazy(xx0, xx1, yy0, yy1, t_indices=t)
    assert b.is_lazy
    expected = arr[t][:, :, :, y0 + yy0 : y0 + yy1, x0 + xx0 : x0 + xx1]
    np.testing.assert_array_equal(b.collect().to_numpy(), expected)
    np.testing.assert_array_equal(img.slice(x0, x1, y0, y1).to_numpy(), arr[..., y0:y1, x0:x1])


@pytest.mark.parametrize(("dim_order", "shape"), [
    (None, (5, 6)), (None, (2, 5, 6)), (None, (3, 2, 5, 6)), (None, (3, 2, 4, 5, 6)),
    ("CYX", (2, 5, 6)), ("TYXC", (4, 5, 6, 3)), ("ZCYX", (2, 3, 5, 6)), ("YXZ", (5, 6, 2)), ("TCZYX", (1, 1, 1, 5, 6)),
])
def test_ingest_dim_orders(dim_order: str | None, shape: tuple[int, ...]) -> None:
    arr = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape)
    order = dim_order or {2: "YX", 3: "ZYX", 4: "TCYX", 5: "TCZYX"}[len(shape)]
    img = OMEArrow(arr, dim_order)
    sizes = dict.fromkeys(AXES, 1) | dict(zip(order, shape))
    assert img.sizes == sizes
    np.testing.assert_array_equal(img.tensor_view(layout=order).to_numpy(), arr)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"t": 5}, r"t=5 is out of range; valid t indices are 0..1"),
    ({"c": [0, 7]}, r"c indices \[7\] are out of range; valid c indices are 0..2"),
    ({"roi": (0, 0, 100, 2)}, r"x range \[0, 100\) does not fit in \[0, 6\)"),
    ({"roi_nd": (0, 0, 0, 1, 1, 1)}, "roi_nd with 6 values is ambiguous"),
    ({"z": 0, "roi3d": (0, 0, 0, 1, 1, 1)}, "Provide either z or roi3d"),
    ({"tile": (9, 0)}, r"tile=\(9, 0\) is outside"),
    ({"t": slice(5, 9)}, "selects nothing"),
])
def test_bad_selections_say_the_valid_range(kwargs: dict[str, object], match: str) -> None:
    img = OMEArrow(np.zeros((2, 3, 4, 5, 6), np.uint8))  # TCZYX
    with pytest.raises(SelectionError, match=match):
        img.tensor_view(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("layout", ["TZCYXT", "ABC", "", "YXQ"])
def test_bad_layouts(layout: str) -> None:
    img = OMEArrow(np.zeros((5, 6), np.uint8))
    with pytest.raises(LayoutError):
        img.tensor_view(layout=layout)


def test_default_layouts() -> None:
    img = OMEArrow(np.zeros((2, 3, 4, 5, 6), np.uint8))
    assert img.tensor_view(t=0, z=1).layout == "CYX"
    assert img.tensor_view(t=0).layout == "TZCYX"
    assert img.tensor_view(t=0).shape == (1, 4, 3, 5, 6)
    single = OMEArrow(np.zeros((5, 6), np.uint8))
    assert single.tensor_view().layout == "CYX"


def test_tiles_follow_chunk_grid_with_smaller_edges() -> None:
    arr = np.arange(300 * 520, dtype=np.uint16).reshape(300, 520)
    img = OMEArrow(arr)
    got = {(ty, tx): img.tensor_view(tile=(ty, tx), layout="YX").shape for ty, tx in itertools.product(range(2), range(3))}
    assert got[(0, 0)] == (256, 256) and got[(1, 2)] == (44, 8)
    np.testing.assert_array_equal(img.tensor_view(tile=(1, 1), layout="YX").to_numpy(), arr[256:, 256:512])
