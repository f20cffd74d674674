"""Appended metadata in the dataset's column types: stored exactly, or refused (never converted).

An append's metadata column that the dataset already has takes the dataset's type when it holds values of
the same kind (numbers, text, booleans, bytes, dates, ...) that the type represents exactly: ints into a
float column, floats with integral values into an int column, ``int64`` values that fit into ``int32``.
Anything else (ints into a text column, text into a number column, ``1.5`` into an int column, ``0.1``
into ``float32``) is refused with a :class:`~ome_arrow_core.errors.SchemaError` naming the column and both
types. Null fits any type at any depth: appended nulls (``list<null>`` from empty lists, a struct field of
``None``) take the dataset's type there, and where the dataset's column is null (written all null, or
``list<null>`` from only empty lists) the appended part keeps its values' type; new columns are added, and
columns the new images lack read as null there.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from ..errors import SchemaError

__all__ = ["conform"]

_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)


def conform(table: pa.Table, existing: pa.Schema) -> pa.Table:
    """``table`` with each column ``existing`` has stored in its type; values it cannot hold exactly are refused."""
    for i, name in enumerate(table.column_names):
        if name not in existing.names:
            continue  # a new column
        want, have = existing.field(name).type, table.schema.field(name).type
        fits = _fits(kind(have), kind(want))
        target = _fill(want, have) if fits else want  # where the dataset's type is null, the new values' type
        if have == target:
            continue
        table = table.set_column(i, pa.field(name, target), _exact(name, table.column(name), target))
    return table


class _Null:
    """The kind of Arrow's null type: it fits every kind."""


_NULL = _Null()


def _fits(a: Any, b: Any) -> bool:
    """Whether kinds ``a`` and ``b`` are one kind, null fitting any at every depth."""
    if a is _NULL or b is _NULL:
        return True
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_fits(x, y) for x, y in zip(a, b))
    return bool(a == b)


def _fill(t: pa.DataType, other: pa.DataType) -> pa.DataType:
    """``t`` with each null part (at any depth) replaced by ``other``'s type there (kinds already fit)."""
    types = pa.types
    if types.is_null(t):
        return other
    if t == other or types.is_null(other):
        return t
    if types.is_struct(t) and types.is_struct(other) and t.num_fields == other.num_fields:
        return pa.struct([f.with_type(_fill(f.type, o.type)) for f, o in zip(t, other)])
    if _is_list(t) and _is_list(other):
        field = t.value_field.with_type(_fill(t.value_type, other.value_type))
        if types.is_fixed_size_list(t):
            return pa.list_(field, t.list_size)
        if types.is_list_view(t):
            return pa.list_view(field)
        return pa.large_list(field) if types.is_large_list(t) else pa.list_(field)
    return t


def _is_list(t: pa.DataType) -> bool:
    types = pa.types
    return bool(types.is_list(t) or types.is_large_list(t) or types.is_fixed_size_list(t) or types.is_list_view(t))


def kind(t: pa.DataType) -> Any:
    """What values of type ``t`` are, across widths and encodings: types of one kind hold each other's values."""
    types = pa.types
    if types.is_null(t):
        return _NULL
    if types.is_dictionary(t):
        return kind(t.value_type)
    if types.is_integer(t) or types.is_floating(t) or types.is_decimal(t):
        return "number"
    if types.is_string(t) or types.is_large_string(t) or types.is_string_view(t):
        return "text"
    if types.is_binary(t) or types.is_large_binary(t) or types.is_fixed_size_binary(t) or types.is_binary_view(t):
        return "bytes"
    if types.is_timestamp(t):
        return ("timestamp", t.tz)  # naive and zoned times are different things
    if _is_list(t):
        return ("list", kind(t.value_type))
    if types.is_struct(t):
        return ("struct", tuple((f.name, kind(f.type)) for f in t))
    for name in ("boolean", "date", "time", "duration"):
        if getattr(types, f"is_{name}")(t):
            return name
    return str(t)


def _exact(name: str, column: pa.ChunkedArray, want: pa.DataType) -> pa.ChunkedArray:
    have = column.type
    how = {"text": "str(v)", "number": "int(v), float(v) or round(v)", "boolean": "bool(v)"}.get(kind(want))
    fix = (
        f"convert the values to {want} before appending if that is what you mean (e.g. {how or 'with pyarrow'}), "
        "or give them a new column name"
    )
    if pa.types.is_null(have):
        return pa.chunked_array([pa.nulls(len(column), want)], want)
    if not _fits(kind(have), kind(want)):
        raise SchemaError(
            f"metadata column {name!r}: the dataset's column is {want}, the appended images' values are {have}; "
            f"values are never converted to another kind: {fix}"
        )
    try:
        full = _fill(have, want)  # the given type with its null parts in the stored type (no value changes)
        column = column.cast(full)
        cast = column.cast(want)  # safe: refuses out-of-range ints and truncated floats
        back = cast.cast(full, safe=False)  # what the stored value reads as in the given type: x back only if exact
    except _ARROW_ERRORS as exc:
        raise SchemaError(
            f"metadata column {name!r}: the appended {have} values do not fit the dataset's column of {want} "
            f"exactly ({exc}): {fix}"
        ) from exc
    changed = _first_changed(column, back)
    if changed is not None:
        raise SchemaError(
            f"metadata column {name!r}: the appended {have} value {column[changed].as_py()!r} is not exactly "
            f"representable in the dataset's column of {want} (it would read as {cast[changed].as_py()!r}): {fix}"
        )
    return cast


def _first_changed(a: pa.ChunkedArray, b: pa.ChunkedArray) -> int | None:
    """The first row whose value (or nullness) differs between ``a`` and ``b`` (one type); NaN equals NaN."""
    import pyarrow.compute as pc

    x, y = a.combine_chunks(), b.combine_chunks()
    try:
        same = pc.equal(x, y)
        if pa.types.is_floating(x.type):
            same = pc.or_kleene(same, pc.and_(pc.is_nan(x), pc.is_nan(y)))
        same = pc.if_else(pc.is_null(x), pc.is_null(y), pc.fill_null(same, False))
    except _ARROW_ERRORS:  # nested types: compared whole, then row by row for the message
        if x.equals(y):
            return None
        return next((i for i in range(len(x)) if x[i].as_py() != y[i].as_py()), 0)
    bad = pc.index(same, False).as_py()
    return None if bad < 0 else int(bad)
