"""The OME-Arrow struct-record format: one image as one Arrow struct (metadata and planes).

This module is the package's one door; the modules inside are its implementation:

- :mod:`.schema`: the struct type, finding an OME-Arrow column, metadata <-> struct fields;
- :mod:`.codec`: pixels <-> records (and record bounds, :mod:`.bounds`);
- :mod:`.checksums`: per-plane checksums kept in a file's key-value metadata;
- :mod:`.ome_xml_key` and :mod:`.memory_xml`: the stored OME-XML in a record file and in in-memory records;
- :mod:`.parquet`: records in Parquet files (``RecordSource``, ``write_record_file``);
- :mod:`.tables`: records in Arrow tables read whole from other containers (``TableRecordSource``, ``record_table``).

``checksums`` and ``parquet`` names load on first use, so importing the core loads no
``pyarrow.parquet``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .codec import as_struct_array, pixels_to_record, plane_list, record_to_pixels
from .memory_xml import (
    FIELD,
    attach_carried,
    carried_entry,
    carry,
    carrying_stored,
    checked_xml,
    entry_for,
    export_record,
    record_dict,
    without_carried,
)
from .ome_xml_key import ome_xml_metadata, stored_ome_xml
from .schema import (
    OME_ARROW_TYPE,
    OME_ARROW_VERSION,
    chunk_grid,
    find_ome_column,
    is_ome_arrow_type,
    ome_arrow_struct,
)
from .tables import TableRecordSource, ome_columns, record_table

if TYPE_CHECKING:
    from .checksums import stored_checksums, verify_record
    from .parquet import RecordSource, write_record_file

__all__ = [
    "as_struct_array",
    "pixels_to_record",
    "record_to_pixels",
    "plane_list",
    "chunk_grid",
    "find_ome_column",
    "is_ome_arrow_type",
    "ome_arrow_struct",
    "OME_ARROW_TYPE",
    "OME_ARROW_VERSION",
    "stored_checksums",
    "verify_record",
    "RecordSource",
    "write_record_file",
    "TableRecordSource",
    "ome_columns",
    "record_table",
    "FIELD",
    "attach_carried",
    "carried_entry",
    "carry",
    "carrying_stored",
    "checked_xml",
    "entry_for",
    "export_record",
    "record_dict",
    "without_carried",
    "ome_xml_metadata",
    "stored_ome_xml",
]


def __getattr__(name: str) -> Any:
    """The checksum and Parquet names load their modules on first use."""
    if name in ("stored_checksums", "verify_record"):
        from . import checksums

        return getattr(checksums, name)
    if name in ("RecordSource", "write_record_file"):
        from . import parquet

        return getattr(parquet, name)
    raise AttributeError(f"module 'ome_arrow_core.record' has no attribute {name!r}")
