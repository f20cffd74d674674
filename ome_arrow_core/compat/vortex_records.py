"""Single-struct-column Vortex files, as ``ome-arrow`` 0.1.0 writes them: one OME-Arrow record per row."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa

from ..errors import BackendUnavailableError
from ..plugin_api import atomic_path, reading

__all__ = ["is_record_vortex", "read_record_vortex_table", "write_record_vortex"]

_HINT = 'pip install "ome-arrow-core[vortex]"'


def _vortex() -> object:
    try:
        import vortex
    except ImportError as exc:
        raise BackendUnavailableError(f"Vortex files need the vortex-data package: {_HINT}") from exc
    return vortex


def write_record_vortex(
    records: pa.StructArray,
    out_path: str | os.PathLike[str],
    column_name: str = "image",
    file_metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``records`` as one struct column ``column_name`` (atomically).

    ``file_metadata`` is accepted for compatibility; vortex-data does not store Arrow schema
    metadata, so it is not kept (as with the reference).
    """
    del file_metadata
    vortex = _vortex()
    table = pa.table({column_name: records})
    with atomic_path(out_path) as tmp:
        vortex.io.write(table, str(tmp))  # type: ignore[attr-defined]


def read_record_vortex_table(path: str | os.PathLike[str]) -> pa.Table:
    """The whole table of a Vortex file (the reference's record files are one column, few rows)."""
    vortex = _vortex()
    with reading(Path(path), None, "reading the Vortex table"):
        return vortex.open(str(path)).to_arrow().read_all()  # type: ignore[attr-defined]


def is_record_vortex(path: str | os.PathLike[str]) -> bool:
    """True for a Vortex file with a struct column carrying the OME-Arrow fields (not our chunk-row layout)."""
    vortex = _vortex()
    with reading(Path(path), None, "reading the Vortex schema"):
        schema = vortex.open(str(path)).to_arrow().schema  # type: ignore[attr-defined]
    return any(pa.types.is_struct(f.type) and {"type", "pixels_meta"} <= {c.name for c in f.type} for f in schema)
