"""Integer arguments (sizes, shapes, crops, indices, rows): refused when not whole numbers, never truncated.

``roi=(0.5, 0, 4, 4)`` or ``tile_size=(31.9, 32)`` is almost certainly a mistake (a computed
size not rounded); ``int()`` would silently read something else. Every public argument that
is a count or a coordinate goes through :func:`whole_numbers`; an index into a dataset goes
through :func:`check_index` and a reader's ``row=`` through :func:`check_row`, whose
out-of-range values raise :class:`~.errors.SelectionError` (an IndexError) and
:class:`~.errors.ArgumentError` (a ValueError) as before these checks.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

from .errors import ArgumentError, SelectionError, SelectionTypeError

__all__ = [
    "IntegerArgumentError",
    "IndicesTypeError",
    "whole_numbers",
    "whole_number",
    "tile_shape",
    "named_options",
    "check_index",
    "check_row",
]


class IntegerArgumentError(ArgumentError, SelectionError):
    """A size, shape, crop or index argument is not an integer (an ArgumentError, and a SelectionError as before)."""


class IndicesTypeError(ArgumentError, TypeError):
    """Image indices are not a sequence (``ds.read(0)``): an ArgumentError, and a TypeError as before."""


def whole_numbers(values: Iterable[Any], what: str) -> list[int]:
    """``values`` as ints; IntegerArgumentError naming ``what`` when one is not an integer (bools neither)."""
    vals = list(values)
    for v in vals:  # plain ints (the usual case) are the answer as they are
        if type(v) is not int:
            break
    else:
        return vals
    bad = [v for v in vals if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer))]
    if bad:
        raise IntegerArgumentError(f"{what} takes integers, got {bad!r} in {tuple(vals)!r}{_advice(bad, 'them')}")
    return [int(v) for v in vals]


def _advice(bad: list[Any], pronoun: str) -> str:
    """How to mend ``bad`` values: round floats; name the type of anything else (a str, a bool)."""
    if all(isinstance(v, (float, np.floating)) for v in bad):
        return f"; round {pronoun} first"
    return f" ({', '.join(dict.fromkeys(f'a {type(v).__name__}' for v in bad))})"


def tile_shape(value: Any, n: int, what: str) -> list[int]:
    """``value``, ``n`` integers (an int stands for ``n`` equal ones: ``tile_size=256``); ArgumentError naming
    ``what`` otherwise (sizes below 1 are refused where the tiles are made, naming the axis)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        value = [value] * n
    elif isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ArgumentError(f"{what} takes {n} integers or one int, got {value!r}")
    sizes = whole_numbers(value, what)
    if len(sizes) != n:
        raise ArgumentError(f"{what} takes {n} integers (or one), got {tuple(sizes)!r}")
    return sizes


@contextmanager
def named_options(given: Mapping[str, Any], who: str, hint: str) -> Iterator[None]:
    """Python's TypeError for a keyword of ``given`` that the function called inside has no parameter for ("got an
    unexpected keyword argument 'x'"), as an ArgumentError: ``{who} has no option 'x' (...); {hint}``. Any other
    TypeError passes as it is."""
    try:
        yield
    except TypeError as exc:
        found = re.search(r"unexpected keyword argument '([^']+)'", str(exc))
        if found is None or found.group(1) not in given:
            raise
        raise ArgumentError(f"{who} has no option {found.group(1)!r} ({exc}); {hint}") from exc


def whole_number(value: Any, what: str) -> int:
    """``value`` as an int; IntegerArgumentError naming ``what`` when it is not an integer."""
    if type(value) is not int and (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer))):
        raise IntegerArgumentError(f"{what} takes an integer, got {value!r}{_advice([value], 'it')}")
    return int(value)


def seed_generator(seed: Any) -> np.random.Generator:
    """numpy's generator of ``seed``; ArgumentError for a seed numpy refuses (a str, a float, a negative int)."""
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise ArgumentError(
            f"seed takes an int >= 0 (or None: a fresh shuffle each time), got {seed!r} ({exc})"
        ) from exc


def _integer(value: object, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise SelectionTypeError(f"{what} must be an integer, got {value!r} ({type(value).__name__})")
    return int(value)


def check_index(i: object, n: int) -> int:
    """Position of image ``i`` (negative counts from the end) among ``n``."""
    k = _integer(i, "a dataset index")
    if not -n <= k < n:
        held = f"images 0..{n - 1}" if n else "no images"
        raise SelectionError(f"image {k} is out of range; the dataset holds {held}")
    return k % n


def check_row(row: object) -> int:
    """``row=`` of a reader: an integer >= 0 (its upper bound is checked by the reader)."""
    k = _integer(row, "row=")
    if k < 0:
        raise ArgumentError(f"row= takes an image number >= 0, got {k}")
    return k
