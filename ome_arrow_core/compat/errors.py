"""Errors of the compatibility layer: selections the reference rejects with ValueError stay ValueErrors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import SelectionError

__all__ = ["SelectionValueError", "selection_as_value_error"]


class SelectionValueError(SelectionError, ValueError):
    """A bad selection (ome-arrow-core's SelectionError, an IndexError) that is also a ValueError."""


@contextmanager
def selection_as_value_error() -> Iterator[None]:
    """Re-raise ome-arrow-core's SelectionError as :class:`SelectionValueError` (same message)."""
    try:
        yield
    except SelectionValueError:
        raise
    except SelectionError as exc:
        raise SelectionValueError(str(exc)) from exc
