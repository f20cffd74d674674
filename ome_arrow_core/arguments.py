"""Checks of arguments that number images: an index into a dataset, a ``row=`` of a file.

Numbers must be integers (a bool, a float or a string is refused, never rounded);
out-of-range ones raise :class:`~.errors.SelectionError` (an IndexError) for indices and
:class:`~.errors.ArgumentError` (a ValueError) for ``row=``, as before these checks.
"""

from __future__ import annotations

import numbers

from .errors import ArgumentError, SelectionError, SelectionTypeError

__all__ = ["check_index", "check_row"]


def _integer(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
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
