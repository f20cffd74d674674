"""``@frozen`` classes behave as ``@dataclass(frozen=True)`` ones: construction (and its errors), repr, equality,
hashing, frozen fields, ``dataclasses`` functions, pickling and subclassing by either decorator; ``FrozenTuple``
classes as ``typing.NamedTuple`` ones, their annotations left as text."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ForwardRef, NamedTuple, get_type_hints

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ome_arrow_core import ImageMeta, Reader
from ome_arrow_core.frozen_types import FrozenTuple, frozen


def _made(decorate: Any) -> tuple[type, type]:
    @decorate
    class Base:
        a: int
        b: str = "b"
        c: tuple[int, ...] = ()
        d: list[int] = field(default_factory=list)
        e: float = field(default=0.5, compare=False)
        f: str = field(default="f", repr=False)
        g: int = field(default=1, hash=False)
        h: int = field(default=7, init=False)

        def __post_init__(self) -> None:
            object.__setattr__(self, "c", tuple(self.c))

    @decorate
    class Child(Base):
        i: int = 3

    return Base, Child


REAL, OURS = _made(dataclass(frozen=True)), _made(frozen)
NAMES = ("a", "b", "c", "d", "e", "f", "g", "h", "i", "z")
values = st.one_of(st.integers(-3, 3), st.text(max_size=2), st.lists(st.integers(0, 2), max_size=2))
calls = st.tuples(st.lists(values, max_size=9), st.dictionaries(st.sampled_from(NAMES), values, max_size=4))


def _outcome(cls: type, args: list[Any], kwargs: dict[str, Any]) -> tuple[str, Any]:
    try:
        obj = cls(*args, **kwargs)
    except TypeError:
        return "TypeError", None
    return "ok", obj


def _hash(obj: object) -> object:
    try:
        return hash(obj)
    except TypeError:
        return TypeError


@pytest.mark.parametrize("which", [0, 1])
@given(call=calls, other=calls)
def test_frozen_behaves_as_a_frozen_dataclass(which: int, call: tuple[list[Any], dict[str, Any]], other: Any) -> None:
    real, ours = REAL[which], OURS[which]
    (status, r), (status2, o) = _outcome(real, *call), _outcome(ours, *call)
    assert status == status2
    if r is None:
        return
    assert repr(o).replace(ours.__qualname__, real.__qualname__) == repr(r)
    assert dataclasses.asdict(o) == dataclasses.asdict(r)
    assert [f.name for f in dataclasses.fields(o)] == [f.name for f in dataclasses.fields(r)]
    assert _hash(o) == _hash(r)  # the same fields hashed (a list among them: TypeError for both)
    (_, r2), (_, o2) = _outcome(real, *other), _outcome(ours, *other)
    if r2 is not None:
        assert (o == o2) == (r == r2)
    assert o == copy.deepcopy(o) and repr(copy.copy(o)) == repr(o)  # the protocol pickling uses
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.a = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        del o.b
    assert (dataclasses.replace(o, b="x").b, dataclasses.replace(o, b="x").a) == ("x", o.a)


def test_a_frozen_dataclass_may_subclass_a_frozen_class_and_the_reverse() -> None:
    @dataclass(frozen=True)
    class Mine(Reader):
        extra_field: int = 2

    m = Mine("x", suffixes=(".x",))
    assert m.extra_field == 2 and m.claims_suffix(Path("a.X")) and m == Mine("x", suffixes=(".x",))

    @frozen
    class Again(Mine):
        more: str = "m"

    assert Again("y").more == "m" and Again("y") != Mine("y")
    with pytest.raises(TypeError, match="cannot inherit non-frozen dataclass from a frozen one"):

        @dataclass
        class Thawed(Reader):
            pass


def test_unsupported_fields_are_refused() -> None:
    with pytest.raises(TypeError, match="kw_only"):

        @frozen
        class K:
            a: int = field(default=1, kw_only=True)


def test_the_classes_made_with_it_keep_their_checks() -> None:
    meta = ImageMeta({"C": 2, "Y": 3, "X": 4}, "uint8")
    assert meta.sizes == {"T": 1, "Z": 1, "C": 2, "Y": 3, "X": 4} and len(meta.channels) == 2  # __post_init__ ran
    assert meta == ImageMeta({"C": 2, "Y": 3, "X": 4}, "uint8") and pickle.loads(pickle.dumps(meta)) == meta
    assert pickle.loads(pickle.dumps(Reader("r", suffixes=(".r",)))) == Reader("r", suffixes=(".r",))
    with pytest.raises(TypeError, match="missing required argument: 'dtype'"):
        ImageMeta({"C": 2})  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        Reader("r", colour="red")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="multiple values for argument 'name'"):
        Reader("r", name="s")  # type: ignore[misc]


# -- FrozenTuple: a NamedTuple whose annotations compile nothing ------------------------------------------------------
class Typed(NamedTuple):
    """A NamedTuple."""

    a: int
    b: tuple[int, ...]
    c: str | None = None
    d: float = 0.5

    def total(self) -> int:
        return self.a + sum(self.b)


class Fast(FrozenTuple):
    """A NamedTuple."""

    a: int
    b: tuple[int, ...]
    c: str | None = None
    d: float = 0.5

    def total(self) -> int:
        return self.a + sum(self.b)


def _said(make: Any) -> Any:
    """What ``make()`` gives (its repr with the class's name taken out), or the type and message of its error."""
    try:
        return make()
    except (TypeError, ValueError) as exc:
        return type(exc), str(exc).replace("Typed", "X").replace("Fast", "X")


@given(
    args=st.lists(st.one_of(st.integers(), st.tuples(st.integers()), st.text(max_size=3)), max_size=5),
    kwargs=st.dictionaries(st.sampled_from(["a", "b", "c", "d", "e"]), st.integers(), max_size=3),
)
def test_a_frozen_tuple_behaves_as_a_named_tuple(args: list[Any], kwargs: dict[str, Any]) -> None:
    typed, fast = _said(lambda: Typed(*args, **kwargs)), _said(lambda: Fast(*args, **kwargs))
    if not isinstance(typed, Typed):
        assert fast == typed
        return
    assert isinstance(fast, Fast) and isinstance(fast, tuple)
    assert fast == typed and tuple(fast) == tuple(typed) and hash(fast) == hash(typed)
    assert repr(fast).replace("Fast", "X") == repr(typed).replace("Typed", "X")
    assert fast._asdict() == typed._asdict() and fast._replace(a=9) == typed._replace(a=9)
    assert pickle.loads(pickle.dumps(fast)) == fast and type(pickle.loads(pickle.dumps(fast))) is Fast
    assert _said(lambda: fast.total()) == _said(lambda: typed.total())


def test_a_frozen_tuple_class_is_the_named_tuple_class_less_its_forward_refs() -> None:
    assert Fast._fields == Typed._fields and Fast._field_defaults == Typed._field_defaults
    assert Fast.__doc__ == Typed.__doc__ == "A NamedTuple." and Fast.__module__ == Typed.__module__
    assert Fast.__qualname__ == "Fast" and Fast.__mro__ == (Fast, tuple, object)
    assert Fast._make([1, (2,), "c", 0.25]) == Typed._make([1, (2,), "c", 0.25]) == (1, (2,), "c", 0.25)
    assert Fast.__annotations__ == {"a": "int", "b": "tuple[int, ...]", "c": "str | None", "d": "float"}
    assert all(isinstance(v, ForwardRef) for v in Typed.__annotations__.values())  # what it spares
    assert get_type_hints(Fast) == get_type_hints(Typed)


def test_a_frozen_tuple_refuses_what_a_named_tuple_refuses() -> None:
    with pytest.raises(TypeError):

        class _Late(FrozenTuple):
            a: int = 0
            b: int

    with pytest.raises(AttributeError):

        class _Own(FrozenTuple):
            a: int

            def _replace(self) -> None: ...

    with pytest.raises(TypeError):

        class _Mixed(FrozenTuple, int):  # type: ignore[misc]
            a: int


def test_the_named_tuples_of_a_first_plane_compile_no_forward_ref() -> None:
    """The NamedTuples a first plane and a plate's first image make (their annotations stay text)."""
    from ome_arrow_core.chunks import ChunkProjection
    from ome_arrow_core.typed_chunk import (
        box_units,
        chunk_reads,
        grouped_reads,
        locators,
        page_values,
        thrift_walk,
        whole_chunks,
    )

    for cls in (
        ChunkProjection,
        box_units.Unit,
        chunk_reads.Placement,
        grouped_reads.SubPages,
        locators.Located,
        page_values.PageValues,
        thrift_walk.RowGroupSpans,
        whole_chunks.WholeChunk,
    ):
        assert issubclass(cls, tuple) and cls._fields, cls
        assert all(isinstance(v, str) for v in cls.__annotations__.values()), cls
