"""``@frozen``: a frozen dataclass whose methods compile nothing; :class:`FrozenTuple`: a NamedTuple whose
annotations compile nothing.

On Python 3.11 ``@dataclass(frozen=True)`` writes each generated method as source and compiles it
(``exec``): ~4 M instructions, ~1.3 ms, per class, paid by every process that imports it (the seven
handler classes alone were ~10 ms of a fresh process's import + first plane). ``@frozen`` lets
:func:`dataclasses.dataclass` collect the fields (~0.1 M instructions) and gives the class shared
functions for ``__init__``, ``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__`` and ``__delattr__``,
driven by its field list. The result is a frozen dataclass (``dataclasses.fields``, ``replace``,
``asdict``, pickling, frozen subclasses by either decorator) that behaves the same; only its
``__init__`` is a generic one (no per-class signature, a few microseconds slower a call): use it for
classes made a few times per process, not in a hot loop. ``kw_only`` and ``InitVar`` fields are refused.

``class P(FrozenTuple)`` is ``class P(typing.NamedTuple)`` (type checkers see exactly that), made without
evaluating its annotations: under ``from __future__ import annotations`` they are strings, and
``typing.NamedTuple`` compiles each into a ``ForwardRef`` (~0.13 M instructions a field, ~0.8 M a class of six; a
first plane's eight classes were ~7 M). The class is :func:`collections.namedtuple`'s, with the body's defaults,
methods, docstring and (string) annotations, as ``typing.NamedTuple`` makes it.
"""

from __future__ import annotations

import collections
import dataclasses
import inspect
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, dataclass_transform

__all__ = ["frozen", "FrozenTuple"]

T = TypeVar("T")


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field,))
def frozen(cls: type[T]) -> type[T]:
    """``cls`` as ``@dataclass(frozen=True)`` makes it, without compiling its init, repr, eq and hash."""
    for f in inspect.get_annotations(cls).values():
        if "InitVar" in str(f) or "KW_ONLY" in str(f):
            raise TypeError(f"@frozen does not support InitVar or KW_ONLY fields ({cls.__qualname__})")
    made = _fields_only(cls)
    dc: Any = made  # its methods are set below
    fields = dataclasses.fields(dc)
    if any(f.kw_only for f in fields):
        raise TypeError(f"@frozen does not support kw_only fields ({cls.__qualname__})")
    own = cls.__dict__
    if "__init__" not in own:
        dc.__init__ = _init(dc, fields)
    if "__repr__" not in own:
        dc.__repr__ = _repr(tuple(f.name for f in fields if f.repr))
    if "__eq__" not in own:
        dc.__eq__ = _eq(tuple(f.name for f in fields if f.compare))
    # dataclass(frozen=True, eq=True) hashes the compared fields (or those with hash=True) unless the class
    # defines __hash__ itself (a class body defining only __eq__ has __hash__ = None: that is not its own)
    if "__hash__" not in own or (own["__hash__"] is None and "__eq__" in own):
        hashed = tuple(f.name for f in fields if (f.compare if f.hash is None else f.hash))
        dc.__hash__ = _hash(hashed)
    if not dc.__dataclass_params__.frozen:  # made without dataclass's own frozen methods (see _fields_only)
        names = frozenset(f.name for f in fields)
        dc.__setattr__ = _frozen_set(made, names)
        dc.__delattr__ = _frozen_del(made, names)
    params = dc.__dataclass_params__
    params.init = params.repr = params.eq = params.frozen = True  # what it behaves as (subclasses read these)
    setattr(made, _MARK, True)
    return made


#: Set on each class @frozen made: its params say frozen, and it may be thawed while a subclass is made.
_MARK = "__ome_arrow_frozen__"
_lock = threading.Lock()


def _fields_only(cls: type[T]) -> type[T]:
    """``cls`` made a dataclass with no generated method (no code compiled), frozen or not as its bases allow.

    ``dataclass(frozen=True)`` compiles ``__setattr__`` and ``__delattr__`` (~1.4 M instructions a class), so
    the fields are collected with ``frozen=False`` and :func:`frozen` adds shared ones. A base made by
    ``@frozen`` says frozen (so ``@dataclass(frozen=True)`` subclasses work), which ``dataclass`` refuses
    under a non-frozen class: it is marked not frozen while its subclass is made, under a lock that every
    ``@frozen`` takes. A ``@dataclass(frozen=True)`` subclass of the same base made by another thread in that
    instant (microseconds, at import time) would be refused; nothing in this package does that. Under a frozen
    base that ``@dataclass`` made, the class is made frozen by ``dataclass`` itself.
    """
    params = [b.__dict__["__dataclass_params__"] for b in cls.__mro__[1:] if "__dataclass_params__" in b.__dict__]
    marked = [b.__dict__.get(_MARK, False) for b in cls.__mro__[1:] if "__dataclass_params__" in b.__dict__]
    if any(p.frozen and not m for p, m in zip(params, marked)):
        return dataclasses.dataclass(cls, frozen=True, init=False, repr=False, eq=False)
    ours = [p for p, m in zip(params, marked) if m]
    with _lock:
        for p in ours:
            p.frozen = False
        try:
            return dataclasses.dataclass(cls, init=False, repr=False, eq=False)
        finally:
            for p in ours:
                p.frozen = True


