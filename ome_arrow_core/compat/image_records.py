"""Records of image files read by ome-arrow-core's readers, under the reference's names (``ome_arrow.ingest``):
TIFF and OME-Zarr (they need their backends), stacks of 2-D files named by a pattern, and the lazy plane source.

A record carries the image's metadata (and its stored OME-XML); its pixels keep their dtype (``clamp_to_uint16``
is accepted and ignored).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .. import OMEArrow as CoreImage
from ..dtypes import to_ome_type
from ..errors import ArgumentError
from ..record import carry, entry_for
from .patterns import stack_pattern_files
from .records import Encoding, build_record, record_array, record_spec

__all__ = ["from_ome_zarr", "from_stack_pattern_path", "from_tiff", "open_lazy_plane_source", "record_from_image"]


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
    spec = record_spec(
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
    spec = record_spec(
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
