"""The stored OME-XML an in-memory record carries (``export("dict"/"scalar"/"arrow")``, compat records).

The record struct stays the reference's: ``ome-arrow`` 0.1.0 takes records by field name, and its
``strict_schema`` check compares struct types, so a new struct field would break it. The document
travels instead

- in a dict record under the key :data:`FIELD` (the reference picks its own keys and ignores it);
- in an Arrow record (StructScalar, StructArray, a table's column) as metadata of the struct type's
  ``pixels_meta`` field, key :data:`METADATA_KEY` (Arrow type equality ignores field metadata, so
  the type still equals ``OME_ARROW_STRUCT``; slicing, ``pa.table``, Parquet's stored Arrow schema keep it).

Either holds one entry: the document, the record's ``id`` and ``name`` and the XXH3-64 of its pixels
(TZCYX, C order) when it was made. A record whose id, name or pixels differ (another row of a
concatenated array, pixels changed since) does not get it: the entry describes another image. A
matching entry's document is checked against the image as every stored one is (:mod:`..ome_xml`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import pyarrow as pa

from ..checksums import hex_digest
from ..errors import SchemaError
from ..meta import ImageMeta
from ..ome_xml import attach_ome_xml

__all__ = [
    "FIELD",
    "METADATA_KEY",
    "attach_carried",
    "carried_entry",
    "carry",
    "carrying_stored",
    "checked_xml",
    "entry_for",
    "export_record",
    "matching_xml",
    "pixels_digest",
    "record_dict",
    "without_carried",
]

#: The dict key of the entry.
FIELD: Final[str] = "ome_xml"
#: The metadata key of the entry on the struct type's ``pixels_meta`` field.
METADATA_KEY: Final[bytes] = b"ome_arrow_core.ome_xml"
_HOLDER: Final[str] = "pixels_meta"


def pixels_digest(pixels: np.ndarray) -> str:
    """The XXH3-64 (hex) of ``pixels``' bytes in C order."""
    data = np.ascontiguousarray(pixels)
    return hex_digest(data.reshape(-1).view(np.uint8))


def _header(records: pa.StructArray, row: int, name: str) -> Any:
    if records.type.get_field_index(name) < 0:
        return None
    return records.field(name)[row].as_py()


def entry_for(records: pa.StructArray, row: int, xml: str, pixels: np.ndarray) -> dict[str, Any]:
    """The entry of document ``xml`` for record ``row`` of ``records`` holding ``pixels`` (TZCYX)."""
    return {
        "xml": xml,
        "id": _header(records, row, "id"),
        "name": _header(records, row, "name"),
        "pixels_xxh3": pixels_digest(pixels),
    }


def carry(records: pa.StructArray, entry: Any) -> pa.StructArray:
    """``records`` (the same buffers) with ``entry`` in its type's ``pixels_meta`` field metadata (None: as is)."""
    if entry is None or records.type.get_field_index(_HOLDER) < 0:
        return records
    value = json.dumps(entry).encode("utf-8")
    fields = [
        f.with_metadata({**(f.metadata or {}), METADATA_KEY: value}) if f.name == _HOLDER else f for f in records.type
    ]
    return _retyped(records, fields)


def without_carried(records: pa.StructArray) -> pa.StructArray:
    """``records`` with no entry in its type (what a file stores in its own place instead)."""
    at = records.type.get_field_index(_HOLDER)
    if at < 0 or METADATA_KEY not in (records.type.field(at).metadata or {}):
        return records
    fields = []
    for f in records.type:
        rest = {k: v for k, v in (f.metadata or {}).items() if k != METADATA_KEY}
        fields.append(f.with_metadata(rest) if f.name == _HOLDER else f)
    return _retyped(records, fields)


def _retyped(records: pa.StructArray, fields: list[pa.Field]) -> pa.StructArray:
    children = [records.field(i) for i in range(records.type.num_fields)]
    mask = records.is_null() if records.null_count else None
    return pa.StructArray.from_arrays(children, fields=fields, mask=mask)


