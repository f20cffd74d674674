"""Open a path the way the reference's ``OMEArrow(path)`` does, on ome-arrow-core's readers."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from .. import OMEArrow as CoreImage
from ..plugin_api import reading
from .tables import is_record_type

__all__ = ["kind_of", "record_column", "scan_path"]

_FORMATS = {".tif": "tiff", ".tiff": "tiff", ".zarr": "ome-zarr"}


def kind_of(path: Path) -> str:
    """ "dataset", "parquet", "vortex" or a reader format name (None-like "" lets the registry sniff)."""
    if path.is_dir() and (path / "_ome_arrow_dataset.json").exists():
        return "dataset"
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix == ".vortex":
        return "vortex"
    return _FORMATS.get(suffix, "")


def record_column(path: Path, column_name: str | None) -> str | None:
    """The record column of a Parquet file: ``column_name`` or, with a UserWarning, the first one found."""
    with reading(path, None, "reading the Parquet schema"):
        schema = pq.read_schema(path)
    if column_name in schema.names and is_record_type(schema.field(column_name).type):
        return column_name
    found = [f.name for f in schema if is_record_type(f.type)]
    if not found:
        return None  # not a record file: a typed-chunk file or another layout, left to the reader
    if column_name is not None:
        warnings.warn(
            f"Requested column '{column_name}' was not usable or not found. "
            f"Auto-detected OME-Arrow column '{found[0]}'.",
            UserWarning,
            stacklevel=4,
        )
    return str(found[0])


def scan_path(path: Path, column_name: str | None, row_index: int) -> Any:
    """A lazy ome-arrow-core image of ``path`` (metadata only)."""
    if not path.exists():
        raise FileNotFoundError(f"No such file or directory: {str(path)!r}")
    kind = kind_of(path)
    if kind == "parquet":
        return CoreImage.scan(path, column=record_column(path, column_name), row=row_index)
    if kind in ("dataset", "vortex", ""):
        return CoreImage.scan(path)
    return CoreImage.scan(path, format=kind)
