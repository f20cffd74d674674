"""The public OME-Arrow record schema and conversion of its metadata to :class:`ImageMeta`.

Field names and types follow the OME-Arrow format (``type="ome.arrow"``) so that files
interoperate with the ``ome-arrow`` package. Older records (CytoDataFrame tables) are read
by field name, so field order and int64/double widths do not matter.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from typing import Any, Final

import pyarrow as pa

from ..dtypes import from_ome_type, to_ome_type
from ..errors import SchemaError
from ..meta import ImageMeta, channel_from_dict, channel_to_dict, physical_size_value

__all__ = [
    "OME_ARROW_TYPE",
    "OME_ARROW_VERSION",
    "REQUIRED_FIELDS",
    "CHANNEL_TYPE",
    "PIXELS_META_TYPE",
    "CHUNK_GRID_TYPE",
    "ome_arrow_struct",
    "is_ome_arrow_type",
    "find_ome_column",
    "meta_from_record",
    "record_header",
    "chunk_grid",
]

#: Value of the ``type`` field.
OME_ARROW_TYPE: Final[str] = "ome.arrow"
#: Value of the ``version`` field we write (the public format's version).
OME_ARROW_VERSION: Final[str] = "0.1.0"
#: Fields whose presence marks a struct as an OME-Arrow record.
REQUIRED_FIELDS: Final[frozenset[str]] = frozenset({"type", "pixels_meta"})

CHANNEL_TYPE: Final = pa.struct(
    [
        ("id", pa.string()),
        ("name", pa.string()),
        ("emission_um", pa.float32()),
        ("excitation_um", pa.float32()),
        ("illumination", pa.string()),
        ("color_rgba", pa.uint32()),
    ]
)
PIXELS_META_TYPE: Final = pa.struct(
    [
        ("dimension_order", pa.string()),
        ("type", pa.string()),
        ("size_x", pa.int32()),
        ("size_y", pa.int32()),
        ("size_z", pa.int32()),
        ("size_c", pa.int16()),
        ("size_t", pa.int32()),
        ("physical_size_x", pa.float32()),
        ("physical_size_y", pa.float32()),
        ("physical_size_z", pa.float32()),
        ("physical_size_x_unit", pa.string()),
        ("physical_size_y_unit", pa.string()),
        ("physical_size_z_unit", pa.string()),
        ("channels", pa.list_(CHANNEL_TYPE)),
    ]
)
CHUNK_GRID_TYPE: Final = pa.struct(
    [
        ("order", pa.string()),
        ("chunk_t", pa.int32()),
        ("chunk_c", pa.int16()),
        ("chunk_z", pa.int32()),
        ("chunk_y", pa.int32()),
        ("chunk_x", pa.int32()),
        ("chunk_order", pa.string()),
    ]
)


def ome_arrow_struct(pixel_type: pa.DataType | None = None) -> pa.StructType:
    """The OME-Arrow record type with ``pixel_type`` pixel lists (default uint16, as the public format)."""
    pixels = pa.list_(pixel_type or pa.uint16())
    chunk = pa.struct(
        [
            ("t", pa.int32()),
            ("c", pa.int16()),
            ("z", pa.int32()),
            ("y", pa.int32()),
            ("x", pa.int32()),
            ("shape_z", pa.int32()),
            ("shape_y", pa.int32()),
            ("shape_x", pa.int32()),
            ("pixels", pixels),
        ]
    )
    plane = pa.struct([("z", pa.int32()), ("t", pa.int32()), ("c", pa.int16()), ("pixels", pixels)])
    return pa.struct(
        [
            ("type", pa.string()),
            ("version", pa.string()),
            ("id", pa.string()),
            ("name", pa.string()),
            ("image_type", pa.string()),
            ("acquisition_datetime", pa.timestamp("us")),
            ("pixels_meta", PIXELS_META_TYPE),
            ("chunk_grid", CHUNK_GRID_TYPE),
            ("chunks", pa.list_(chunk)),
            ("planes", pa.list_(plane)),
            ("masks", pa.null()),
        ]
    )


def is_ome_arrow_type(t: pa.DataType) -> bool:
    """True for a struct type carrying the OME-Arrow marker fields (any field order)."""
    if not pa.types.is_struct(t):
        return False
    names = {t.field(i).name for i in range(t.num_fields)}
    return REQUIRED_FIELDS <= names and bool({"planes", "chunks"} & names)


def find_ome_column(schema: pa.Schema, column: str | None = None) -> str:
    """Name of the OME-Arrow column of ``schema``: ``column`` if given, else the only one.

    Raises SchemaError naming what is missing, or listing the candidates when several
    columns are OME-Arrow records and ``column`` was not given.
    """
    candidates: list[str] = [str(f.name) for f in schema if is_ome_arrow_type(f.type)]
    if column is not None:
        if column not in schema.names:
            raise SchemaError(f"column {column!r} not found; OME-Arrow columns here: {candidates or 'none'}")
        if not is_ome_arrow_type(schema.field(column).type):
            raise SchemaError(
                f"column {column!r} is not an OME-Arrow record: expected a struct with fields "
                f"{sorted(REQUIRED_FIELDS)} and planes or chunks, got {schema.field(column).type}"
            )
        return str(column)
    if not candidates:
        raise SchemaError(
            "no OME-Arrow column found: expected a struct column with fields "
            f"{sorted(REQUIRED_FIELDS | {'planes'})}; columns here are {schema.names}"
        )
    if len(candidates) > 1:
        raise SchemaError(f"several OME-Arrow columns {candidates}; pick one with column=...")
    return candidates[0]


def meta_from_record(rec: Mapping[str, Any]) -> ImageMeta:
    """ImageMeta from an OME-Arrow record (a dict, as ``StructScalar.as_py()`` without pixels)."""
    pm = rec.get("pixels_meta")
    if not isinstance(pm, Mapping):
        raise SchemaError("OME-Arrow record has no pixels_meta struct; cannot know sizes or dtype")
    missing = [k for k in ("size_x", "size_y", "type") if pm.get(k) is None]
    if missing:
        raise SchemaError(f"pixels_meta lacks required fields {missing}")
    sizes = {ax: int(pm.get(f"size_{ax.lower()}") or 1) for ax in "TZCYX"}
    chans = tuple(channel_from_dict(ch, i, "pixels_meta.channels") for i, ch in enumerate(pm.get("channels") or ()))
    if len(chans) != sizes["C"]:
        chans = ()
    grid = rec.get("chunk_grid") or {}
    chunk = None
    if grid and grid.get("chunk_y") and grid.get("chunk_x"):
        chunk = (int(grid.get("chunk_z") or 1), int(grid["chunk_y"]), int(grid["chunk_x"]))
    acq = rec.get("acquisition_datetime")
    return ImageMeta(
        sizes=sizes,
        dtype=from_ome_type(str(pm["type"])),
        id=str(rec.get("id") or "img-0"),
        name=str(rec.get("name") or "image"),
        image_type=str(rec.get("image_type") or "image"),
        acquisition_datetime=acq.isoformat() if isinstance(acq, _dt.datetime) else acq,
        physical_size={
            ax: physical_size_value(pm.get(f"physical_size_{ax.lower()}"), f"pixels_meta.physical_size_{ax.lower()}")
            for ax in "XYZ"
        },
        physical_unit={ax: str(pm.get(f"physical_size_{ax.lower()}_unit") or "µm") for ax in "XYZ"},
        channels=chans,
        chunk_shape=chunk,
    )


def record_header(meta: ImageMeta, *, dimension_order: str = "XYCZT") -> dict[str, Any]:
    """The non-pixel fields of an OME-Arrow record for ``meta``."""
    acq = meta.acquisition_datetime
    chunk = meta.chunk_shape or (1, meta.sizes["Y"], meta.sizes["X"])
    return {
        "type": OME_ARROW_TYPE,
        "version": OME_ARROW_VERSION,
        "id": meta.id,
        "name": meta.name,
        "image_type": meta.image_type,
        "acquisition_datetime": _dt.datetime.fromisoformat(acq) if isinstance(acq, str) else acq,
        "pixels_meta": {
            "dimension_order": dimension_order,
            "type": to_ome_type(meta.dtype),
            **{f"size_{ax.lower()}": meta.sizes[ax] for ax in "XYZCT"},
            **{f"physical_size_{ax.lower()}": meta.physical_size.get(ax) for ax in "XYZ"},
            **{f"physical_size_{ax.lower()}_unit": meta.physical_unit.get(ax, "µm") for ax in "XYZ"},
            "channels": [channel_to_dict(c) for c in meta.channels],
        },
        "chunk_grid": chunk_grid(chunk),
    }


def chunk_grid(chunk: Sequence[int]) -> dict[str, Any]:
    """The ``chunk_grid`` field of a record chunked in ``chunk`` = (z, y, x) blocks, one T and one C each."""
    return {
        "order": "TCZYX",
        "chunk_t": 1,
        "chunk_c": 1,
        "chunk_z": chunk[0],
        "chunk_y": chunk[1],
        "chunk_x": chunk[2],
        "chunk_order": "ZYX",
    }