def carried_entry(source: Any, records: pa.StructArray, row: int) -> Any:
    """The entry ``source`` carries for record ``row`` (None: none): a dict's key, a struct field of that
    name, or the struct type's metadata."""
    if isinstance(source, pa.StructScalar):  # (a Mapping too, of its fields)
        return _type_entry(source.type)
    if isinstance(source, Mapping):
        return source.get(FIELD)
    if records.type.get_field_index(FIELD) >= 0:
        return records.field(FIELD)[row].as_py()
    return _type_entry(records.type)


def _type_entry(struct: pa.StructType) -> Any:
    """The entry in the metadata of ``struct``'s ``pixels_meta`` field (None: none)."""
    at = struct.get_field_index(_HOLDER)
    raw = (struct.field(at).metadata or {}).get(METADATA_KEY) if at >= 0 else None
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise SchemaError(f"the record's {METADATA_KEY.decode()} metadata is not JSON ({exc})") from None


def matching_xml(entry: Any, records: pa.StructArray, row: int, pixels: np.ndarray) -> str | None:
    """The document of ``entry`` when it was made for record ``row`` of ``records`` and its ``pixels``;
    None otherwise; SchemaError when the entry is not one."""
    if entry is None:
        return None
    if not isinstance(entry, Mapping) or not isinstance(entry.get("xml"), str):
        raise SchemaError(
            f"the record's {FIELD} entry is {type(entry).__name__} without an 'xml' text; expected the entry "
            "ome-arrow-core exported (xml, id, name, pixels_xxh3)"
        )
    same = entry.get("id") == _header(records, row, "id") and entry.get("name") == _header(records, row, "name")
    if not same or entry.get("pixels_xxh3") != pixels_digest(pixels):
        return None
    return str(entry["xml"])


def attach_carried(meta: ImageMeta, entry: Any, records: pa.StructArray, row: int, pixels: np.ndarray) -> ImageMeta:
    """``meta`` (record ``row`` of ``records``, decoded to ``pixels``) with the document ``entry`` carries for
    it, checked against the image (SchemaError when it lies)."""
    return attach_ome_xml(meta, matching_xml(entry, records, row, pixels))


def export_record(meta: ImageMeta, pixels: np.ndarray, how: str, **options: Any) -> Any:
    """The one-row record of ``pixels`` (TZCYX) as ``how`` ("arrow": StructArray, "scalar", "dict"), carrying
    ``meta``'s stored OME-XML when it has one (``options`` go to :func:`~.codec.pixels_to_record`)."""
    from .codec import pixels_to_record

    arr = pixels_to_record(meta, pixels, **options)
    entry = entry_for(arr, 0, meta.ome_xml, pixels) if meta.ome_xml is not None else None
    arr = carry(arr, entry)
    if how == "arrow":
        return arr
    if how == "scalar":
        return arr[0]
    record: dict[str, Any] = arr[0].as_py()
    if entry is not None:
        record[FIELD] = entry
    return record


def record_dict(record: pa.StructScalar) -> dict[str, Any]:
    """``record.as_py()``, with the entry its type carries under :data:`FIELD`."""
    out: dict[str, Any] = record.as_py()
    entry = _type_entry(record.type)
    if entry is not None:
        out[FIELD] = entry
    return out


def checked_xml(records: pa.StructArray) -> str | None:
    """The document the one-row ``records`` carries for its own pixels (decoded to check), None when it carries
    none or one made for other pixels; SchemaError when it lies about the image."""
    from .codec import record_to_pixels

    entry = carried_entry(None, records, 0)
    if entry is None:
        return None
    meta, pixels = record_to_pixels(records, 0)
    return attach_carried(meta, entry, records, 0, pixels).ome_xml


def carrying_stored(records: pa.StructArray, xml: str | None) -> pa.StructArray:
    """The one-row ``records`` read from a file that stored document ``xml`` for it (None: none), carrying it
    once it is checked against the decoded pixels (SchemaError when it lies)."""
    if xml is None:
        return records
    from .codec import record_to_pixels

    meta, pixels = record_to_pixels(records, 0)
    attach_ome_xml(meta, xml)
    return carry(records, entry_for(records, 0, xml, pixels))
