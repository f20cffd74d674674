"""Pick the OME-Arrow record column of a table, warning as the reference does when it has to guess."""

from __future__ import annotations

import warnings

import pyarrow as pa

from ..errors import ArgumentError, SchemaError
from ..record import ome_arrow_struct
from .meta import OME_ARROW_BYTE_STRUCT
from .records import record_array

__all__ = ["is_record_type", "pick_record_column", "record_column_name"]


def is_record_type(t: pa.DataType) -> bool:
    """True for a struct type carrying the OME-Arrow marker fields."""
    return pa.types.is_struct(t) and {"type", "pixels_meta"} <= {f.name for f in t}


def _target(t: pa.DataType) -> pa.DataType | None:
    """The canonical record type of the same kind (byte chunks, or pixel lists of the same value type)."""
    names = {f.name for f in t}
    try:
        if "chunks" in names and "pixel_bytes" in {f.name for f in t.field("chunks").type.value_type}:
            return OME_ARROW_BYTE_STRUCT
        item = t.field("planes").type.value_type.field("pixels").type.value_type
    except (KeyError, AttributeError):
        return None
    return ome_arrow_struct(item)


def _same_kind(col: pa.Array) -> pa.Array | None:
    """``col`` cast to its canonical type when that changes no value (view or width types), else None."""
    target = _target(col.type)
    if target is None:
        return None
    if col.type == target:
        return col
    try:
        return col.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None


def record_column_name(table: pa.Table, column_name: str | None) -> str:
    """The OME-Arrow column :func:`pick_record_column` reads: ``column_name`` when it is one, else the first."""
    if column_name in table.column_names and is_record_type(table.schema.field(column_name).type):
        return str(column_name)
    found = [f.name for f in table.schema if is_record_type(f.type)]
    if not found:
        hint = (
            "no struct column with OME-Arrow fields"
            if column_name is None
            else f"column {column_name!r} not found and no other OME-Arrow column"
        )
        raise SchemaError(f"Could not locate an OME-Arrow struct column: {hint} (columns: {table.column_names})")
    return str(found[0])


def pick_record_column(
    table: pa.Table, column_name: str | None, row: int, strict_schema: bool = False
) -> tuple[pa.StructScalar, pa.StructArray]:
    """(record scalar, one-row array) of row ``row`` of column ``column_name``.

    A missing or unusable ``column_name`` falls back to the first OME-Arrow struct column
    (UserWarning "Requested column ... Auto-detected ..."); a column whose schema differs from
    the canonical one is normalized (UserWarning "schema differs from OME_ARROW_STRUCT") with
    every pixel value checked against the declared pixel type; ``strict_schema`` refuses it.
    """
    name = record_column_name(table, column_name)
    if name != column_name:
        if column_name is not None:
            warnings.warn(
                f"Requested column '{column_name}' was not usable or not found. "
                f"Auto-detected OME-Arrow column '{name}'.",
                UserWarning,
                stacklevel=3,
            )
    if not 0 <= row < table.num_rows:
        raise ArgumentError(f"row {row} out of range [0, {table.num_rows})")
    raw = table.column(name).slice(row, 1).combine_chunks()
    col = _same_kind(raw)
    if col is not None:
        if [f.name for f in raw.type] != [f.name for f in col.type]:
            warnings.warn(
                f"OME-Arrow column schema differs from OME_ARROW_STRUCT (fields {[f.name for f in raw.type]}); "
                "normalized by a lossless cast (absent fields are null).",
                UserWarning,
                stacklevel=3,
            )
        return col[0], col
    col = raw
    if strict_schema:
        raise SchemaError(f"column {name!r} does not have the canonical OME-Arrow schema (strict_schema=True)")
    warnings.warn(
        "OME-Arrow column schema differs from OME_ARROW_STRUCT; normalizing it (fields converted "
        "through Python objects; every pixel value checked against the declared pixel type).",
        UserWarning,
        stacklevel=3,
    )
    arr = record_array(col.to_pylist()[0])
    return arr[0], arr
