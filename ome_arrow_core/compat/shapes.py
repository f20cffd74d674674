"""Object tables beside the images (the reference's ``ome_arrow.shapes``): one row per object
(cell, nucleus...) with one GeoArrow-style geometry column, and parent/child relationship tables.

The format is the reference's: the JSON under schema metadata key ``ome.arrow.shapes`` names
the geometry column, its encoding, the axes, their units and the coordinate space; files are
ordinary Parquet, so projections and filters are pushed down. Coordinates are checked with
Arrow kernels (list lengths), not Python loops.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import ArgumentError, SchemaError
from ..plugin_api import atomic_path, reading
from .meta import OME_ARROW_TAG_VERSION
from .relationships import (
    OME_ARROW_RELATIONSHIPS_METADATA_KEY,
    RELATIONSHIP_TYPES,
    make_relationship_table,
    relationship_metadata,
    relationship_schema,
    validate_relationship_table,
)
from .schema_json import json_meta, with_json

__all__ = [
    "OME_ARROW_RELATIONSHIPS_METADATA_KEY",
    "OME_ARROW_SHAPES_METADATA_KEY",
    "RELATIONSHIP_TYPES",
    "SUPPORTED_GEOMETRY_ENCODINGS",
    "OMEArrowShapes",
    "geometry_storage_type",
    "make_relationship_table",
    "make_shape_table",
    "read_shape_parquet",
    "relationship_metadata",
    "relationship_schema",
    "shape_metadata",
    "shape_schema",
    "validate_relationship_table",
    "validate_shape_table",
    "write_shape_parquet",
]

OME_ARROW_SHAPES_METADATA_KEY: Final[bytes] = b"ome.arrow.shapes"
#: Geometry encodings and how many list levels wrap one coordinate vector in each.
_DEPTH: Final[dict[str, int]] = {
    "geoarrow.point": 0,
    "geoarrow.linestring": 1,
    "ome.pointcloud": 1,
    "geoarrow.polygon": 2,
    "geoarrow.multipolygon": 3,
    "ome.boundingbox": -1,
    "ome.labelmask": -1,
    "ome.mesh3d": -1,
}
SUPPORTED_GEOMETRY_ENCODINGS: Final[frozenset[str]] = frozenset(_DEPTH)
_STANDARD: Final[tuple[str, ...]] = (
    "object_id",
    "image_id",
    "label_image_id",
    "label_value",
    "geometry",
    "centroid",
    "bbox",
    "class",
    "confidence",
)
_COORD: Final = pa.list_(pa.float64())
_BOX: Final = pa.struct([pa.field("min", _COORD, nullable=False), pa.field("max", _COORD, nullable=False)])


def _check_encoding(encoding: str) -> str:
    if encoding not in SUPPORTED_GEOMETRY_ENCODINGS:
        raise ArgumentError(
            f"Unsupported geometry_encoding: {encoding!r}; expected one of {sorted(SUPPORTED_GEOMETRY_ENCODINGS)}"
        )
    return encoding


def geometry_storage_type(geometry_encoding: str, *, dimensions: int = 2) -> pa.DataType:
    """The Arrow type of a geometry column of ``geometry_encoding`` (coordinates are float64 lists)."""
    if dimensions < 1:
        raise ArgumentError("geometry dimensions must be at least 1")
    depth = _DEPTH[_check_encoding(geometry_encoding)]
    if depth >= 0:
        out: pa.DataType = _COORD
        for _ in range(depth):
            out = pa.list_(out)
        return out
    if geometry_encoding == "ome.boundingbox":
        return _BOX
    if geometry_encoding == "ome.labelmask":
        return pa.struct(
            [
                pa.field("label_image_id", pa.string(), nullable=False),
                pa.field("label_value", pa.int64(), nullable=False),
            ]
        )
    return pa.struct(
        [
            pa.field("vertices", pa.list_(_COORD), nullable=False),
            pa.field("faces", pa.list_(pa.list_(pa.int32())), nullable=False),
        ]
    )


def shape_metadata(
    *,
    geometry_encoding: str,
    axes: Sequence[str] = ("y", "x"),
    units: Sequence[str] | None = None,
    coordinate_space: str = "pixel",
    geometry_column: str = "geometry",
) -> dict[str, Any]:
    """The JSON stored under ``ome.arrow.shapes`` (units default to "pixel" per axis)."""
    _check_encoding(geometry_encoding)
    if not axes:
        raise ArgumentError("axes must name at least one axis")
    units = list(units) if units is not None else ["pixel"] * len(axes)
    if len(units) != len(axes):
        raise ArgumentError(f"units {units} must have one entry per axis {list(axes)}")
    return {
        "type": "ome.arrow.shapes",
        "version": OME_ARROW_TAG_VERSION,
        "geometry_column": geometry_column,
        "geometry_encoding": geometry_encoding,
        "axes": list(axes),
        "units": units,
        "coordinate_space": coordinate_space,
    }


def shape_schema(
    geometry_encoding: str,
    *,
    axes: Sequence[str] = ("y", "x"),
    units: Sequence[str] | None = None,
    coordinate_space: str = "pixel",
    geometry_column: str = "geometry",
    measurement_fields: Iterable[pa.Field] | None = None,
) -> pa.Schema:
    """The schema of a shape table: the standard columns, then ``measurement_fields``."""
    meta = shape_metadata(
        geometry_encoding=geometry_encoding,
        axes=axes,
        units=units,
        coordinate_space=coordinate_space,
        geometry_column=geometry_column,
    )
    fields = [
        pa.field("object_id", pa.string(), nullable=False),
        pa.field("image_id", pa.string()),
        pa.field("label_image_id", pa.string()),
        pa.field("label_value", pa.int64()),
        pa.field(geometry_column, geometry_storage_type(geometry_encoding, dimensions=len(axes))),
        pa.field("centroid", _COORD),
        pa.field("bbox", _BOX),
        pa.field("class", pa.string()),
        pa.field("confidence", pa.float32()),
        *(measurement_fields or ()),
    ]
    return with_json(pa.schema(fields), OME_ARROW_SHAPES_METADATA_KEY, meta)


def make_shape_table(
    rows: Sequence[Mapping[str, Any]],
    *,
    geometry_encoding: str,
    axes: Sequence[str] = ("y", "x"),
    units: Sequence[str] | None = None,
    coordinate_space: str = "pixel",
    geometry_column: str = "geometry",
    validate: bool = True,
) -> pa.Table:
    """A shape table from row dicts; keys beyond the standard columns become measurement columns (sorted)."""
    rows = list(rows)
    reserved = {*_STANDARD, geometry_column}
    extra = sorted({k for row in rows for k in row} - reserved)
    measures = [pa.field(name, pa.array([row.get(name) for row in rows]).type) for name in extra]
    schema = shape_schema(
        geometry_encoding,
        axes=axes,
        units=units,
        coordinate_space=coordinate_space,
        geometry_column=geometry_column,
        measurement_fields=measures,
    )
    table = pa.Table.from_pylist(rows, schema=schema)
    if validate:
        validate_shape_table(table)
    return table


def _first_bad(values: pa.Array, depth: int, dims: int) -> tuple[int, int] | None:
    """(row, coordinate number within the row) of the first coordinate not of length ``dims``; None if all are."""
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    owner = np.arange(len(values))
    for _ in range(depth):
        owner = owner[np.asarray(pc.list_parent_indices(values))] if len(values) else owner[:0]
        values = pc.list_flatten(values)
    lengths = np.asarray(pc.list_value_length(values).fill_null(dims))
    bad = np.nonzero(lengths != dims)[0]
    if not len(bad):
        return None
    first = int(bad[0])
    row = int(owner[first])
    return row, int(first - np.searchsorted(owner, row))


def _check_coords(values: pa.Array, depth: int, dims: int, label: str, part: str = "") -> None:
    found = _first_bad(values, depth, dims)
    if found is not None:
        row, k = found
        where = f"{label} row {row}{part}" + (f" coordinate {k}" if depth else "")
        raise SchemaError(f"{where} must contain {dims} coordinates")


def validate_shape_table(table: pa.Table) -> None:
    """Check metadata, columns, geometry type and coordinate arity; SchemaError (a ValueError) names the row."""
    meta = json_meta(table.schema, OME_ARROW_SHAPES_METADATA_KEY, "ome.arrow.shapes", "Shape table")
    encoding, column = meta.get("geometry_encoding"), meta.get("geometry_column", "geometry")
    dims = len(meta.get("axes") or [])
    if encoding not in SUPPORTED_GEOMETRY_ENCODINGS:
        raise SchemaError(f"Unsupported geometry_encoding: {encoding!r}")
    if dims < 1:
        raise SchemaError("Shape table axes metadata must name at least one axis")
    for name in ("object_id", column):
        if name not in table.column_names:
            raise SchemaError(f"Shape table must contain a {name!r} column (object_id, and the geometry column)")
    if table.schema.field(column).type != geometry_storage_type(encoding, dimensions=dims):
        raise SchemaError(
            f"Shape table column {column!r} has type {table.schema.field(column).type}; "
            f"{encoding} needs {geometry_storage_type(encoding, dimensions=dims)}"
        )
    geometry = table[column].combine_chunks()
    if _DEPTH[encoding] >= 0:
        _check_coords(geometry, _DEPTH[encoding], dims, "geometry")
    elif encoding == "ome.boundingbox":
        for end in ("min", "max"):
            _check_coords(pc.struct_field(geometry, end), 0, dims, "bbox", f" {end}")
    elif encoding == "ome.mesh3d":
        _check_coords(pc.struct_field(geometry, "vertices"), 1, 3, "mesh", " vertices")
    if "centroid" in table.column_names:
        _check_coords(table["centroid"].combine_chunks(), 0, dims, "centroid")
    if "bbox" in table.column_names:
        boxes = table["bbox"].combine_chunks()
        for end in ("min", "max"):
            _check_coords(pc.struct_field(boxes, end), 0, dims, "bbox", f" {end}")
    if table["object_id"].null_count:
        raise SchemaError("Shape table object_id values must not be null")


def write_shape_parquet(
    table: pa.Table,
    path: str | os.PathLike[str],
    *,
    compression: str | None = "zstd",
    row_group_size: int | None = 65_536,
    use_dictionary: bool | list[str] = True,
    validate: bool = True,
) -> None:
    """Write a shape table as Parquet (atomically), its metadata kept in the schema."""
    if validate:
        validate_shape_table(table)
    with atomic_path(path) as tmp:
        pq.write_table(
            table, tmp, compression=compression, row_group_size=row_group_size, use_dictionary=use_dictionary
        )


def read_shape_parquet(
    path: str | os.PathLike[str],
    *,
    columns: Sequence[str] | None = None,
    filters: Any = None,
    memory_map: bool = True,
    validate: bool = True,
) -> pa.Table:
    """Read a shape table; ``columns`` and ``filters`` are pushed into Parquet. A read holding object_id
    and the geometry column is validated in full."""
    with reading(path, None, "reading the shape table"):
        schema = pq.read_schema(path, memory_map=memory_map)
        meta = json_meta(schema, OME_ARROW_SHAPES_METADATA_KEY, "ome.arrow.shapes", "Shape table")
        table = pq.read_table(
            path, columns=list(columns) if columns is not None else None, filters=filters, memory_map=memory_map
        )
    if validate and {"object_id", meta.get("geometry_column", "geometry")} <= set(table.column_names):
        validate_shape_table(table)
    return table


@dataclass(frozen=True)
class OMEArrowShapes:
    """A validated shape table with its metadata at hand."""

    table: pa.Table

    def __post_init__(self) -> None:
        validate_shape_table(self.table)

    @classmethod
    def from_rows(
        cls,
        rows: Sequence[Mapping[str, Any]],
        *,
        geometry_encoding: str,
        axes: Sequence[str] = ("y", "x"),
        units: Sequence[str] | None = None,
        coordinate_space: str = "pixel",
        geometry_column: str = "geometry",
    ) -> OMEArrowShapes:
        """Build and validate a shape table from row dicts."""
        return cls(
            make_shape_table(
                rows,
                geometry_encoding=geometry_encoding,
                axes=axes,
                units=units,
                coordinate_space=coordinate_space,
                geometry_column=geometry_column,
            )
        )

    @property
    def metadata(self) -> dict[str, Any]:
        """The ``ome.arrow.shapes`` JSON."""
        return json_meta(self.table.schema, OME_ARROW_SHAPES_METADATA_KEY, "ome.arrow.shapes", "Shape table")

    @property
    def geometry_encoding(self) -> str:
        """The geometry column's encoding."""
        return str(self.metadata["geometry_encoding"])

    @property
    def axes(self) -> tuple[str, ...]:
        """Coordinate axis names."""
        return tuple(self.metadata["axes"])

    def for_image(self, image_id: str) -> OMEArrowShapes:
        """The objects of one image (an Arrow filter)."""
        return OMEArrowShapes(self.table.filter(pc.equal(self.table["image_id"], image_id)))
