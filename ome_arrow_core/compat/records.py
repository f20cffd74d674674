"""Build ``ome-arrow`` records (planes, list chunks or typed byte chunks) from TCZYX pixels, losslessly.

The reference clamps and casts every record to uint16; here pixel lists have the array's own
Arrow type (``OME_ARROW_STRUCT`` exactly when the pixels are uint16) and byte chunks carry
their dtype, so floats, int8 and wide integers survive bit for bit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from ..dtypes import from_ome_type, to_ome_type
from ..errors import ArgumentError
from ..plugin_api import check_dtype
from ..record import FIELD, carry, chunk_grid, ome_arrow_struct, plane_list
from .meta import OME_ARROW_BYTE_STRUCT, OME_ARROW_TAG_TYPE, OME_ARROW_TAG_VERSION

__all__ = [
    "Encoding",
    "RecordSpec",
    "record_spec",
    "build_record",
    "decode_record",
    "encode_chunk",
    "normalize_chunk_shape",
    "normalize_compression",
    "record_array",
]

#: How a record's chunks hold their pixels: a typed list, or bytes tagged with their dtype.
Encoding = Literal["list", "bytes"]

_PRESETS = {"auto": ("zstd", 1), "balanced": ("zstd", 1), "small": ("zstd", 1), "fast": ("lz4", None)}


@dataclass
class RecordSpec:
    """Everything in a record but its pixels (reference defaults)."""

    image_id: str = "unnamed"
    name: str = "unknown"
    image_type: str | None = "image"
    acquisition_datetime: dt.datetime | None = None
    dimension_order: str = "XYZCT"
    physical_size: tuple[float | None, float | None, float | None] = (1.0, 1.0, 1.0)
    physical_unit: str = "µm"
    channels: Sequence[Mapping[str, Any]] | None = None
    chunk_shape: tuple[int, int, int] | None = (1, 512, 512)
    chunk_encoding: str = "list"
    compression: str | None = None
    compression_level: int | None = None
    build_chunks: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def record_spec(
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
    """The spec of a record of TCZYX ``pixels`` from the reference's ingest keywords (channels named
    ``channel_names`` when there is one a channel, else C0, C1...; unset names: the reference's defaults)."""
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


def normalize_compression(value: str | None) -> str | None:
    """A codec name pyarrow knows, a preset (auto/balanced/fast/small) or None; ValueError otherwise."""
    if value is None:
        return None
    name = str(value).strip().lower()
    if name in ("", "none", "null", "false"):
        return None
    if name in _PRESETS:
        return name
    try:
        pa.Codec(name)
    except (ValueError, NotImplementedError, pa.ArrowException) as exc:
        raise ArgumentError(f"unsupported chunk_compression {value!r}; use 'zstd', 'lz4', 'auto' or None") from exc
    return name


def encode_chunk(payload: bytes, compression: str | None, level: int | None) -> tuple[str | None, bytes]:
    """(codec written in the record, bytes); a preset keeps the raw bytes when compressing does not shrink them."""
    if compression is None:
        return None, payload
    codec_name, preset_level = _PRESETS.get(compression, (compression, None))
    use_level = level if level is not None else preset_level
    codec = pa.Codec(codec_name) if use_level is None else pa.Codec(codec_name, compression_level=use_level)
    packed = codec.compress(payload, asbytes=True)
    assert isinstance(packed, bytes)
    if compression in _PRESETS and len(packed) >= len(payload):
        return None, payload
    return codec_name, packed


def normalize_chunk_shape(shape: Sequence[int] | None, sizes: tuple[int, int, int]) -> tuple[int, int, int]:
    """A (z, y, x) chunk clipped to the image; None means one chunk per plane."""
    if shape is None:
        return (1, sizes[1], sizes[2])
    if len(shape) != 3 or any(int(v) < 1 for v in shape):
        raise ArgumentError(f"chunk_shape must be three positive sizes (z, y, x), got {tuple(shape)!r}")
    return tuple(min(int(v), s) for v, s in zip(shape, sizes))  # type: ignore[return-value]


