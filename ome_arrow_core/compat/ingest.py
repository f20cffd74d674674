"""Record-level ingest functions under the reference's names (``ome_arrow.ingest``).

Every function returns a ``pyarrow.StructScalar`` OME-Arrow record in the reference's layout,
with the pixels in their own dtype (``clamp_to_uint16`` is accepted and ignored: nothing is
cast). Files are read by ome-arrow-core's readers (TIFF and OME-Zarr need their backends).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import Ingested, default_registry
from .. import OMEArrow as CoreImage
from ..dtypes import to_ome_type
from ..errors import ArgumentError
from ..layout import to_canonical
from ..record import carry, entry_for
from .patterns import stack_pattern_files
from .record_files import from_ome_parquet, from_ome_vortex
from .records import (
    RecordSpec,
    build_record,
    decode_record,
    normalize_compression,
    record_array,
)

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

Encoding = Literal["list", "bytes"]


def to_tczyx(arr: np.ndarray, dim_order: str | None) -> np.ndarray:
    """``arr`` reordered to TCZYX; ``dim_order`` None means by rank: YX, ZYX, TCYX, TCZYX."""
    return np.asarray(to_canonical(np.asarray(arr), dim_order.upper() if dim_order else None)).transpose(0, 2, 1, 3, 4)


def _spec(
    pixels: np.ndarray,
    *,
    image_id: str | None,
    name: str | None,
    image_type: str | None,
    channel_names: Sequence[str] | None,
    acquisition_datetime: dt.datetime | None,
    chunk_shape: Sequence[int] | None = (1, 512, 512),
    chunk_encoding: Encoding = "list",
    chunk_compression: str | None = None,
    chunk_compression_level: int | None = None,
    build_chunks: bool = True,
    physical_size: tuple[float | None, float | None, float | None] = (1.0, 1.0, 1.0),
    physical_size_unit: str = "µm",
) -> RecordSpec:
    size_c = pixels.shape[1]
    names = list(channel_names) if channel_names is not None and len(channel_names) == size_c else None
    channels = [{"id": f"ch-{i}", "name": names[i] if names else f"C{i}"} for i in range(size_c)]
    return RecordSpec(
        image_id=image_id or "unnamed",
        name=name or "unknown",
        image_type=image_type or "image",
        acquisition_datetime=acquisition_datetime,
        physical_size=physical_size,
        physical_unit=physical_size_unit,
        channels=channels,
        chunk_shape=None if chunk_shape is None else tuple(int(v) for v in chunk_shape),  # type: ignore[arg-type]
        chunk_encoding=chunk_encoding,
        compression=normalize_compression(chunk_compression),
        compression_level=chunk_compression_level,
        build_chunks=build_chunks,
    )


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
    spec = _spec(
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


def record_from_image(
    image: CoreImage,
    path: Path,
    *,
    image_id: str | None = None,
    name: str | None = None,
    image_type: str | None = None,
    channel_names: Sequence[str] | None = None,
    acquisition_datetime: dt.datetime | None = None,
    **chunking: Any,
) -> pa.StructScalar:
    """The record of an ome-arrow-core image read from ``path`` (its metadata carried over)."""
    meta = image.meta
    pixels = np.asarray(image.to_numpy(layout="TCZYX"))
    names = channel_names or [c.name or c.id for c in meta.channels]
    phys = tuple(meta.physical_size.get(ax) for ax in "XYZ")
    unit = meta.physical_unit.get("X") or "µm"
    spec = _spec(
        pixels,
        image_id=image_id or path.name.split(".")[0],
        name=name or path.name,
        image_type=image_type or meta.image_type,
        channel_names=names,
        acquisition_datetime=acquisition_datetime,
        physical_size=phys,  # type: ignore[arg-type]
        physical_size_unit=unit,
        **chunking,
    )
    if chunking.get("chunk_encoding", "list") == "list" and "chunk_shape" not in chunking:
        spec.chunk_shape = (1, pixels.shape[3], pixels.shape[4])
    record = build_record(pixels, spec)
    if meta.ome_xml is None:
        return record
    records = record_array(record)  # carrying the image's stored OME-XML (see record.memory_xml)
    return carry(records, entry_for(records, 0, meta.ome_xml, pixels.transpose(0, 2, 1, 3, 4)))[0]


def _from_file(
    path: str | os.PathLike[str], fmt: str, clamp_to_uint16: bool, options: dict[str, Any]
) -> pa.StructScalar:
    del clamp_to_uint16
    p = Path(path)
    return record_from_image(CoreImage(p, format=fmt), p, **options)


def from_tiff(
    tiff_path: str | os.PathLike[str],
    image_id: str | None = None,
    name: str | None = None,
    image_type: str | None = None,
    channel_names: Sequence[str] | None = None,
    acquisition_datetime: dt.datetime | None = None,
    clamp_to_uint16: bool = True,
    chunk_encoding: Encoding = "list",
    chunk_compression: str | None = None,
    chunk_compression_level: int | None = None,
) -> pa.StructScalar:
    """A record of a TIFF / OME-TIFF (needs ``ome-arrow-core[tiff]``)."""
    return _from_file(
        tiff_path,
        "tiff",
        clamp_to_uint16,
        dict(
            image_id=image_id,
            name=name,
            image_type=image_type,
            channel_names=channel_names,
            acquisition_datetime=acquisition_datetime,
            chunk_encoding=chunk_encoding,
            chunk_compression=chunk_compression,
            chunk_compression_level=chunk_compression_level,
        ),
    )


def from_ome_zarr(
    zarr_path: str | os.PathLike[str],
    image_id: str | None = None,
    name: str | None = None,
    image_type: str | None = None,
    channel_names: Sequence[str] | None = None,
    acquisition_datetime: dt.datetime | None = None,
    clamp_to_uint16: bool = True,
    chunk_encoding: Encoding = "list",
    chunk_compression: str | None = None,
    chunk_compression_level: int | None = None,
) -> pa.StructScalar:
    """A record of an OME-Zarr image (needs ``ome-arrow-core[zarr]``)."""
    return _from_file(
        zarr_path,
        "ome-zarr",
        clamp_to_uint16,
        dict(
            image_id=image_id,
            name=name,
            image_type=image_type,
            channel_names=channel_names,
            acquisition_datetime=acquisition_datetime,
            chunk_encoding=chunk_encoding,
            chunk_compression=chunk_compression,
            chunk_compression_level=chunk_compression_level,
        ),
    )


def from_stack_pattern_path(
    pattern_path: str | os.PathLike[str],
    default_dim_for_unspecified: str = "C",
    map_series_to: str | None = "T",
    clamp_to_uint16: bool = True,
    channel_names: list[str] | None = None,
    image_id: str | None = None,
    name: str | None = None,
    image_type: str | None = None,
) -> pa.StructScalar:
    """A record stacking the 2-D files a Bio-Formats-style pattern names (``<a,b>``, ``<000-021>``, ``*``)."""
    del clamp_to_uint16
    files, shape = stack_pattern_files(str(pattern_path), default_dim_for_unspecified, map_series_to)
    pixels: np.ndarray | None = None
    for (t, c, z), file in files.items():
        img = CoreImage(file)
        plane = np.asarray(img.to_numpy(layout="TZCYX"))
        if plane.shape[:3] != (1, 1, 1):
            raise ArgumentError(f"{file}: a stack pattern combines 2-D files; this one has sizes {img.sizes}")
        if pixels is None:
            pixels = np.zeros((*shape, *plane.shape[3:]), dtype=plane.dtype)
        pixels[t, c, z] = plane[0, 0, 0]
    assert pixels is not None
    first = Path(next(iter(files.values())))
    spec = _spec(
        pixels,
        image_id=image_id or first.stem,
        name=name or str(pattern_path),
        image_type=image_type,
        channel_names=channel_names,
        acquisition_datetime=None,
        chunk_shape=(1, pixels.shape[3], pixels.shape[4]),
    )
    return build_record(pixels, spec)


_LAZY_SUFFIXES = (".tif", ".tiff", ".zarr", ".zarr/")


def open_lazy_plane_source(source: str) -> tuple[dict[str, Any], Callable[[int, int, int], np.ndarray]] | None:
    """``(pixels_meta, load(t, z, c))`` for a TIFF or OME-Zarr path, else None (as the reference).

    The image is opened lazily by ome-arrow-core: metadata now, each plane read when loaded,
    in its stored dtype. Unknown physical sizes are None.
    """
    text = str(source).strip()
    lower = text.lower().rstrip("/")
    if not (lower.endswith(_LAZY_SUFFIXES) or ".zarr/" in lower or (os.path.isdir(text) and lower.endswith(".zarr"))):
        return None
    image = CoreImage.scan(text)
    meta = image.meta
    size_t, size_c, size_z, size_y, size_x = meta.array_shape
    unit = meta.physical_unit.get("X")
    pixels_meta: dict[str, Any] = {
        "dimension_order": "XYCT" if size_z == 1 else "XYZCT",
        "type": to_ome_type(np.dtype(meta.dtype)),
        "size_x": size_x,
        "size_y": size_y,
        "size_z": size_z,
        "size_c": size_c,
        "size_t": size_t,
        "physical_size_x": meta.physical_size.get("X"),
        "physical_size_y": meta.physical_size.get("Y"),
        "physical_size_z": meta.physical_size.get("Z"),
        "physical_size_unit": unit if any(v is not None for v in meta.physical_size.values()) else None,
    }

    def load_plane(t: int, z: int, c: int) -> np.ndarray:
        return np.asarray(image.tensor_view(t=int(t), z=int(z), c=int(c), layout="YX").to_numpy())

    return pixels_meta, load_plane


def record_of(data: Mapping[str, Any] | pa.StructScalar, image_type: str | None = None) -> pa.StructScalar:
    """``data`` as a typed record scalar, its ``image_type`` replaced when one is given."""
    arr = record_array(data)
    if image_type is None:
        return arr[0]
    cols = [pa.array([image_type], pa.string()) if f.name == "image_type" else arr.field(f.name) for f in arr.type]
    return pa.StructArray.from_arrays(cols, fields=list(arr.type))[0]
