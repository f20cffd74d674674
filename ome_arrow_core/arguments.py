"""Integer arguments (sizes, shapes, crops, indices): refused when not whole numbers, never truncated.

``roi=(0.5, 0, 4, 4)`` or ``tile_size=(31.9, 32)`` is almost certainly a mistake
(a computed size not rounded); ``int()`` would silently read something else. Every public
argument that is a count or a coordinate goes through :func:`whole_numbers`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .errors import ArgumentError, SelectionError

__all__ = ["IntegerArgumentError", "whole_numbers", "whole_number"]


class IntegerArgumentError(ArgumentError, SelectionError):
    """A size, shape, crop or index argument is not an integer (an ArgumentError, and a SelectionError as before)."""


def whole_numbers(values: Iterable[Any], what: str) -> list[int]:
    """``values`` as ints; IntegerArgumentError naming ``what`` when one is not an integer (bools neither)."""
    vals = list(values)
    bad = [v for v in vals if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer))]
    if bad:
        raise IntegerArgumentError(f"{what} takes integers, got {bad!r} in {tuple(vals)!r}; round them first")
    return [int(v) for v in vals]


def whole_number(value: Any, what: str) -> int:
    """``value`` as an int; IntegerArgumentError naming ``what`` when it is not an integer."""
    return whole_numbers([value], what)[0]