def _channels(spec: RecordSpec, size_c: int) -> list[dict[str, Any]]:
    given = list(spec.channels or [])
    if len(given) != size_c:
        given = [{"id": f"ch-{i}", "name": f"C{i}"} for i in range(size_c)]
    keys = ("id", "name", "emission_um", "excitation_um", "illumination", "color_rgba")
    out = []
    for i, ch in enumerate(given):
        row = {k: ch.get(k) for k in keys}
        row["id"] = row["id"] or f"ch-{i}"
        row["name"] = row["name"] or row["id"]
        row["illumination"] = row["illumination"] or "Unknown"
        row["color_rgba"] = 0xFFFFFFFF if row["color_rgba"] is None else int(row["color_rgba"])
        out.append(row)
    return out


def _header(spec: RecordSpec, pixels: np.ndarray, chunk: tuple[int, int, int] | None) -> dict[str, Any]:
    T, C, Z, Y, X = pixels.shape
    px, py, pz = spec.physical_size
    acq = spec.acquisition_datetime or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return {
        "type": OME_ARROW_TAG_TYPE,
        "version": OME_ARROW_TAG_VERSION,
        "id": spec.image_id,
        "name": spec.name,
        "image_type": spec.image_type,
        "acquisition_datetime": acq,
        "pixels_meta": {
            "dimension_order": spec.dimension_order,
            "type": to_ome_type(pixels.dtype),
            "size_x": X,
            "size_y": Y,
            "size_z": Z,
            "size_c": C,
            "size_t": T,
            "physical_size_x": px,
            "physical_size_y": py,
            "physical_size_z": pz,
            "physical_size_x_unit": spec.physical_unit,
            "physical_size_y_unit": spec.physical_unit,
            "physical_size_z_unit": spec.physical_unit,
            "channels": _channels(spec, C),
        },
        "chunk_grid": None if chunk is None else chunk_grid(chunk),
    }


def _chunk_blocks(pixels: np.ndarray, chunk: tuple[int, int, int]) -> list[tuple[tuple[int, ...], np.ndarray]]:
    T, C, Z, Y, X = pixels.shape
    cz, cy, cx = chunk
    out: list[tuple[tuple[int, ...], np.ndarray]] = []
    for t in range(T):
        for c in range(C):
            for z in range(0, Z, cz):
                for y in range(0, Y, cy):
                    for x in range(0, X, cx):
                        out.append(((t, c, z, y, x), pixels[t, c, z : z + cz, y : y + cy, x : x + cx]))
    return out


def _chunks(
    spec: RecordSpec, pixels: np.ndarray, chunk: tuple[int, int, int], item_type: pa.DataType, ptype: pa.DataType
) -> pa.Array:
    blocks = _chunk_blocks(pixels, chunk)
    coords = np.array([origin for origin, _ in blocks], dtype=np.int64).reshape(-1, 5)
    shapes = np.array([b.shape for _, b in blocks], dtype=np.int64).reshape(-1, 3)
    cols: dict[str, pa.Array] = {
        "t": pa.array(coords[:, 0].astype(np.int32)),
        "c": pa.array(coords[:, 1].astype(np.int16)),
        "z": pa.array(coords[:, 2].astype(np.int32)),
        "y": pa.array(coords[:, 3].astype(np.int32)),
        "x": pa.array(coords[:, 4].astype(np.int32)),
        "shape_z": pa.array(shapes[:, 0].astype(np.int32)),
        "shape_y": pa.array(shapes[:, 1].astype(np.int32)),
        "shape_x": pa.array(shapes[:, 2].astype(np.int32)),
    }
    if spec.chunk_encoding == "bytes":
        little = pixels.dtype.newbyteorder("<")
        encoded = [
            encode_chunk(np.ascontiguousarray(b, dtype=little).tobytes(), spec.compression, spec.compression_level)
            for _, b in blocks
        ]
        cols["dtype"] = pa.array([pixels.dtype.name] * len(blocks), type=pa.string())
        cols["compression"] = pa.array([codec for codec, _ in encoded], type=pa.string())
        cols["pixel_bytes"] = pa.array([blob for _, blob in encoded], type=pa.large_binary())
    else:
        flat = [np.ascontiguousarray(b).reshape(-1) for _, b in blocks]
        sizes = np.array([len(f) for f in flat], dtype=np.int64)
        offsets = pa.array(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32))
        values = pa.array(np.concatenate(flat) if flat else np.empty(0, pixels.dtype), type=ptype)
        cols["pixels"] = pa.ListArray.from_arrays(offsets, values)
    items = pa.StructArray.from_arrays([cols[f.name] for f in item_type], fields=list(item_type))
    return pa.ListArray.from_arrays(pa.array([0, len(blocks)], type=pa.int32()), items)


