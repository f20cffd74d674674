"""Relationship tables of the ome-arrow shapes API: one edge (parent, child, type) per row."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import SchemaError
from .meta import OME_ARROW_TAG_VERSION
from .schema_json import json_meta, with_json

__all__ = [
    "OME_ARROW_RELATIONSHIPS_METADATA_KEY",
    "RELATIONSHIP_TYPES",
    "make_relationship_table",
    "relationship_metadata",
    "relationship_schema",
    "validate_relationship_table",
]

OME_ARROW_RELATIONSHIPS_METADATA_KEY: Final[bytes] = b"ome.arrow.relationships"
RELATIONSHIP_TYPES: Final[frozenset[str]] = frozenset(
    {"contains", "adjacent", "touches", "parent", "track", "derived_from"}
)


def relationship_metadata() -> dict[str, Any]:
    """The JSON payload a relationship table's schema metadata holds (type, version, allowed types)."""
    return {
        "type": "ome.arrow.relationships",
        "version": OME_ARROW_TAG_VERSION,
        "relationship_types": sorted(RELATIONSHIP_TYPES),
    }


def relationship_schema() -> pa.Schema:
    """parent_id, child_id, relationship_type (required) and confidence, with their metadata."""
    fields = [
        pa.field("parent_id", pa.string(), nullable=False),
        pa.field("child_id", pa.string(), nullable=False),
        pa.field("relationship_type", pa.string(), nullable=False),
        pa.field("confidence", pa.float32()),
    ]
    return with_json(pa.schema(fields), OME_ARROW_RELATIONSHIPS_METADATA_KEY, relationship_metadata())


def make_relationship_table(rows: Sequence[Mapping[str, Any]], *, validate: bool = True) -> pa.Table:
    """A relationship table (one edge per row) from row dicts."""
    table = pa.Table.from_pylist(list(rows), schema=relationship_schema())
    if validate:
        validate_relationship_table(table)
    return table


def validate_relationship_table(table: pa.Table) -> None:
    """Check metadata, the three id columns (present, no nulls) and the relationship types."""
    json_meta(table.schema, OME_ARROW_RELATIONSHIPS_METADATA_KEY, "ome.arrow.relationships", "Relationship table")
    for name in ("parent_id", "child_id", "relationship_type"):
        if name not in table.column_names:
            raise SchemaError(f"Relationship table must contain a {name} column")
        if table[name].null_count:
            raise SchemaError(f"Relationship table {name} values must not be null")
    unknown = set(pc.unique(table["relationship_type"]).to_pylist()) - RELATIONSHIP_TYPES
    if unknown:
        raise SchemaError(
            f"Unsupported relationship_type values: {sorted(unknown)}; expected {sorted(RELATIONSHIP_TYPES)}"
        )
