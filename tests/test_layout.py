"""Layout algebra: axis strings, canonical TZCYX views of ingested arrays and layout views of them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_arrow_core import LayoutError, OMEArrow
from ome_arrow_core.layout import (
    AXES,
    apply_layout,
    default_dim_order,
    default_layout,
    normalize_axes,
    stored_view,
    to_canonical,
)

SETTINGS = settings(max_examples=80, deadline=None)


@st.composite
def axis_order(draw: st.DrawFn, *, need_yx: bool = False, min_size: int = 1) -> str:
    """A permutation of a subset of TZCYX, with Y/X randomly spelled H/W and random case."""
    required = "YX" if need_yx else ""
    extra = draw(st.lists(st.sampled_from([a for a in "TZC" + ("" if need_yx else "YX")]), unique=True))
    axes = draw(st.permutations(list(required) + extra).filter(lambda p: len(p) >= min_size))
    spelled = [draw(st.sampled_from({"Y": "YHyh", "X": "XWxw"}.get(a, a + a.lower()))) for a in axes]
    return "".join(spelled)


def canon(order: str) -> str:
    return order.upper().replace("H", "Y").replace("W", "X")


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("hwc", "YXC"),
        ("TZCYX", "TZCYX"),
        ("cHw", "CYX"),
        ("x", "X"),
        ("WHZ", "XYZ"),
    ],
)
def test_normalize_axes_resolves_aliases_and_case(order: str, expected: str) -> None:
    assert normalize_axes(order) == expected


@pytest.mark.parametrize(
    ("order", "match"),
    [
        ("", "non-empty string"),
        ("YXQ", "unknown axes 'Q'"),
        ("ABYX", "unknown axes 'AB'"),
        ("YXY", "repeats an axis"),
        ("HY", "repeats an axis"),  # H is Y
        ("wx", "repeats an axis"),
    ],
)
def test_bad_axis_strings(order: str, match: str) -> None:
    with pytest.raises(LayoutError, match=match):
        normalize_axes(order)


def test_non_string_layout_is_refused() -> None:
    with pytest.raises(LayoutError, match="non-empty string"):
        normalize_axes(["Y", "X"])  # type: ignore[arg-type]


def test_default_dim_orders() -> None:
    assert [default_dim_order(n) for n in (2, 3, 4, 5)] == ["YX", "ZYX", "TCYX", "TCZYX"]
    for n in (0, 1, 6):
        with pytest.raises(LayoutError, match=f"cannot infer the axes of a {n}-D array.*dim_order="):
            default_dim_order(n)


def test_default_layout() -> None:
    assert default_layout(1, 1) == "CYX"
    assert default_layout(2, 1) == default_layout(1, 2) == "TCZYX"


@SETTINGS
@given(data=st.data(), order=axis_order(need_yx=True))
def test_to_canonical_is_a_view_that_inverts(data: st.DataObject, order: str) -> None:
    shape = tuple(data.draw(st.integers(1, 4)) for _ in order)
    arr = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape)
    can = to_canonical(arr, order)
    names = canon(order)
    assert can.shape == tuple(shape[names.index(a)] if a in names else 1 for a in AXES)
    assert np.shares_memory(can, arr)  # a view, never a copy
    np.testing.assert_array_equal(apply_layout(can, order), arr)
    # spot-check one element through explicit coordinates
    coord = tuple(data.draw(st.integers(0, n - 1)) for n in shape)
    full = tuple(coord[names.index(a)] if a in names else 0 for a in AXES)
    assert can[full] == arr[coord]


@pytest.mark.parametrize(
    ("shape", "dim_order", "match"),
    [
        ((4, 5), "ZYX", "names 3 axes but the array has 2"),
        ((4, 5, 6), "TZC", "must contain Y and X"),
        ((4, 5), "YY", "repeats an axis"),
        ((2, 3, 4, 5, 6, 7), None, "cannot infer the axes of a 6-D array"),
        ((7,), None, "cannot infer the axes of a 1-D array"),
    ],
)
def test_to_canonical_errors(shape: tuple[int, ...], dim_order: str | None, match: str) -> None:
    with pytest.raises(LayoutError, match=match):
        to_canonical(np.zeros(shape), dim_order)
    with pytest.raises(LayoutError, match=match):
        OMEArrow(np.zeros(shape, np.uint8), dim_order)


@SETTINGS
@given(data=st.data(), layout=axis_order())
def test_apply_layout_matches_numpy(data: st.DataObject, layout: str) -> None:
    names = canon(layout)
    # axes outside the layout are singleton half the time, so both outcomes are exercised
    shape = tuple(data.draw(st.integers(1, 3)) if a in names or data.draw(st.booleans()) else 1 for a in AXES)
    arr = np.arange(int(np.prod(shape)), dtype=np.uint16).reshape(shape)
    dropped_big = [a for a, n in zip(AXES, shape) if a not in names and n > 1]
    if dropped_big:
        for _ in range(2):  # refused every time (a refusal is never remembered as a plan)
            with pytest.raises(LayoutError, match=f"drops non-singleton axis {dropped_big[0]}"):
                apply_layout(arr, layout)
        return
    kept = [a for a in AXES if a in names]
    # the plan is remembered by which axes have length 1: other lengths, and the same again, view alike
    grown = np.arange(int(np.prod([n + 1 if n > 1 else 1 for n in shape])), dtype=np.uint16)
    for a in (arr, grown.reshape([n + 1 if n > 1 else 1 for n in shape]), arr):
        out = apply_layout(a, layout)
        expected = a[tuple(slice(None) if ax in names else 0 for ax in AXES)].transpose(
            [kept.index(ax) for ax in names]
        )
        np.testing.assert_array_equal(out, expected)
        assert out.shape == expected.shape and np.shares_memory(out, a)


def test_channel_policy_first_keeps_channel_zero() -> None:
    arr = np.arange(2 * 3 * 4 * 5, dtype=np.int16).reshape(1, 1, 3, 4, 10)
    with pytest.raises(LayoutError, match=r"drops non-singleton axis C \(size 3\).*channel_policy='first'"):
        apply_layout(arr, "YX")
    np.testing.assert_array_equal(apply_layout(arr, "YX", channel_policy="first"), arr[0, 0, 0])
    with pytest.raises(LayoutError, match="channel_policy must be"):
        apply_layout(arr, "CYX", channel_policy="last")  # type: ignore[arg-type]


def test_apply_layout_needs_5d() -> None:
    with pytest.raises(LayoutError, match="expected a 5-D TZCYX array, got 3-D"):
        apply_layout(np.zeros((2, 3, 4)), "ZYX")


def test_drop_message_says_how_to_fix() -> None:
    img = OMEArrow(np.zeros((3, 2, 4, 5), np.uint8), "TZYX")
    with pytest.raises(LayoutError, match=r"drops non-singleton axis T \(size 3\); select one t \(e\.g\. t=0\)"):
        img.tensor_view(z=0, layout="YX")


@pytest.mark.parametrize(("order", "suggested"), [("NHWC", "THWC"), ("NCHW", "TCHW"), ("bcyx", "TCYX")])
def test_a_batch_axis_letter_is_pointed_to_t(order: str, suggested: str) -> None:
    """docs/layouts.md: there is no batch axis; the error says to name it T, and how."""
    arr = np.zeros((2, 4, 5, 3), np.uint8)
    with pytest.raises(LayoutError, match=rf"a batch of images is T: dim_order='{suggested}'"):
        OMEArrow(arr, dim_order=order)
    with pytest.raises(
        LayoutError, match="has unknown axes 'Q'; use letters from TZCYX .H and W are aliases of Y and X.$"
    ):
        normalize_axes("QYX")


@pytest.mark.parametrize(
    ("shape", "layout", "lies"),
    [
        ((1, 1, 1, 4, 6), "YX", True),  # a plane: its chunk's bytes as they lie
        ((1, 3, 2, 4, 6), "CZYX", True),  # TCZYX order: the stored order
        ((1, 3, 1, 4, 6), "ZYX", True),
        ((1, 3, 2, 4, 6), "ZCYX", False),  # C and Z swapped: not as a chunk lies
        ((1, 1, 1, 4, 6), "XY", False),
        ((1, 1, 1, 4, 6), "YXC", True),  # a C of one anywhere
        ((1, 1, 2, 4, 6), "YX", False),  # drops channels: refused
    ],
)
def test_stored_view_is_the_layout_view_of_its_out(shape: tuple[int, ...], layout: str, lies: bool) -> None:
    """A chunk (TCZYX bytes) read into ``stored_view(out, ...)`` is the chunk viewed in ``layout`` in ``out``."""
    t, z, c, y, x = shape
    chunk = np.arange(t * c * z * y * x, dtype=np.uint16).reshape(t, c, z, y, x)
    canonical = chunk.transpose(0, 2, 1, 3, 4)
    try:
        want = apply_layout(canonical, layout)
    except LayoutError:
        want = None
    out = np.zeros(want.shape if want is not None else (y, x), np.uint16)
    into = stored_view(out, shape, layout, "error")
    assert (into is not None) == lies
    if into is not None:
        into.transpose(0, 2, 1, 3, 4).reshape(-1)[:] = chunk.reshape(-1)  # as the kernel writes a chunk's bytes
        np.testing.assert_array_equal(out, want)
