"""What a null means to a dataset filter: a None value, a null row, and a column of Arrow type null.

A mapping filter follows SQL (``pc.equal`` and ``pc.is_in(..., skip_nulls=True)``): a null row equals no value and
a None value equals no row, so ``{"well": None}`` keeps nothing and ``{"well": ["A01", None]}`` is
``{"well": ["A01"]}``; ``pc.field("well").is_null()`` keeps the rows without a well. A metadata column whose every
value was None when written has Arrow type null; a filter on it is evaluated as on an all-null column of the type
its values have (a string filter on it matches nothing, it does not raise).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pyarrow as pa

from ..errors import ArgumentError

if TYPE_CHECKING:
    import pyarrow.compute as pc

__all__ = ["FILTER_ERRORS", "WIDENED", "MANY", "is_many", "filtered", "refused_filter", "term_values"]

#: What pyarrow raises for a filter it cannot apply to a table (a type its kernels do not compare).
FILTER_ERRORS: Final = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)
#: The types a column of type null is tried as, in turn, when pyarrow cannot apply a filter to it as it is.
WIDENED: Final = (pa.string(), pa.int64(), pa.float64(), pa.bool_())


#: The values of a mapping filter's term that mean "one of" them (and a 1-d numpy array, see :func:`is_many`).
MANY: Final = (list, tuple, set, frozenset, range)


def is_many(value: Any) -> bool:
    """True when a mapping filter's term ``value`` means "one of": a list, tuple, set, range or 1-d numpy array."""
    return isinstance(value, MANY) or (isinstance(value, np.ndarray) and value.ndim == 1)


def term_values(value: Any, column: object = None) -> list[Any]:
    """The values a mapping filter's term (on ``column``) asks for: ``value``, or the members of a list, tuple, set,
    range or 1-d numpy array (as Python values), without None (a null equals nothing)."""
    if isinstance(value, np.ndarray):
        if value.ndim > 1:
            raise ArgumentError(
                f"filter {{{column!r}: array of shape {value.shape}}}: a numpy array of values must be 1-d; "
                "pass array.ravel() to match any of its values"
            )
        value = value.tolist()  # numpy scalars as Python's (a 0-d array: one value)
    values = list(value) if isinstance(value, MANY) else [value]
    return [v for v in values if v is not None]


def filtered(table: pa.Table, expr: pc.Expression) -> pa.Table:
    """``table.filter(expr)``; where pyarrow refuses ``expr`` and ``table`` has columns of type null, those columns
    are taken as all-null columns of :data:`WIDENED` types (each column its own: ``{"well": "A01", "site": 0}`` on
    two all-null columns wants a string and an integer), and the first assignment ``expr`` applies to decides (the
    values are the same nulls whatever the types); the rows come back with their null columns as they were.
    pyarrow's first error propagates when no assignment fits."""
    try:
        return table.filter(expr)
    except FILTER_ERRORS:
        nulls = [i for i, f in enumerate(table.schema) if pa.types.is_null(f.type)]
        if not nulls:
            raise
        names = [table.schema.field(i).name for i in nulls]
        used = [n for n in names if n in str(expr)] if len(nulls) > 3 else names  # (4^k assignments: only named)
        for kinds in itertools.product(WIDENED, repeat=len(used)):
            typed = dict(zip(used, kinds))
            wide = table
            for i, name in zip(nulls, names):
                kind = typed.get(name, WIDENED[0])
                wide = wide.set_column(i, pa.field(name, kind), pa.nulls(len(table), kind))
            try:
                kept = wide.filter(expr)
            except FILTER_ERRORS:
                continue
            for i in nulls:
                kept = kept.set_column(i, table.schema.field(i), pa.nulls(len(kept)))
            return kept
        raise


def refused_filter(expr: object, where: str, columns: Sequence[str], exc: BaseException) -> ArgumentError:
    """The ArgumentError of a filter pyarrow cannot apply (``exc``, one of :data:`FILTER_ERRORS`) to the table of
    ``columns`` in ``where`` ("" or " to FILE"): a column it does not have, or a value of another type. pyarrow's
    reason is cut to its first line (it appends the whole schema)."""
    lines = str(exc).strip().splitlines()
    reason = lines[0] if lines else type(exc).__name__
    return ArgumentError(
        f"filter {expr} cannot be applied{where} (columns: {list(columns)}): {reason}; filter on these columns, "
        "with values of their types"
    )
