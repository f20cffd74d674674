"""Record-level ingest functions under the reference's names (``ome_arrow.ingest``): records of arrays here, of
image files in :mod:`.image_records`, of OME-Arrow record files in :mod:`.record_files`.

Every function returns a ``pyarrow.StructScalar`` OME-Arrow record in the reference's layout,
with the pixels in their own dtype (``clamp_to_uint16`` is accepted and ignored: nothing is
cast).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import Ingested, default_registry
from ..errors import ArgumentError
from ..layout import to_canonical
from .image_records import from_ome_zarr, from_stack_pattern_path, from_tiff, open_lazy_plane_source
from .record_files import from_ome_parquet, from_ome_vortex
from .records import Encoding, RecordSpec, build_record, decode_record, normalize_compression, record_array, record_spec

__all__ = [
    "from_jax_array",
    "from_numpy",
    "from_ome_parquet",
    "from_ome_vortex",
    "from_ome_zarr",
    "from_stack_pattern_path",
    "from_tiff",
    "from_torch_array",
    "open_lazy_plane_source",
    "pq",
    "to_ome_arrow",
]


def to_tczyx(arr: np.ndarray, dim_order: str | None) -> np.ndarray:
    """``arr`` reordered to TCZYX; ``dim_order`` None means by rank: YX, ZYX, TCYX, TCZYX."""
    return np.asarray(to_canonical(np.asarray(arr), dim_order.upper() if dim_order else None)).transpose(0, 2, 1, 3, 4)


def from_numpy(
    arr: np.ndarray,
    *,
    dim_order: str | None = None,
    image_id: str | None = None,
    name: str | None = None,
    image_type: str | None = None,
    channel_names: Sequence[str] | None = None,
    acquisition_datetime: dt.datetime | None = None,
    clamp_to_uint16: bool = True,
    chunk_shape: Sequence[int] | None = (1, 512, 512),
    chunk_order: str = "ZYX",
    chunk_encoding: Encoding = "list",
    chunk_compression: str | None = None,
    chunk_compression_level: int | None = None,
    build_chunks: bool = True,
    physical_size_x: float | None = 1.0,
    physical_size_y: float | None = 1.0,
    physical_size_z: float | None = 1.0,
    physical_size_unit: str = "µm",
    dtype_meta: str | None = None,
) -> pa.StructScalar:
    """A record of ``arr`` (axes ``dim_order``; None means by rank), pixels in their own dtype.

    ``clamp_to_uint16`` and ``dtype_meta`` are accepted for compatibility and ignored: the
    record's pixel type is always the array's dtype. ``chunk_order`` must be "ZYX".
    """
    del clamp_to_uint16, dtype_meta
    if chunk_order.upper() != "ZYX":
        raise ArgumentError(f"chunk_order {chunk_order!r} is not supported; chunks are flattened in ZYX order")
    pixels = to_tczyx(arr, dim_order)
    spec = record_spec(
        pixels,
        image_id=image_id,
        name=name,
        image_type=image_type,
        channel_names=channel_names,
        acquisition_datetime=acquisition_datetime,
        chunk_shape=chunk_shape,
        chunk_encoding=chunk_encoding,
        chunk_compression=chunk_compression,
        chunk_compression_level=chunk_compression_level,
        build_chunks=build_chunks,
        physical_size=(physical_size_x, physical_size_y, physical_size_z),
        physical_size_unit=physical_size_unit,
    )
    return build_record(pixels, spec)


def _array_to_numpy(arr: Any) -> np.ndarray:
    ingester = default_registry().resolve_ingester(arr)
    ingester.ensure_available()
    out = ingester.to_numpy(arr)
    return np.asarray(out.array if isinstance(out, Ingested) else out)


def from_torch_array(arr: Any, *, dim_order: str | None = None, **options: Any) -> pa.StructScalar:
    """A record of a torch tensor (copied to host memory); options as :func:`from_numpy`."""
    return from_numpy(_array_to_numpy(arr), dim_order=dim_order, **options)


def from_jax_array(arr: Any, *, dim_order: str | None = None, **options: Any) -> pa.StructScalar:
    """A record of a JAX array (copied to host memory); options as :func:`from_numpy`."""
    return from_numpy(_array_to_numpy(arr), dim_order=dim_order, **options)


def to_ome_arrow(
    type_: str = "ome.arrow",
    version: str = "0.1.0",
    image_id: str = "unnamed",
    name: str = "unknown",
    image_type: str | None = "image",
    acquisition_datetime: dt.datetime | None = None,
    dimension_order: str = "XYZCT",
    dtype: str = "uint16",
    size_x: int = 1,
    size_y: int = 1,
    size_z: int = 1,
    size_c: int = 1,
    size_t: int = 1,
    physical_size_x: float | None = 1.0,
    physical_size_y: float | None = 1.0,
    physical_size_z: float | None = 1.0,
    physical_size_unit: str = "µm",
    channels: list[dict[str, Any]] | None = None,
    planes: list[dict[str, Any]] | None = None,
    chunks: list[dict[str, Any]] | None = None,
    chunk_shape: Sequence[int] | None = (1, 512, 512),
    chunk_order: str = "ZYX",
    chunk_encoding: Encoding = "list",
    chunk_compression: str | None = None,
    chunk_compression_level: int | None = None,
    build_chunks: bool = True,
    masks: Any = None,
) -> pa.StructScalar:
    """A record from its fields and its ``planes`` (or ``chunks``) given as dicts; every pixel checked."""
    del type_, version, masks
    if chunk_order.upper() != "ZYX":
        raise ArgumentError(f"chunk_order {chunk_order!r} is not supported; chunks are flattened in ZYX order")
    if not planes and not chunks:
        raise ArgumentError("to_ome_arrow needs planes=[...] or chunks=[...]: a record without pixels is empty")
    sizes = {"size_x": size_x, "size_y": size_y, "size_z": size_z, "size_c": size_c, "size_t": size_t}
    draft = {
        "type": "ome.arrow",
        "pixels_meta": {"type": dtype, "dimension_order": dimension_order, **sizes},
        "planes": planes or [],
        "chunks": chunks or [],
    }
    pixels = decode_record(draft)
    spec = RecordSpec(
        image_id=image_id,
        name=name,
        image_type=image_type,
        acquisition_datetime=acquisition_datetime,
        dimension_order=dimension_order,
        physical_size=(physical_size_x, physical_size_y, physical_size_z),
        physical_unit=physical_size_unit,
        channels=channels,
        chunk_shape=None if chunk_shape is None else tuple(int(v) for v in chunk_shape),  # type: ignore[arg-type]
        chunk_encoding=chunk_encoding,
        compression=normalize_compression(chunk_compression),
        compression_level=chunk_compression_level,
        build_chunks=build_chunks,
    )
    return build_record(pixels, spec)


def record_of(data: Mapping[str, Any] | pa.StructScalar, image_type: str | None = None) -> pa.StructScalar:
    """``data`` as a typed record scalar, its ``image_type`` replaced when one is given."""
    arr = record_array(data)
    if image_type is None:
        return arr[0]
    cols = [pa.array([image_type], pa.string()) if f.name == "image_type" else arr.field(f.name) for f in arr.type]
    return pa.StructArray.from_arrays(cols, fields=list(arr.type))[0]
