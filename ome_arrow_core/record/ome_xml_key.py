"""The stored OME-XML of a record file's images, in the file's key-value metadata (one key, JSON).

The record struct stays the reference's (``ome-arrow`` 0.1.0 reads our files); the document of
each row of a column (see :mod:`ome_arrow_core.ome_xml`) goes beside it as
``{"column": name, "rows": [xml or null, ...]}`` under :data:`KEY`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from ..errors import SchemaError

__all__ = ["KEY", "ome_xml_metadata", "stored_ome_xml"]

KEY: Final[bytes] = b"ome_arrow_core.ome_xml"


def ome_xml_metadata(column: str, rows: Sequence[str | None]) -> dict[bytes, bytes]:
    """The key-value entry holding each row's OME-XML of ``column``; empty when no row has one."""
    if all(x is None for x in rows):
        return {}
    return {KEY: json.dumps({"column": column, "rows": list(rows)}).encode()}


def stored_ome_xml(metadata: Mapping[bytes, bytes] | None, column: str, row: int) -> str | None:
    """The OME-XML stored for ``row`` of ``column`` (None: none); SchemaError when the entry is damaged."""
    raw = (metadata or {}).get(KEY)
    if raw is None:
        return None
    try:
        doc: Any = json.loads(raw)
        rows = doc["rows"]
        if not isinstance(rows, list) or not isinstance(doc.get("column"), str):
            raise TypeError("expected a column name and a list of rows")
    except (ValueError, TypeError, KeyError) as exc:
        raise SchemaError(f"the {KEY.decode()} metadata is damaged ({exc})") from None
    if doc["column"] != column or row >= len(rows):
        return None
    xml = rows[row]
    if xml is not None and not isinstance(xml, str):
        raise SchemaError(f"the {KEY.decode()} metadata holds {type(xml).__name__} for row {row}; expected text")
    return xml
