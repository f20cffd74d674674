"""Property tests: every selection and layout of a view equals plain numpy indexing and transposing.

The same random t/z/c specs (ints, slices with negative steps, sequences), crops
(roi, roi3d, roi_nd, tile) and layouts (any permutation of any subset of TZCYX, H/W
aliases) are checked on in-memory images, on eagerly read datasets and on lazy scans,
and chained crops are checked to compose. What bad selections say: test_selection_errors.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from ome_arrow_core import LayoutError, LazyTensorView, OMEArrow, SelectionError, TensorView
from ome_arrow_core.layout import AXES
from ome_arrow_core.selection import Selection, normalize_index

SETTINGS = settings(max_examples=100, deadline=None)


FEW = settings(max_examples=50, deadline=None)


Lists = dict[str, list[int]]


def canon(layout: str) -> str:
    return layout.upper().replace("H", "Y").replace("W", "X")


@st.composite
def shapes(draw: st.DrawFn, max_tzc: int = 4, max_yx: int = 11) -> tuple[int, int, int, int, int]:
    return tuple(draw(st.integers(1, max_tzc)) for _ in "TZC") + tuple(  # type: ignore[return-value]
        draw(st.integers(1, max_yx)) for _ in "YX"
    )


@st.composite
def index_spec(draw: st.DrawFn, n: int, allow_empty: bool = True) -> tuple[Any, list[int]]:
    """A t/z/c argument for an axis of length ``n`` and the indices numpy takes for it.

    Empty selections (which must raise) come up now and then when ``allow_empty``.
    """
    kind = draw(st.sampled_from(["none", "int", "npint", "slice", "list", "tuple", "ndarray", "range"]))
    if kind == "none":
        return None, list(range(n))
    if kind in ("int", "npint"):
        i = draw(st.integers(-n, n - 1))
        return (np.int64(i) if kind == "npint" else i), [i % n]
    if kind in ("slice", "range"):
        step = draw(st.sampled_from([None, 1, 2, 3, -1, -2, -3] if kind == "slice" else [1, 2, -1, -2]))
        if kind == "slice":
            bound = st.one_of(st.none(), st.integers(-n - 2, n + 2))
            spec: Any = slice(draw(bound), draw(bound), step)
        else:
            spec = range(draw(st.integers(0, n - 1)), draw(st.integers(-1, n)), step or 1)
        empty = not (list(range(n))[spec] if isinstance(spec, slice) else spec)
        if empty and (not allow_empty or draw(st.integers(0, 5))):
            spec = slice(None, None, step) if kind == "slice" else range(n)[:: step or 1]
        return spec, list(range(n))[spec] if isinstance(spec, slice) else list(spec)
    vals = draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=5))  # duplicates and any order
    spec = {"list": vals, "tuple": tuple(vals), "ndarray": np.asarray(vals, dtype=np.int32)}[kind]
    return spec, [v % n for v in vals]


@st.composite
def layouts(draw: st.DrawFn) -> str | None:
    """None (the default layout) or a permutation of a subset of TZCYX, H/W aliases, any case."""
    if draw(st.integers(0, 5)) == 0:
        return None
    axes = draw(st.lists(st.sampled_from(AXES), min_size=1, max_size=5, unique=True))
    out = [draw(st.sampled_from({"Y": "YHyh", "X": "XWxw"}.get(a, a + a.lower()))) for a in axes]
    return "".join(out)


@st.composite
def regions(
    draw: st.DrawFn, shape: tuple[int, ...], tile_shape: tuple[int, int] = (256, 256)
) -> tuple[dict[str, Any], Lists]:
    """Crop keywords (roi, roi3d, roi_nd, tile or none) and the indices each axis keeps."""
    T, Z, _, Y, X = shape

    def span(n: int) -> tuple[int, int]:
        a = draw(st.integers(0, n - 1))
        return a, draw(st.integers(a + 1, n))

    kind = draw(st.sampled_from(["none", "roi", "roi3d", "2d", "2d4", "2d_timelapse", "3d", "4d", "tile"]))
    (y0, y1), (x0, x1) = span(Y), span(X)
    yx = {"y": list(range(y0, y1)), "x": list(range(x0, x1))}
    if kind == "none":
        return {}, {}
    if kind == "roi":
        return {"roi": (x0, y0, x1 - x0, y1 - y0)}, yx
    if kind == "roi3d":
        z0, z1 = span(Z)
        return {"roi3d": (x0, y0, z0, x1 - x0, y1 - y0, z1 - z0)}, {**yx, "z": list(range(z0, z1))}
    if kind == "2d4":  # four values need no roi_type
        return {"roi_nd": (y0, x0, y1, x1)}, yx
    if kind == "2d":
        return {"roi_nd": [y0, x0, y1, x1], "roi_type": "2d"}, yx
    if kind == "2d_timelapse":
        t0, t1 = span(T)
        return {"roi_nd": (t0, y0, x0, t1, y1, x1), "roi_type": kind}, {**yx, "t": list(range(t0, t1))}
    if kind == "3d":
        z0, z1 = span(Z)
        return {"roi_nd": (z0, y0, x0, z1, y1, x1), "roi_type": kind}, {**yx, "z": list(range(z0, z1))}
    if kind == "4d":
        (t0, t1), (z0, z1) = span(T), span(Z)
        out = {"t": list(range(t0, t1)), "z": list(range(z0, z1)), **yx}
        return {"roi_nd": (t0, z0, y0, x0, t1, z1, y1, x1)}, out
    th, tw = tile_shape
    ty, tx = draw(st.integers(0, -(-Y // th) - 1)), draw(st.integers(0, -(-X // tw) - 1))
    return {"tile": (ty, tx)}, {
        "y": list(range(ty * th, min(Y, ty * th + th))),
        "x": list(range(tx * tw, min(X, tx * tw + tw))),
    }


def expected_view(arr: np.ndarray, lists: Lists, layout: str | None) -> np.ndarray | None:
    """numpy's answer, or None when the layout drops an axis holding several indices."""
    out = arr[np.ix_(*(lists[a.lower()] for a in AXES))]
    names = canon(layout) if layout else ("CYX" if len(lists["t"]) == len(lists["z"]) == 1 else "TCZYX")
    if any(n > 1 for a, n in zip(AXES, out.shape) if a not in names):
        return None
    kept = [a for a in AXES if a in names]
    return out[tuple(slice(None) if a in names else 0 for a in AXES)].transpose([kept.index(a) for a in names])


