"""Frozen dataclasses whose ``__init__``, ``__eq__`` and ``__hash__`` are written out (a fresh process compiles no
methods for them) behave as ``@dataclass(frozen=True)`` would make them: same signature, fields, validation,
equality, hashes, repr, frozen fields, ``dataclasses.replace`` and pickling."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ome_arrow_core.errors import OMEArrowError
from ome_arrow_core.selection import Selection
from ome_arrow_core.typed_chunk.parquet_pages import PageHeader
from ome_arrow_core.view_spec import ViewSpec

WRITTEN = (Selection, ViewSpec, PageHeader)


def _reference(cls: type) -> Any:
    """``cls``'s fields (names, defaults, order) in a class made by ``@dataclass(frozen=True)``."""
    specs = [
        (f.name, f.type) if f.default is dataclasses.MISSING else (f.name, f.type, dataclasses.field(default=f.default))
        for f in dataclasses.fields(cls)
    ]
    post = {"__post_init__": cls.__post_init__} if hasattr(cls, "__post_init__") else {}  # the same checks
    return dataclasses.make_dataclass(cls.__name__, specs, frozen=True, namespace=post)


@pytest.mark.parametrize("cls", WRITTEN)
def test_the_written_init_takes_what_dataclass_would(cls: type) -> None:
    ours = list(inspect.signature(cls).parameters.values())
    theirs = list(inspect.signature(_reference(cls)).parameters.values())
    assert [(p.name, p.kind, p.default) for p in ours] == [(p.name, p.kind, p.default) for p in theirs]
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen  # type: ignore[attr-defined]


def _same(a: Any, b: Any, ref_a: Any, ref_b: Any) -> None:
    assert (a == b) == (ref_a == ref_b) and (a != b) == (ref_a != ref_b)
    for ours, theirs in ((a, ref_a), (b, ref_b)):
        try:
            want: Any = hash(theirs)
        except TypeError:
            with pytest.raises(TypeError):
                hash(ours)
        else:
            assert hash(ours) == want
        assert [getattr(ours, f.name) for f in dataclasses.fields(ours)] == [
            getattr(theirs, f.name) for f in dataclasses.fields(theirs)
        ]


axis = st.one_of(
    st.builds(range, st.integers(0, 3), st.integers(0, 6)), st.lists(st.integers(0, 5), max_size=3).map(tuple)
)
ranges = st.builds(range, st.integers(0, 3), st.integers(0, 9), st.integers(1, 3))


@given(st.tuples(axis, axis, axis, ranges, ranges), st.tuples(axis, axis, axis, ranges, ranges), st.booleans())
def test_selections_compare_and_hash_as_dataclass_ones(x: tuple[Any, ...], y: tuple[Any, ...], same: bool) -> None:
    y = x if same else y
    ref = _reference(Selection)
    a, b = Selection(*x), Selection(**dict(zip("tzcyx", y, strict=True)))
    _same(a, b, ref(*x), ref(*y))
    assert a != x and a.__eq__(x) is NotImplemented  # another class: never equal
    assert pickle.loads(pickle.dumps(a)) == a and dataclasses.replace(a, t=range(9)).t == range(9)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.t = range(1)  # type: ignore[misc]


specs = st.fixed_dictionaries(
    {},
    optional={
        "t": st.one_of(st.none(), st.integers(0, 3), st.lists(st.integers(0, 3), max_size=3)),
        "z": st.one_of(st.none(), st.integers(0, 3), st.just(slice(0, 2))),
        "c": st.one_of(st.none(), st.integers(0, 3)),
        "roi": st.one_of(st.none(), st.tuples(*[st.integers(0, 9)] * 4)),
        "tile": st.one_of(st.none(), st.tuples(st.integers(0, 2), st.integers(0, 2))),
        "layout": st.sampled_from([None, "YX", "CYX", "ZYX", "QQ"]),
        "dtype": st.sampled_from([None, "uint8", "float32", "not-a-dtype"]),
        "channel_policy": st.sampled_from(["error", "first", "other"]),
        "casting": st.sampled_from(["checked", "unsafe", "sideways"]),
    },
)


def _made(cls: Any, kw: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "ok", cls(**kw)
    except OMEArrowError as exc:
        return type(exc).__name__, None


@given(specs, specs)
def test_view_specs_validate_compare_and_hash_as_dataclass_ones(x: dict[str, Any], y: dict[str, Any]) -> None:
    Reference = _reference(ViewSpec)
    got_a, got_b = _made(ViewSpec, x), _made(ViewSpec, y)
    ref_a, ref_b = _made(Reference, x), _made(Reference, y)
    assert (got_a[0], got_b[0]) == (ref_a[0], ref_b[0])  # the same refusals
    if got_a[0] == "ok" and got_b[0] == "ok":
        _same(got_a[1], got_b[1], ref_a[1], ref_b[1])
        _same(got_a[1], ViewSpec(**x), ref_a[1], Reference(**x))
        assert repr(got_a[1]) == repr(ref_a[1])
        assert got_a[1].replace(layout="YX").layout == "YX"
        with pytest.raises(dataclasses.FrozenInstanceError):
            got_a[1].t = 1


@given(st.lists(st.integers(-2, 2**31), min_size=11, max_size=11), st.integers(7, 11), st.booleans())
def test_page_headers_are_made_as_dataclass_ones(values: list[int], given_: int, keywords: bool) -> None:
    ref = _reference(PageHeader)
    args = values[:given_]
    names = [f.name for f in dataclasses.fields(PageHeader)][:given_]
    ours = PageHeader(**dict(zip(names, args, strict=True))) if keywords else PageHeader(*args)
    theirs = ref(*args)
    _same(ours, PageHeader(*args), theirs, ref(*args))
    assert repr(ours) == repr(theirs)
    with pytest.raises(TypeError):
        PageHeader(*args[:6])  # a required field missing
