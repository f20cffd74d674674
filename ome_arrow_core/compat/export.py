"""Record-level export functions under the reference's names (``ome_arrow.export``).

Pixels keep their dtype: ``dtype=`` converts only when given, and refuses values the new
dtype cannot hold unless ``clamp=True`` (which clips to its range first).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ArgumentError
from ..plugin_api import atomic_path, cast_pixels, check_dtype
from ..record import checked_xml, ome_xml_metadata, without_carried
from .meta import OME_ARROW_TAG_TYPE, OME_ARROW_TAG_VERSION
from .records import (
    RecordSpec,
    build_record,
    decode_record,
    normalize_compression,
    record_array,
)

__all__ = [
    "convert_pixels",
    "plane_from_chunks",
    "to_numpy",
    "to_ome_parquet",
    "to_ome_tiff",
    "to_ome_vortex",
    "to_ome_zarr",
]

Record: TypeAlias = "Mapping[str, Any] | pa.StructScalar"


def convert_pixels(pixels: np.ndarray, dtype: Any, clamp: bool) -> np.ndarray:
    """``pixels`` as ``dtype`` (None: unchanged); values that do not fit raise unless ``clamp`` clips them first."""
    if dtype is None:
        return pixels
    target = check_dtype(dtype)
    if clamp and target.kind in "iu" and pixels.dtype != target:
        info = np.iinfo(target)
        pixels = np.clip(pixels, info.min, info.max)
    return cast_pixels(pixels, target)


def to_numpy(data: Record, dtype: Any = None, strict: bool = True, clamp: bool = False) -> np.ndarray:
    """The record's pixels as a TCZYX array, in the stored dtype unless ``dtype`` is given.

    The reference defaults to ``dtype=np.uint16`` (casting every other dtype); here the
    stored dtype is kept. ``strict`` is accepted for compatibility: a damaged record always raises.
    """
    del strict
    return convert_pixels(decode_record(data), dtype, clamp)


def plane_from_chunks(
    data: Record, *, t: int, c: int, z: int, dtype: Any = None, strict: bool = True, clamp: bool = False
) -> np.ndarray:
    """One (t, c, z) plane (YX) of the record."""
    del strict
    pixels = decode_record(data)
    T, C, Z = pixels.shape[:3]
    for name, value, size in (("t", t, T), ("c", c, C), ("z", z, Z)):
        if not 0 <= int(value) < size:
            raise ArgumentError(f"{name}={value} is out of range; the record has {name} in 0..{size - 1}")
    return convert_pixels(np.ascontiguousarray(pixels[t, c, z]), dtype, clamp)


def _spec_of(record: pa.StructScalar, encoding: str, compression: str | None, level: int | None) -> RecordSpec:
    row = {k: v for k, v in record.as_py().items() if k not in ("planes", "chunks", "masks")}
    pm = row.get("pixels_meta") or {}
    grid = row.get("chunk_grid") or {}
    chunk = (int(grid.get("chunk_z") or 1), int(grid["chunk_y"]), int(grid["chunk_x"])) if grid.get("chunk_y") else None
    return RecordSpec(
        image_id=row.get("id") or "unnamed",
        name=row.get("name") or "unknown",
        image_type=row.get("image_type"),
        acquisition_datetime=row.get("acquisition_datetime"),
        dimension_order=pm.get("dimension_order") or "XYZCT",
        physical_size=(pm.get("physical_size_x"), pm.get("physical_size_y"), pm.get("physical_size_z")),
        physical_unit=pm.get("physical_size_x_unit") or "µm",
        channels=pm.get("channels"),
        chunk_shape=chunk if chunk is not None else (1, 512, 512),
        chunk_encoding=encoding,
        compression=compression,
        compression_level=level,
    )


def to_ome_parquet(
    data: Record,
    out_path: str | os.PathLike[str],
    column_name: str = "image",
    file_metadata: Mapping[str, str] | None = None,
    compression: str | None = "zstd",
    row_group_size: int | None = None,
    inline_chunk_encoding: Literal["existing", "list", "bytes"] = "existing",
    inline_chunk_compression: str | None = None,
    inline_chunk_compression_level: int | None = None,
) -> None:
    """Write the record as a one-row, one-column Parquet file (atomically).

    ``inline_chunk_encoding="bytes"`` stores typed chunk bytes (each optionally zstd/lz4
    compressed: ``inline_chunk_compression``), ``"list"`` numeric lists, ``"existing"`` the
    record as given.
    """
    if inline_chunk_encoding not in ("existing", "list", "bytes"):
        raise ArgumentError("inline_chunk_encoding must be one of: existing, list, bytes")
    records = record_array(data)
    xml = checked_xml(records)  # the stored OME-XML the record carries for its pixels: the file keeps it
    records = without_carried(records)
    if inline_chunk_encoding != "existing":
        codec = normalize_compression(inline_chunk_compression)
        spec = _spec_of(records[0], inline_chunk_encoding, codec, inline_chunk_compression_level)
        scalar = build_record(decode_record(records), spec)
        records = record_array(scalar)
    meta = {b"ome.arrow.type": OME_ARROW_TAG_TYPE.encode(), b"ome.arrow.version": OME_ARROW_TAG_VERSION.encode()}
    for k, v in (file_metadata or {}).items():
        meta[str(k).encode()] = str(v).encode()
    meta.update(ome_xml_metadata(column_name, [xml]))
    table = pa.table({column_name: records}).replace_schema_metadata(meta)
    with atomic_path(out_path) as tmp:
        pq.write_table(table, tmp, compression=compression, row_group_size=row_group_size)


def _core_export(data: Record, how: str, out_path: str | os.PathLike[str], **options: Any) -> None:
    from .. import OMEArrow as CoreImage

    CoreImage(record_array(data)).export(how, out=out_path, **options)


def to_ome_tiff(
    data: Record, out_path: str | os.PathLike[str], *, dtype: Any = None, clamp: bool = False, **options: Any
) -> None:
    """Write the record as an OME-TIFF (ome-arrow-core's writer; needs ``ome-arrow-core[tiff]``)."""
    if dtype is not None:
        raise ArgumentError("to_ome_tiff keeps the stored dtype; convert with to_numpy(dtype=...) first")
    del clamp
    _core_export(data, "ome-tiff", out_path, **options)


def to_ome_zarr(
    data: Record, out_path: str | os.PathLike[str], *, dtype: Any = None, clamp: bool = False, **options: Any
) -> None:
    """Write the record as OME-Zarr (ome-arrow-core's writer; needs ``ome-arrow-core[zarr]``)."""
    if dtype is not None:
        raise ArgumentError("to_ome_zarr keeps the stored dtype; convert with to_numpy(dtype=...) first")
    del clamp
    _core_export(data, "ome-zarr", out_path, **options)


def to_ome_vortex(
    data: Record,
    out_path: str | os.PathLike[str],
    column_name: str = "image",
    file_metadata: Mapping[str, str] | None = None,
) -> None:
    """Write the record as a one-row, one-column Vortex file, as the reference does (needs ``vortex-data``)."""
    from .vortex_records import write_record_vortex

    write_record_vortex(record_array(data), out_path, column_name, file_metadata)