def draw_request(
    data: st.DataObject, shape: tuple[int, ...], tile_shape: tuple[int, int] = (256, 256)
) -> tuple[dict[str, Any], Lists, str | None]:
    """tensor_view keywords and the indices they take along each axis."""
    kwargs, region_lists = data.draw(regions(shape, tile_shape), label="region")
    lists: Lists = {"y": list(range(shape[3])), "x": list(range(shape[4]))}
    for ax, n in zip("tzc", shape[:3]):
        if ax in region_lists:  # the crop selects this axis; passing it too is an error
            continue
        spec, idx = data.draw(index_spec(n), label=ax)
        if spec is not None:
            kwargs[ax] = spec
        lists[ax] = idx
    lists.update(region_lists)
    layout = data.draw(layouts(), label="layout")
    if layout is not None:
        kwargs["layout"] = layout
    return kwargs, lists, layout


def check_view(img: OMEArrow, arr: np.ndarray, kwargs: dict[str, Any], lists: Lists, layout: str | None) -> None:
    """``img.tensor_view(**kwargs)`` equals numpy, or raises the error numpy's answer predicts."""
    if any(len(v) == 0 for v in lists.values()):
        event("empty selection")
        with pytest.raises(SelectionError, match="selects nothing; valid . indices are 0.."):
            img.tensor_view(**kwargs)
        return
    expected = expected_view(arr, lists, layout)
    if expected is None:
        event("layout drops several indices")
        with pytest.raises(LayoutError, match="drops non-singleton axis"):
            img.tensor_view(**kwargs)
        return
    event("view compared")
    view = img.tensor_view(**kwargs)
    assert view.shape == expected.shape
    assert view.dtype == arr.dtype
    got = view.to_numpy()
    assert got.dtype == arr.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


# -- in memory ------------------------------------------------------------------------------
@SETTINGS
@given(data=st.data(), shape=shapes())
def test_in_memory_view_equals_numpy(data: st.DataObject, shape: tuple[int, ...]) -> None:
    arr = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape)  # every value unique
    img = OMEArrow(arr, "TZCYX")
    kwargs, lists, layout = draw_request(data, shape)
    check_view(img, arr, kwargs, lists, layout)
    if not any(len(v) == 0 for v in lists.values()) and expected_view(arr, lists, layout) is not None:
        view = img.tensor_view(**kwargs)
        assert isinstance(view, TensorView)
        np.testing.assert_array_equal(np.from_dlpack(view.to_dlpack()), view.to_numpy())


