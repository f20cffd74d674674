"""Vortex files as ome-arrow 0.1.0 writes them: a table whose struct column holds one OME-Arrow record a row.

Read whole (its records are whole images) into a ``TableRecordSource``; written (``export("vortex",
layout="record")``) as a one-row table the reference reads, sealed as every Vortex file we write.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ome_arrow_core.plugin_api import (
    PixelSource,
    TableRecordSource,
    atomic_path,
    ome_columns,
    record_table,
)

from .format import COLUMNS
from .reader import Opened, vortex_reading
from .seal import seal, unchanged

__all__ = ["is_record_layout", "open_records", "write_record_vortex"]


def is_record_layout(file: Any) -> bool:
    """True for an opened Vortex file with OME-Arrow struct columns and not our chunk rows."""
    schema = file.dtype.to_arrow_schema()
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
