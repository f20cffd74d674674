"""ViewSpec: keyword calls and ``spec=`` calls give the same views; its checks raise the errors keywords raise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pixels import random_pixels

from ome_arrow_core import OMEArrow, ViewSpec
from ome_arrow_core.errors import ArgumentError, DTypeError, LayoutError, OMEArrowError, SelectionError

SHAPE = (3, 2, 3, 10, 12)  # TZCYX
PIXELS = random_pixels(SHAPE, np.uint16, seed=11)


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ome_arrow_core import write_dataset

    out = tmp_path_factory.mktemp("viewspec") / "ds"
    images = [OMEArrow(random_pixels(SHAPE, np.uint16, seed=s), "TZCYX") for s in range(3)]
    write_dataset(images, out, chunk_shape=(4, 5))
    return out


def _index(draw: st.DrawFn, n: int) -> Any:
    return draw(
        st.one_of(
            st.none(),
            st.integers(-n - 1, n),  # sometimes out of range
            st.builds(slice, st.integers(0, n), st.integers(0, n + 1)),
            st.lists(st.integers(0, n - 1), min_size=1, max_size=3),
        )
    )


@st.composite
def view_keywords(draw: st.DrawFn) -> dict[str, Any]:
    """Keywords of a view of a SHAPE image: indices, at most one crop, layout, dtype, policy, casting."""
    n_t, n_z, n_c = SHAPE[:3]
    kw: dict[str, Any] = {"t": _index(draw, n_t), "c": _index(draw, n_c)}
    crop = draw(st.sampled_from(["none", "roi", "roi3d", "roi_nd", "tile", "two"]))
    box = st.integers(0, 4)
    if crop != "roi3d":
        kw["z"] = _index(draw, n_z)
    if crop == "roi":
        kw["roi"] = (draw(box), draw(box), draw(st.integers(1, 8)), draw(st.integers(1, 6)))
    elif crop == "roi3d":
        kw["roi3d"] = (
            draw(box),
            draw(box),
            0,
            draw(st.integers(1, 8)),
            draw(st.integers(1, 6)),
            draw(st.integers(1, 2)),
        )
    elif crop == "roi_nd":
        kw["roi_nd"] = (draw(box), draw(box), draw(st.integers(5, 10)), draw(st.integers(5, 12)))
        kw["roi_type"] = draw(st.sampled_from([None, "2d"]))
    elif crop == "tile":
        kw["tile"] = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    elif crop == "two":  # refused
        kw["roi"], kw["tile"] = (0, 0, 2, 2), (0, 0)
    kw["layout"] = draw(st.sampled_from([None, "TZCYX", "CYX", "YX", "ZCYX", "yxc", "TQ"]))
    kw["dtype"] = draw(st.sampled_from([None, "uint16", "float32", "uint8"]))
    kw["channel_policy"] = draw(st.sampled_from(["error", "first"]))
    kw["casting"] = draw(st.sampled_from(["checked", "unsafe"]))
    return kw


def _outcome(call: Any) -> tuple[Any, ...]:
    """("ok", layout, dtype, pixels) or ("error", type, message): what a call gave."""
    try:  # a lazy view raises on execution
        view = call()
        if isinstance(view, np.ndarray):
            return ("ok", None, view.dtype, view)
        return ("ok", view.layout, view.dtype, view.to_numpy())
    except (OMEArrowError, ValueError, TypeError, IndexError) as exc:
        return ("error", type(exc), str(exc))


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> None:
    assert a[:3] == b[:3]
    if a[0] == "ok":
        np.testing.assert_array_equal(a[3], b[3])
        assert a[3].shape == b[3].shape


@settings(max_examples=120, deadline=None)
@given(kw=view_keywords(), lazy=st.booleans())
def test_tensor_view_keywords_and_spec_agree(kw: dict[str, Any], lazy: bool) -> None:
    img = OMEArrow(PIXELS, "TZCYX")
    if lazy:
        img = img.slice_lazy(0, SHAPE[4], 0, SHAPE[3])  # a lazy image over the same pixels
    by_keywords = _outcome(lambda: img.tensor_view(**kw))
    by_spec = _outcome(lambda: img.tensor_view(spec=ViewSpec(**kw)))
    _same(by_keywords, by_spec)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kw=view_keywords())
def test_dataset_keywords_spec_and_per_image_views_agree(dataset_dir: Path, kw: dict[str, Any]) -> None:
    from ome_arrow_core import OMEArrowDataset

    ds = OMEArrowDataset.scan(dataset_dir)
    by_keywords = _outcome(lambda: ds.read(**kw))
    _same(by_keywords, _outcome(lambda: ds.read(spec=ViewSpec(**kw))))
    _same(by_keywords, _outcome(lambda: ds.tensor_views(**kw).read()))
    if by_keywords[0] == "ok":  # the batched read is the stack of the images' own views
        stacked = np.stack([ds[i].tensor_view(**kw).to_numpy() for i in range(len(ds))])
        np.testing.assert_array_equal(by_keywords[3], stacked)
        assert by_keywords[3].dtype == stacked.dtype


@pytest.mark.parametrize(
    ("kw", "error", "words"),
    [
        ({"roi": (0, 0, 2, 2), "tile": (0, 0)}, SelectionError, "pass only one of roi, roi3d, roi_nd and tile"),
        ({"roi3d": (0, 0, 0, 1, 1, 1), "roi_nd": (0, 0, 1, 1)}, SelectionError, "got roi3d, roi_nd"),
        ({"roi_type": "5d"}, SelectionError, "roi_type must be"),
        ({"layout": "TQ"}, LayoutError, "unknown axes"),
        ({"layout": "YXY"}, LayoutError, "repeats an axis"),
        ({"layout": ""}, LayoutError, "non-empty string"),
        ({"dtype": "complex128"}, DTypeError, "cannot be stored"),
        ({"dtype": "no-such-dtype"}, DTypeError, "is not a dtype"),
        ({"channel_policy": "last"}, LayoutError, "channel_policy must be 'error' or 'first'"),
        ({"casting": "same_kind"}, ArgumentError, "casting must be one of"),
    ],
)
def test_view_spec_refuses_bad_arguments_as_keywords_do(kw: dict[str, Any], error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        ViewSpec(**kw)
    img = OMEArrow(PIXELS, "TZCYX")
    with pytest.raises(error, match=words):  # the keyword call raises the same error
        img.tensor_view(**kw)


def test_spec_and_keywords_together_are_refused() -> None:
    img = OMEArrow(PIXELS, "TZCYX")
    spec = ViewSpec(t=0, z=0)
    with pytest.raises(ArgumentError, match="not both: got spec= and c, layout"):
        img.tensor_view(spec=spec, c=1, layout="YX")
    with pytest.raises(ArgumentError, match="spec must be a ViewSpec"):
        img.tensor_view(spec={"t": 0})  # type: ignore[arg-type]
    assert img.tensor_view(spec=spec, channel_policy="error", casting="checked").shape == (3, 10, 12)  # defaults


def test_view_spec_checks_against_the_image_when_used() -> None:
    spec = ViewSpec(t=7)  # fine on its own: the image decides
    with pytest.raises(SelectionError, match="out of range"):
        OMEArrow(PIXELS, "TZCYX").tensor_view(spec=spec)
    with pytest.raises(SelectionError, match="does not fit"):
        OMEArrow(PIXELS, "TZCYX").tensor_view(spec=spec.replace(t=0, roi=(0, 0, 100, 2)))
    with pytest.raises(SelectionError, match="roi_type must be"):
        spec.replace(roi_type="9d")  # replace checks again


def test_view_spec_keywords_round_trip() -> None:
    spec = ViewSpec(t=[0, 2], roi=(1, 1, 3, 3), layout="TCYX", dtype="float32", channel_policy="first")
    assert spec.keywords() == {
        "t": [0, 2],
        "roi": (1, 1, 3, 3),
        "layout": "TCYX",
        "dtype": "float32",
        "channel_policy": "first",
    }
    assert ViewSpec(**spec.keywords()) == spec
    assert ViewSpec().keywords() == {}
    assert spec.cast == np.dtype("float32")


def test_dataset_views_keep_their_spec(dataset_dir: Path) -> None:
    from ome_arrow_core import OMEArrowDataset

    ds = OMEArrowDataset.scan(dataset_dir)
    views = ds.tensor_views(t=0, z=1, tile=(1, 1), dtype="float32")
    assert views.spec == ViewSpec(t=0, z=1, tile=(1, 1), dtype="float32")
    assert views.selection["tile"] == (1, 1) and views.selection["dtype"] == "float32"
    assert views[0].shape == views.read().shape[1:] == (3, 4, 5)  # the 4x5 chunk is the tile
    out = np.empty((3, 3, 4, 5), np.float32)
    assert views.read(out=out) is out
    with pytest.raises(ArgumentError, match="out must be a writable"):  # an argument: never a SchemaError
        views.read(out=np.empty((3, 3, 4, 5), np.float64))