# -- datasets: eager and lazy -------------------------------------------------------------------
@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[np.ndarray, Path, tuple[int, int]]]:
    """A few TZCYX images written as datasets with awkward chunk shapes (partial edge chunks)."""
    out = []
    cases = [
        ((3, 4, 2, 13, 17), (2, 5, 6)),
        ((2, 3, 3, 9, 10), (3, 4, 4)),
        ((1, 5, 1, 7, 12), (1, 7, 12)),
        ((4, 1, 3, 6, 5), (1, 2, 3)),
        ((3, 2, 3, 8, 9), (2, 2, 2, 3, 4)),
    ]  # chunk: (z, y, x) or (t, c, z, y, x)
    for k, (shape, chunk) in enumerate(cases):
        arr = np.random.default_rng(k).integers(0, 60000, size=shape, dtype=np.uint16)
        path = tmp_path_factory.mktemp("sel") / f"d{k}.ome.parquet"
        OMEArrow(arr, "TZCYX").export("parquet", path, chunk_shape=chunk, rows_per_group=3)
        out.append((arr, path, chunk[-2:]))
    return out


@SETTINGS
@given(data=st.data())
def test_scanned_dataset_view_equals_numpy(
    data: st.DataObject, datasets: list[tuple[np.ndarray, Path, tuple[int, int]]]
) -> None:
    arr, path, tile = data.draw(st.sampled_from(datasets), label="dataset")
    kwargs, lists, layout = draw_request(data, arr.shape, tile)
    lazy = OMEArrow.scan(path)
    if not any(len(v) == 0 for v in lists.values()) and expected_view(arr, lists, layout) is not None:
        assert isinstance(lazy.tensor_view(**kwargs), LazyTensorView)
    check_view(lazy, arr, kwargs, lists, layout)


@FEW
@given(data=st.data())
def test_eager_dataset_view_equals_numpy(
    data: st.DataObject, datasets: list[tuple[np.ndarray, Path, tuple[int, int]]]
) -> None:
    arr, path, tile = data.draw(st.sampled_from(datasets), label="dataset")
    kwargs, lists, layout = draw_request(data, arr.shape, tile)
    check_view(OMEArrow(path), arr, kwargs, lists, layout)


# -- chained selections --------------------------------------------------------------------------
@st.composite
def crop_step(draw: st.DrawFn, sizes: dict[str, int]) -> tuple[dict[str, Any], Lists]:
    """slice_lazy arguments relative to the current image and the positions they keep."""
    args: dict[str, Any] = {}
    pos: Lists = {}
    for ax in "YX":
        a = draw(st.integers(0, sizes[ax] - 1))
        b = draw(st.integers(a + 1, sizes[ax]))
        args[f"{ax.lower()}_min"], args[f"{ax.lower()}_max"] = a, b
        pos[ax.lower()] = list(range(a, b))
    for ax in "TCZ":
        spec, idx = draw(index_spec(sizes[ax], allow_empty=False))
        args[f"{ax.lower()}_indices"] = spec
        pos[ax.lower()] = idx
    return args, pos


def run_chain(data: st.DataObject, img: OMEArrow, arr: np.ndarray, tile: tuple[int, int] = (256, 256)) -> None:
    lists: Lists = {a.lower(): list(range(n)) for a, n in zip(AXES, arr.shape)}
    for _ in range(data.draw(st.integers(1, 3), label="steps")):
        args, pos = data.draw(crop_step(img.sizes), label="step")
        img = img.slice_lazy(**args)
        assert img.is_lazy
        lists = {ax: [lists[ax][p] for p in pos[ax]] for ax in lists}  # relative to the previous crop
        assert img.shape == tuple(len(lists[a.lower()]) for a in "TCZYX")
    expected = arr[np.ix_(*(lists[a.lower()] for a in AXES))]
    np.testing.assert_array_equal(img.collect().to_numpy(layout="TZCYX"), expected)
    assert not img.collect().is_lazy
    # a view of the crop is relative to it too
    kwargs, rel, layout = draw_request(data, expected.shape, tile)  # the tile grid starts at the crop
    check_view(img, expected, kwargs, rel, layout)


@FEW
@given(data=st.data(), shape=shapes(max_tzc=4, max_yx=9))
def test_chained_slice_lazy_composes_in_memory(data: st.DataObject, shape: tuple[int, ...]) -> None:
    arr = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    run_chain(data, OMEArrow(arr, "TZCYX"), arr)


@FEW
@given(data=st.data())
def test_chained_slice_lazy_composes_on_scans(
    data: st.DataObject, datasets: list[tuple[np.ndarray, Path, tuple[int, int]]]
) -> None:
    arr, path, tile = data.draw(st.sampled_from(datasets), label="dataset")
    run_chain(data, OMEArrow.scan(path), arr, tile)


