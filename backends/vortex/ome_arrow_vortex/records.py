"""Vortex files as ome-arrow 0.1.0 writes them: a table whose struct column holds one OME-Arrow record a row.

Read whole (its records are whole images) into a ``TableRecordSource``; written (``export("vortex",
layout="record")``) as a one-row table the reference reads, sealed as every Vortex file we write.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from ome_arrow_core.plugin_api import (
    PixelSource,
    SchemaError,
    TableRecordSource,
    atomic_path,
    ome_columns,
    record_table,
)

from .format import COLUMNS
from .reader import VIEW_TYPES, Opened, open_checked, vortex_reading
from .seal import has_seal, seal, unchanged

__all__ = ["is_record_layout", "open_records", "record_collection", "write_record_vortex"]

#: The columns a collection's table names its images by; a table's own columns of these names are left out.
_NAMING = ("image_id", "path", "row")


def is_record_layout(schema: pa.Schema) -> bool:
    """True for the schema of a Vortex file with OME-Arrow struct columns and not our chunk rows."""
    return not set(COLUMNS) <= set(schema.names) and bool(ome_columns(schema))


def open_records(path: Path, opened: Opened, column: str | None, row: int) -> PixelSource:
    """Record ``row`` of ``column`` (None: the only OME-Arrow column) of the opened file ``path``."""
    import vortex as vx

    with vortex_reading(path, column, "reading the records"):  # into memory of its own, not a map of the file:
        table = vx.open(str(path), memory_map=False).to_arrow().read_all()  # a later write cannot reach it
    source = TableRecordSource(
        table,
        path,
        column=column,
        row=row,
        storage="vortex OME-Arrow struct column (ome-arrow 0.1.0's layout)",
        facts={"file_bytes": path.stat().st_size, "sealed": None if opened.checked is None else opened.checked.sealed},
    )
    unchanged(opened.checked, path)
    return source


def record_collection(path: Path, column: str | None = None) -> pa.Table | None:
    """The records of a Vortex table of several (ome-arrow 0.1.0's layout, one image a row, as users build them) as
    a metadata table: ``image_id`` ``name#i``, ``path``, ``row`` i (the ``row=`` that opens it) and the table's
    other columns (a well, a label...; not its other OME-Arrow columns). ``column`` picks the OME-Arrow column of a
    table of several. None for one image: our files (sealed: one image each), a table of one record, or of several
    OME-Arrow columns without ``column`` (opening it asks for ``column=``)."""
    if has_seal(path):
        return None
    opened = open_checked(path, True, None)
    with vortex_reading(path, None, "listing its records"):
        schema = opened.file.dtype.to_arrow_schema()
        n = len(opened.file)
        images = ome_columns(schema)
        if column is not None and column not in images:
            raise SchemaError(
                f"{path}: column {column!r} is not an OME-Arrow column of this Vortex table; its OME-Arrow columns "
                f"are {images or 'none'}: pass one of them as column="
            )
        if n < 2 or not is_record_layout(schema) or (column is None and len(images) != 1):
            return None
        others = [f for f in schema if f.name not in images and f.name not in _NAMING]
        read = opened.file.to_arrow([f.name for f in others]).read_all() if others else None
    unchanged(opened.checked, path)
    columns: dict[str, Any] = {
        "image_id": [f"{path.name}#{i}" for i in range(n)],
        "path": [str(path)] * n,
        "row": pa.array(range(n), pa.int64()),
    }
    for f in others:
        assert read is not None
        columns[f.name] = read.column(f.name).cast(VIEW_TYPES.get(f.type, f.type))
    return pa.table(columns)


def write_record_vortex(image: Any, out: Path, column: str = "ome_arrow") -> Path:
    """Write ``image`` to ``out`` as a one-row Vortex table, column ``column`` its OME-Arrow record (what ome-arrow
    0.1.0's ``from_ome_vortex`` reads), atomically and sealed. Reads the image whole."""
    import vortex as vx

    table = record_table(image, column)
    out = Path(out)
    with atomic_path(out) as tmp:
        vx.io.write(table, str(tmp))
        seal(Path(tmp))
    return out
