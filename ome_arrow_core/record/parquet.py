"""Parquet files whose rows are OME-Arrow struct records (one image per row and column).

This covers the single-row files ``ome-arrow`` writes (list or typed-byte pixels) and
CytoDataFrame-style tables with several image columns. Only the row group holding the
requested row and only the image column are read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..boundary import blaming, reading, require_regular_file, writing
from ..checksums import verify_enabled
from ..errors import ArgumentError, DamagedFileError, SchemaError
from ..location import Location
from ..meta import ImageMeta
from ..ome_xml import attach_ome_xml
from ..parquet_files import PARQUET_CODECS, checked_footer, footer_rows
from ..safe_write import atomic_path
from ..selection import Selection
from .checksums import checksum_metadata, plane_checksums, stored_checksums, stored_dtype, verify_record
from .codec import pixels_to_record, record_meta, record_to_pixels
from .footer import remote_footer
from .ome_xml_key import ome_xml_metadata, stored_ome_xml
from .schema import find_ome_column

__all__ = ["RecordSource", "write_record_file", "has_ome_column"]


def has_ome_column(pf: pq.ParquetFile) -> bool:
    """True when the file's schema has at least one OME-Arrow struct column."""
    try:
        find_ome_column(pf.schema_arrow)
    except SchemaError as exc:
        return "several" in str(exc)
    return True


class RecordSource:
    """One record of a struct-column Parquet file; decoded once, on first read.

    The planes' checksums (written by :func:`write_record_file`) are checked before decoding
    unless ``verify=False`` (None: unless the environment sets ``OME_ARROW_CORE_VERIFY=0``).
    """

    def __init__(
        self, path: Path | Location, column: str | None = None, row: int = 0, *, verify: bool | None = None
    ) -> None:
        #: The remote location, or None for a local file (read through its path).
        self.location = path if isinstance(path, Location) and not path.local else None
        local = Path(path.path) if isinstance(path, Location) else Path(path)
        self.path: Path | str = self.location.uri if self.location else local
        self.verify = verify
        if self.location is None:
            footer_rows(local)  # a footer claiming more bytes than the file has is refused before any read
            require_regular_file(local)
            self._load(local, column, row)
            return
        remote = self.location
        with reading(remote.uri, None, "reading the Parquet footer"), _open(remote) as fh:
            self._size: int = fh.size()
            md = remote_footer(fh, self._size, remote.uri)
            checked_footer(md, self._size, remote.uri)
            self._load(fh, column, row, md)

    def _load(self, opened: Any, column: str | None, row: int, metadata: pq.FileMetaData | None = None) -> None:
        """Read the one row group holding ``row`` of ``column`` from ``opened`` (a path or an open file)."""
        path = self.path
        with reading(path, None, "reading the Parquet footer"):
            pf = pq.ParquetFile(opened, metadata=metadata)
            schema = pf.schema_arrow
            n = pf.metadata.num_rows
        self.column = find_ome_column(schema, column)
        if not 0 <= row < n:
            raise ArgumentError(f"row {row} is out of range; {path} has rows 0..{n - 1}")
        with reading(path, self.column, "reading the record"), blaming(path, self.column):
            group, at = 0, row
            while at >= pf.metadata.row_group(group).num_rows:
                at -= pf.metadata.row_group(group).num_rows
                group += 1
            table = pf.read_row_group(group, columns=[self.column])
            col = table.column(self.column).combine_chunks()
            self._records: pa.StructArray = col.slice(at, 1)
            self._kv = schema.metadata  # the plane checksums, parsed when a read checks them
            self._ome_xml = stored_ome_xml(self._kv, self.column, row)
            self.meta: ImageMeta = attach_ome_xml(record_meta(self._records, 0), self._ome_xml)
        self._pixels: np.ndarray | None = None
        self._rows = n
        self._row = row

    def read(self, sel: Selection) -> np.ndarray:
        """Decode the record (once) and take ``sel`` from it."""
        if self._pixels is None:
            with reading(self.path, self.column, "decoding the record"), blaming(self.path, self.column):
                if verify_enabled(self.verify):
                    stored = stored_checksums(self._kv, self.column, self._row, str(self.path))
                    if stored is not None:
                        verify_record(self._records, 0, stored, str(self.path), self._row)
                meta, self._pixels = record_to_pixels(
                    self._records, 0, where=f"{self.path} row {self._row} column {self.column!r}"
                )
                self.meta = attach_ome_xml(meta, self._ome_xml)
                written = stored_dtype(self._kv, self.column, self._row) if verify_enabled(self.verify) else None
                if written is not None and written != self.meta.dtype.name:
                    raise DamagedFileError(
                        f"{self.path} row {self._row} column {self.column!r}: the record says its pixels are "
                        f"{self.meta.dtype.name}, but they were written (and checksummed) as {written}; the file is "
                        "damaged or edited"
                    )
        return sel.apply(self._pixels)

    def _file_bytes(self) -> int:
        if self.location is not None:
            return self._size  # as opened: no further request
        return Path(self.path).stat().st_size

    def describe(self) -> dict[str, Any]:
        """Storage facts for ``info()``."""
        return {
            "storage": "parquet OME-Arrow struct column",
            "path": str(self.path),
            "file_bytes": self._file_bytes(),
            "column": self.column,
            "rows_in_file": self._rows,
        }


def write_record_file(
    meta: ImageMeta, pixels: np.ndarray, out: Path, *, column: str = "ome_arrow", compression: str = "zstd"
) -> Path:
    """Write a one-row Parquet file with an OME-Arrow struct column (planes), atomically.

    uint16 images get the public format's exact schema, so ``ome-arrow`` reads them. Each
    plane's checksum goes to the file's key-value metadata (see :mod:`.checksums`), and so does
    the image's stored OME-XML, when it has one (see :mod:`.ome_xml_key`).
    """
    if not isinstance(compression, str) or compression.lower() not in PARQUET_CODECS:
        raise ArgumentError(f"compression={compression!r} is not a Parquet codec; pass one of {sorted(PARQUET_CODECS)}")
    record = pixels_to_record(meta, pixels)
    table = pa.table({column: record}).replace_schema_metadata(
        {
            b"ome.arrow.type": b"ome.arrow",
            b"ome.arrow.version": b"0.1.0",
            **checksum_metadata(column, [plane_checksums(record, 0)], [meta.dtype.name]),
            **ome_xml_metadata(column, [meta.ome_xml]),
        }
    )
    with atomic_path(out) as tmp, writing(out):
        pq.write_table(table, tmp, compression=compression, write_page_checksum=True)
    return out


def _open(remote: Location) -> Any:
    """The remote file, opened without a second lookup when the one that found it gave its size."""
    from ..remote import open_known

    info = remote.info
    if info is not None and info.size is not None:
        return open_known(remote, int(info.size))
    return remote.fs.open_input_file(remote.path)