@FEW
@given(data=st.data())
def test_lazy_view_select_composes(
    data: st.DataObject, datasets: list[tuple[np.ndarray, Path, tuple[int, int]]]
) -> None:
    arr, path, tile = data.draw(st.sampled_from(datasets), label="dataset")
    view = OMEArrow.scan(path).tensor_view(layout="TZCYX")
    lists: Lists = {a.lower(): list(range(n)) for a, n in zip(AXES, arr.shape)}
    for _ in range(data.draw(st.integers(1, 3), label="steps")):
        sizes = dict(zip(AXES, view.shape))
        kwargs, rel, _ = draw_request(data, tuple(sizes[a] for a in AXES), tile)
        kwargs.pop("layout", None)
        if any(len(v) == 0 for v in rel.values()):
            with pytest.raises(SelectionError):
                view.select(**kwargs)
            return
        view = view.select(**kwargs)
        lists = {ax: [lists[ax][p] for p in rel[ax]] for ax in lists}
    assert isinstance(view, LazyTensorView) and not view.is_collected
    np.testing.assert_array_equal(view.to_numpy(), arr[np.ix_(*(lists[a.lower()] for a in AXES))])


@SETTINGS
@given(data=st.data(), n=st.integers(1, 6), m=st.integers(1, 6))
def test_selection_select_composes(data: st.DataObject, n: int, m: int) -> None:
    """Selection.select indexes the previous selection, for ranges and gathered tuples alike."""
    sel = Selection.full({"T": n, "Z": 1, "C": m, "Y": 2, "X": 2})
    lists = {"t": list(range(n)), "c": list(range(m))}
    for _ in range(3):
        t_spec, t_idx = data.draw(index_spec(len(sel.t), allow_empty=False))
        c_spec, c_idx = data.draw(index_spec(len(sel.c), allow_empty=False))
        sel = sel.select(t=t_spec, c=c_spec)
        lists = {"t": [lists["t"][i] for i in t_idx], "c": [lists["c"][i] for i in c_idx]}
        assert list(sel.t) == lists["t"] and list(sel.c) == lists["c"]
    arr = np.arange(n * m * 4).reshape(n, 1, m, 2, 2)
    np.testing.assert_array_equal(sel.apply(arr), arr[lists["t"]][:, :, lists["c"]])
    assert sel.is_strided == all(isinstance(sel.axis(a), range) for a in "TC")
    if sel.is_strided:
        assert np.shares_memory(sel.apply(arr), arr)  # ranges are views of storage


def test_evenly_spaced_indices_become_views() -> None:
    assert normalize_index([1, 3, 5], 6, "T") == range(1, 7, 2)
    assert normalize_index([-1], 6, "T") == range(5, 6)
    assert normalize_index([4, 2], 6, "T") == (4, 2)  # descending lists are gathered as given
    assert normalize_index([2, 2], 6, "T") == (2, 2)
    assert normalize_index(slice(None, None, -2), 5, "Z") == range(4, -1, -2)


# -- how a selection prints itself -------------------------------------------------------------
def _parse_axis(text: str) -> tuple[int, ...]:
    """The indices an axis of ``Selection.__repr__`` names (the test's own reading of the notation)."""
    if "," in text:
        return tuple(int(v) for v in text.split(","))
    parts = [int(v) for v in text.split(":")]
    if len(parts) == 1:
        return (parts[0],)
    return tuple(range(*parts))


_axis_index = st.one_of(
    st.builds(lambda a, n, s: range(a, a + n * s, s), st.integers(0, 50), st.integers(1, 8), st.integers(1, 4)),
    st.lists(st.integers(0, 50), min_size=1, max_size=5).map(tuple),
)


@given(
    t=_axis_index,
    z=_axis_index,
    c=_axis_index,
    y=st.builds(range, st.integers(0, 9), st.integers(10, 99)),
    x=st.builds(range, st.integers(0, 9), st.integers(10, 99)),
)
def test_selection_repr_names_every_axis_in_axis_terms(t: Any, z: Any, c: Any, y: range, x: range) -> None:
    sel = Selection(t=t, z=z, c=c, y=y, x=x)
    text = repr(sel)
    assert text.startswith("Selection(T[") and text.endswith("])")
    axes = dict((tok[0], tok[2:-1]) for tok in text[len("Selection(") : -1].split(" "))
    assert list(axes) == list(AXES)
    for ax in AXES:
        assert _parse_axis(axes[ax]) == tuple(sel.axis(ax)), (ax, text)


def test_selection_repr_reads_like_a_crop() -> None:
    sel = Selection(t=range(0, 2), z=range(3, 4), c=(0, 2, 5), y=range(100, 356), x=range(0, 2048, 2))
    assert repr(sel) == "Selection(T[0:2] Z[3] C[0,2,5] Y[100:356] X[0:2048:2])"