def _frozen_set(cls: Any, names: frozenset[str]) -> Callable[[Any, str, Any], None]:
    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    return __setattr__


def _frozen_del(cls: Any, names: frozenset[str]) -> Callable[[Any, str], None]:
    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)

    return __delattr__


def _init(cls: type, fields: tuple[dataclasses.Field[Any], ...]) -> Callable[..., None]:
    names = tuple(f.name for f in fields if f.init)
    defaults = {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}
    factories = {f.name: f.default_factory for f in fields if f.default_factory is not dataclasses.MISSING}
    later = tuple(f.name for f in fields if not f.init and (f.name in defaults or f.name in factories))
    post_init = hasattr(cls, "__post_init__")
    where = f"{cls.__qualname__}.__init__()"
    put = object.__setattr__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(names):
            raise TypeError(f"{where} takes {len(names) + 1} positional arguments but {len(args) + 1} were given")
        for name, value in zip(names, args):
            if name in kwargs:
                raise TypeError(f"{where} got multiple values for argument {name!r}")
            put(self, name, value)
        for name in names[len(args) :]:
            if name in kwargs:
                put(self, name, kwargs.pop(name))
            elif name in defaults:
                put(self, name, defaults[name])
            elif name in factories:
                put(self, name, factories[name]())
            else:
                raise TypeError(f"{where} missing required argument: {name!r}")
        if kwargs:
            raise TypeError(f"{where} got an unexpected keyword argument {next(iter(kwargs))!r}")
        for name in later:
            put(self, name, defaults[name] if name in defaults else factories[name]())
        if post_init:
            self.__post_init__()

    return __init__


def _repr(names: tuple[str, ...]) -> Callable[[Any], str]:
    def __repr__(self: Any) -> str:
        return f"{self.__class__.__qualname__}({', '.join(f'{n}={getattr(self, n)!r}' for n in names)})"

    return __repr__


def _eq(names: tuple[str, ...]) -> Callable[[Any, object], bool]:
    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return tuple(getattr(self, n) for n in names) == tuple(getattr(other, n) for n in names)

    return __eq__


def _hash(names: tuple[str, ...]) -> Callable[[Any], int]:
    def __hash__(self: Any) -> int:
        return hash(tuple(getattr(self, n) for n in names))

    return __hash__


#: What a NamedTuple's body may not define, and what it defines that the class does not take (as typing has them).
_PROHIBITED = frozenset(
    {"__new__", "__init__", "__slots__", "__getnewargs__", "_fields", "_field_defaults", "_make", "_replace", "_asdict"}
)
_SPECIAL = frozenset({"__module__", "__name__", "__annotations__"})


class _TupleMeta(type):
    """Makes a subclass of :class:`FrozenTuple` a :func:`collections.namedtuple` (see the module)."""

    def __new__(mcls, name: str, bases: tuple[type, ...], ns: dict[str, Any]) -> Any:
        if not bases:  # FrozenTuple itself
            return super().__new__(mcls, name, bases, ns)
        if bases != (_FrozenTuple,):
            raise TypeError(f"{name}: a FrozenTuple class takes no other base")
        fields = tuple(ns.get("__annotations__", {}))
        defaults = [n for n in fields if n in ns]
        if defaults and list(fields[-len(defaults) :]) != defaults:
            raise TypeError(f"{name}: a field without a default follows one with a default")
        make: Any = collections.namedtuple  # called with names known only here
        made = make(name, fields, defaults=[ns[n] for n in defaults], module=ns["__module__"])
        for key, value in ns.items():
            if key in _PROHIBITED:
                raise AttributeError(f"{name}: cannot overwrite NamedTuple attribute {key}")
            if key not in _SPECIAL and key not in fields:
                setattr(made, key, value)
        made.__annotations__ = made.__new__.__annotations__ = dict(ns.get("__annotations__", {}))
        return made


class _FrozenTuple(metaclass=_TupleMeta):
    """The base whose subclasses :class:`_TupleMeta` makes."""


if TYPE_CHECKING:
    from typing import NamedTuple as FrozenTuple
else:
    FrozenTuple = _FrozenTuple
