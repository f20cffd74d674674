"""OME-Arrow struct records in Arrow tables from containers other than Parquet (Vortex files of ome-arrow 0.1.0).

A plugin reads such a file's table whole (the reference's record files hold one image a row) and hands it to
:class:`TableRecordSource`; :func:`record_table` makes the one-row table a plugin writes for the reference to read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..arguments import check_row
from ..boundary import blaming, reading
from ..errors import ArgumentError, SchemaError
from ..meta import ImageMeta
from ..selection import Selection
from .codec import pixels_to_record, record_meta, record_to_pixels
from .schema import find_ome_column, is_ome_arrow_type

__all__ = ["TableRecordSource", "record_table", "ome_columns"]


def ome_columns(schema: pa.Schema) -> list[str]:
    """The names of ``schema``'s OME-Arrow struct columns (records), in order."""
    return [str(f.name) for f in schema if is_ome_arrow_type(f.type)]


def record_table(image: Any, column: str = "ome_arrow") -> pa.Table:
    """A one-row table whose column ``column`` is ``image`` (an ``OMEArrow``) as an OME-Arrow record (planes), as
    ome-arrow 0.1.0 reads it: its pixels as they are (float and int8 kept, never cast). Reads the image whole."""
    meta: ImageMeta = image.meta
    return pa.table({column: pixels_to_record(meta, image.to_numpy(layout="TZCYX"))})


class TableRecordSource:
    """Record ``row`` of column ``column`` (None: the only OME-Arrow column) of ``table``, read from ``path``;
    decoded once, on first read. ``storage`` and ``facts`` describe the file for ``info()``."""

    def __init__(
        self,
        table: pa.Table,
        path: str | Path,
        *,
        column: str | None = None,
        row: int = 0,
        storage: str = "OME-Arrow struct column",
        facts: dict[str, Any] | None = None,
    ) -> None:
        self.path = path
        try:
            self.column = find_ome_column(table.schema, column)
        except SchemaError as exc:  # a column=... that is not there (the user's): said with the file, not damage
            raise SchemaError(f"{path}: {exc}") from exc
        n = table.num_rows
        self._row = check_row(row)
        if self._row >= n:
            raise ArgumentError(f"row {row!r} is out of range; {path} has rows 0..{n - 1} (pass row=0..{n - 1})")
        with reading(path, self.column, "reading the record"), blaming(path, self.column):
            self._records: pa.StructArray = table.column(self.column).combine_chunks().slice(self._row, 1)
            self.meta: ImageMeta = record_meta(self._records, 0)
        self._pixels: np.ndarray | None = None
        self._facts = {"storage": storage, "path": str(path), "column": self.column, "rows_in_file": n, **(facts or {})}

    def read(self, sel: Selection) -> np.ndarray:
        """Decode the record (once) and take ``sel`` from it."""
        if self._pixels is None:
            with reading(self.path, self.column, "decoding the record"), blaming(self.path, self.column):
                self.meta, self._pixels = record_to_pixels(
                    self._records, 0, where=f"{self.path} row {self._row} column {self.column!r}"
                )
        return sel.apply(self._pixels)

    def describe(self) -> dict[str, Any]:
        """Storage facts for ``info()``."""
        return dict(self._facts)
