"""One record of a Parquet or Vortex file of OME-Arrow records (``from_ome_parquet``, ``from_ome_vortex``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..boundary import blaming
from ..errors import ArgumentError
from ..plugin_api import reading
from ..record import carrying_stored, stored_ome_xml
from .tables import pick_record_column, record_column_name
from .vortex_records import read_record_vortex_table

__all__ = ["from_ome_parquet", "from_ome_vortex"]


def _finish(scalar: pa.StructScalar, array: pa.StructArray, return_array: bool) -> Any:
    return (scalar, array) if return_array else scalar


def from_ome_parquet(
    parquet_path: str | os.PathLike[str],
    *,
    column_name: str | None = "ome_arrow",
    row_index: int = 0,
    strict_schema: bool = False,
    return_array: bool = False,
) -> Any:
    """Record ``row_index`` of an OME-Arrow column of a Parquet file (only its row group is read).

    A missing ``column_name`` falls back to the first OME-Arrow column, with a UserWarning.
    """
    p = Path(parquet_path)
    if not p.exists():
        raise FileNotFoundError(f"No such file: {p}")
    with reading(p, None, "reading the Parquet footer"):
        pf = pq.ParquetFile(p)
        n = pf.metadata.num_rows
    if not 0 <= row_index < n:
        raise ArgumentError(f"row_index {row_index} out of range [0, {n}) in {p}")
    group, local = 0, row_index
    while local >= pf.metadata.row_group(group).num_rows:
        local -= pf.metadata.row_group(group).num_rows
        group += 1
    columns = [column_name] if column_name is not None and column_name in pf.schema_arrow.names else None
    with reading(p, f"row group {group}", "reading the record"):
        table = pf.read_row_group(group, columns=columns)
    scalar, array = pick_record_column(table, column_name, local, strict_schema)
    stored = stored_ome_xml(pf.schema_arrow.metadata, record_column_name(table, column_name), row_index)
    if stored is not None:  # the file's stored OME-XML for this record, carried by it (checked first)
        with blaming(p, "ome_arrow_core.ome_xml"):
            array = carrying_stored(array, stored)
        scalar = array[0]
    return _finish(scalar, array, return_array)


def from_ome_vortex(
    vortex_path: str | os.PathLike[str],
    *,
    column_name: str | None = "ome_arrow",
    row_index: int = 0,
    strict_schema: bool = False,
    return_array: bool = False,
) -> Any:
    """Record ``row_index`` of a single-struct-column Vortex file (needs ``vortex-data``)."""
    p = Path(vortex_path)
    if not p.exists():
        raise FileNotFoundError(f"No such file: {p}")
    table = read_record_vortex_table(p)
    if not 0 <= row_index < table.num_rows:
        raise ArgumentError(f"row_index {row_index} out of range [0, {table.num_rows}) in {p}")
    scalar, array = pick_record_column(table, column_name, row_index, strict_schema)
    return _finish(scalar, array, return_array)