def build_record(pixels: np.ndarray, spec: RecordSpec) -> pa.StructScalar:
    """A record holding ``pixels`` (TCZYX) as the reference lays it out, in the pixels' own dtype.

    List encoding writes every plane and (``build_chunks``) the chunks; byte encoding writes
    only typed byte chunks (``OME_ARROW_BYTE_STRUCT``, planes empty).
    """
    if pixels.ndim != 5:
        raise ArgumentError(f"build_record needs TCZYX pixels, got {pixels.ndim} axes")
    pixels = pixels.astype(check_dtype(pixels.dtype), copy=False)
    if spec.chunk_encoding not in ("list", "bytes"):
        raise ArgumentError(f"chunk_encoding must be 'list' or 'bytes', got {spec.chunk_encoding!r}")
    byte_mode = spec.chunk_encoding == "bytes"
    stype = OME_ARROW_BYTE_STRUCT if byte_mode else ome_arrow_struct(pa.from_numpy_dtype(pixels.dtype))
    ptype = pa.from_numpy_dtype(pixels.dtype)
    want_chunks = byte_mode or spec.build_chunks
    chunk = normalize_chunk_shape(spec.chunk_shape, pixels.shape[2:]) if want_chunks else None
    header = _header(spec, pixels, chunk)
    arrays: list[pa.Array] = []
    for f in stype:
        if f.name == "planes":
            if byte_mode:
                arrays.append(pa.array([[]], type=f.type))
            else:
                arrays.append(plane_list(pixels.transpose(0, 2, 1, 3, 4), ptype, f.type))  # planes: t, z, c
        elif f.name == "chunks":
            if chunk is None:
                arrays.append(pa.array([[]], type=f.type))
            else:
                arrays.append(_chunks(spec, pixels, chunk, f.type.value_type, ptype))
        elif f.name == "masks":
            arrays.append(pa.nulls(1))
        else:
            arrays.append(pa.array([header.get(f.name)], type=f.type))
    return pa.StructArray.from_arrays(arrays, fields=list(stype))[0]


def record_array(data: Mapping[str, Any] | pa.StructScalar | pa.StructArray) -> pa.StructArray:
    """A one-row StructArray of ``data``; a dict is typed by its own pixel type (never cast to uint16)."""
    if isinstance(data, pa.StructArray):
        return data
    if isinstance(data, pa.StructScalar):
        cols = [
            pa.array([data[f.name]], type=f.type) if data[f.name].is_valid else pa.nulls(1, f.type) for f in data.type
        ]
        return pa.StructArray.from_arrays(cols, fields=list(data.type))
    if not isinstance(data, Mapping):
        raise TypeError(f"an OME-Arrow record is a dict or a pyarrow StructScalar, got {type(data).__name__}")
    chunks = data.get("chunks") or []
    byte_mode = bool(chunks) and "pixel_bytes" in chunks[0]
    if byte_mode:
        stype = OME_ARROW_BYTE_STRUCT
    else:
        ptype = (data.get("pixels_meta") or {}).get("type")
        stype = ome_arrow_struct(pa.from_numpy_dtype(from_ome_type(str(ptype))) if ptype else None)
    row = {f.name: data.get(f.name) for f in stype}
    return carry(pa.array([row], type=stype), data.get(FIELD))  # the stored OME-XML entry, checked when read


def decode_record(data: Mapping[str, Any] | pa.StructScalar | pa.StructArray) -> np.ndarray:
    """The pixels of a record as a TCZYX array of its declared dtype (checked by ome-arrow-core's decoder)."""
    from .. import OMEArrow as CoreImage

    return np.ascontiguousarray(np.asarray(CoreImage(record_array(data)).to_numpy(layout="TCZYX")))
