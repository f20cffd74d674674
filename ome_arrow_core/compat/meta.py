"""The record types and tags of the ``ome-arrow`` 0.1.0 format, under the reference's names."""

from __future__ import annotations

from typing import Final

import pyarrow as pa

from ..record import OME_ARROW_TYPE, OME_ARROW_VERSION, ome_arrow_struct

__all__ = [
    "OME_ARROW_BYTE_STRUCT",
    "OME_ARROW_KNOWN_STRUCTS",
    "OME_ARROW_STRUCT",
    "OME_ARROW_TAG_TYPE",
    "OME_ARROW_TAG_VERSION",
    "byte_chunk_type",
]

#: ``type`` field of every record.
OME_ARROW_TAG_TYPE: Final[str] = OME_ARROW_TYPE
#: ``version`` field of the records we write.
OME_ARROW_TAG_VERSION: Final[str] = OME_ARROW_VERSION


def byte_chunk_type() -> pa.StructType:
    """One chunk of typed pixel bytes: origin, shape, dtype name, codec (or null) and the bytes."""
    i32 = pa.int32()
    return pa.struct(
        [
            ("t", i32),
            ("c", pa.int16()),
            ("z", i32),
            ("y", i32),
            ("x", i32),
            ("shape_z", i32),
            ("shape_y", i32),
            ("shape_x", i32),
            ("dtype", pa.string()),
            ("compression", pa.string()),
            ("pixel_bytes", pa.large_binary()),
        ]
    )


def _byte_struct() -> pa.StructType:
    base = ome_arrow_struct()
    fields = [pa.field("chunks", pa.list_(byte_chunk_type())) if f.name == "chunks" else f for f in base]
    return pa.struct(fields)


#: The record type with uint16 pixel lists (the public format's exact schema). Records of
#: other dtypes have pixel lists of their own type: ome-arrow-core never casts pixels.
OME_ARROW_STRUCT: Final[pa.StructType] = ome_arrow_struct()
#: The record type whose chunks hold typed pixel bytes (any dtype, optionally zstd/lz4).
OME_ARROW_BYTE_STRUCT: Final[pa.StructType] = _byte_struct()
OME_ARROW_KNOWN_STRUCTS: Final[tuple[pa.StructType, ...]] = (OME_ARROW_STRUCT, OME_ARROW_BYTE_STRUCT)
