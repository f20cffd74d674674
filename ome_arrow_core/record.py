"""OME-Arrow records <-> pixel arrays: planes, chunks and typed pixel bytes.

A record is one row of an OME-Arrow struct column. Reading places each plane or chunk
into a ``TZCYX`` array; writing builds the planes list straight from Arrow buffers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from .buffers import arrow_empty, view_buffer
from .errors import SchemaError
from .meta import ImageMeta
from .record_bounds import check_record_sizes
from .schema import find_ome_column, meta_from_record, ome_arrow_struct, record_header

__all__ = ["record_to_pixels", "pixels_to_record", "as_struct_array", "record_meta"]

_PAYLOAD = ("planes", "chunks", "masks")


def as_struct_array(obj: Any, column: str | None = None) -> pa.StructArray:
    """A StructArray of OME-Arrow records from a scalar, array, table or dict record."""
    if isinstance(obj, Mapping):
        return pa.array([dict(obj)])
    if isinstance(obj, pa.StructScalar):
        return pa.array([obj], type=obj.type)
    if isinstance(obj, (pa.Table, pa.RecordBatch)):
        name = find_ome_column(obj.schema, column)
        col = obj.column(name)
        return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if isinstance(obj, pa.ChunkedArray):
        obj = obj.combine_chunks()
    if isinstance(obj, pa.StructArray):
        return obj
    raise SchemaError(f"cannot read an OME-Arrow record from {type(obj).__name__}")


def record_meta(records: pa.StructArray, row: int = 0) -> ImageMeta:
    """ImageMeta of record ``row`` (pixels are not converted to Python)."""
    if not 0 <= row < len(records):
        raise SchemaError(f"row {row} is out of range; the table has rows 0..{len(records) - 1}")
    names = [records.type.field(i).name for i in range(records.type.num_fields)]
    header = {n: records.field(n)[row].as_py() for n in names if n not in _PAYLOAD}
    return meta_from_record(header)


def _exact_cast(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Cast stored values to the declared dtype, refusing any change of value."""
    if values.dtype == dtype:
        return values
    out = values.astype(dtype)
    if not np.array_equal(out.astype(values.dtype), values, equal_nan=values.dtype.kind == "f"):
        raise SchemaError(
            f"stored pixel values ({values.dtype}) do not fit the declared pixel type {dtype}; "
            "refusing to change them"
        )
    return out


def _row_items(records: pa.StructArray, field: str, row: int) -> pa.StructArray | None:
    if records.type.get_field_index(field) < 0:
        return None
    lists = records.field(field)
    if not lists.is_valid()[row].as_py():
        return None
    start, stop = lists.offsets[row].as_py(), lists.offsets[row + 1].as_py()
    if stop == start:
        return None
    return lists.values.slice(start, stop - start)


def _list_values(items: pa.StructArray, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Flat ``pixels`` list values of every item (cast exactly) and each item's offsets."""
    lists = items.field("pixels")
    offsets = np.asarray(lists.offsets) - lists.offsets[0].as_py()
    flat = lists.flatten().to_numpy(zero_copy_only=False)
    return _exact_cast(flat, dtype), offsets


def _byte_blocks(items: pa.StructArray, dtype: np.dtype) -> list[np.ndarray]:
    """Decode typed ``pixel_bytes`` items (per-item dtype and zstd/lz4 compression)."""
    names = {items.type.field(i).name for i in range(items.type.num_fields)}
    dtypes = items.field("dtype").to_pylist() if "dtype" in names else [None] * len(items)
    codecs = items.field("compression").to_pylist() if "compression" in names else [None] * len(items)
    shapes = [items.field(f"shape_{a}").to_numpy(zero_copy_only=False) for a in "zyx"]
    blobs = items.field("pixel_bytes")
    out = []
    for i in range(len(items)):
        dt = np.dtype(dtypes[i]).newbyteorder("<") if dtypes[i] else dtype.newbyteorder("<")
        n = int(shapes[0][i]) * int(shapes[1][i]) * int(shapes[2][i])
        buf = blobs[i].as_buffer()
        if buf is None:
            raise SchemaError(f"chunk {i} has no pixel_bytes")
        if codecs[i]:
            buf = pa.Codec(str(codecs[i])).decompress(buf, decompressed_size=n * dt.itemsize)
        block = np.frombuffer(buf, dtype=dt, count=n)
        out.append(_exact_cast(block.astype(dt.newbyteorder("="), copy=False), dtype))
    return out


def record_to_pixels(records: pa.StructArray, row: int = 0) -> tuple[ImageMeta, np.ndarray]:
    """Decode record ``row`` into (meta, ``TZCYX`` array) with the declared dtype."""
    meta = record_meta(records, row)
    T, Z, C, Y, X = meta.shape
    chunks = _row_items(records, "chunks", row)
    planes = _row_items(records, "planes", row)
    check_record_sizes(meta, planes, chunks)  # before the output is allocated
    out, buf = arrow_empty(meta.shape, meta.dtype)
    if chunks is not None:
        cols = {n: chunks.field(n).to_numpy(zero_copy_only=False) for n in ("t", "c", "z", "y", "x")}
        shp = {n: chunks.field(f"shape_{n}").to_numpy(zero_copy_only=False) for n in ("z", "y", "x")}
        if chunks.type.get_field_index("pixel_bytes") >= 0:
            blocks = _byte_blocks(chunks, meta.dtype)
        else:
            flat, offs = _list_values(chunks, meta.dtype)
            blocks = [flat[offs[i] : offs[i + 1]] for i in range(len(chunks))]
        covered = sum(int(shp["z"][i]) * int(shp["y"][i]) * int(shp["x"][i]) for i in range(len(chunks)))
        if covered < T * Z * C * Y * X:  # a missing chunk would read as whatever memory held before
            raise SchemaError(f"the record's chunks cover {covered} pixels; its sizes need {T * Z * C * Y * X}")
        for i, block in enumerate(blocks):
            t, c, z, y, x = (int(cols[n][i]) for n in ("t", "c", "z", "y", "x"))
            sz, sy, sx = (int(shp[n][i]) for n in ("z", "y", "x"))
            if block.size != sz * sy * sx:
                raise SchemaError(f"chunk {i} holds {block.size} values, its shape says {sz * sy * sx}")
            out[t, z : z + sz, c, y : y + sy, x : x + sx] = block.reshape(sz, sy, sx)
    elif planes is not None:
        flat, _ = _list_values(planes, meta.dtype)
        if flat.size != len(planes) * Y * X:
            raise SchemaError(
                f"planes hold {flat.size} values; expected {len(planes)} planes of {Y}x{X}"
            )
        t = planes.field("t").to_numpy(zero_copy_only=False).astype(np.intp)
        z = planes.field("z").to_numpy(zero_copy_only=False).astype(np.intp)
        c = planes.field("c").to_numpy(zero_copy_only=False).astype(np.intp)
        for ax, idx, n in (("t", t, T), ("z", z, Z), ("c", c, C)):
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise SchemaError(f"a plane has {ax} outside 0..{n - 1}")
        seen = np.zeros((T, Z, C), dtype=bool)
        seen[t, z, c] = True
        if not seen.all():  # a missing plane would read as whatever memory held before
            t0, z0, c0 = (int(v) for v in np.argwhere(~seen)[0])
            raise SchemaError(
                f"record has {len(planes)} planes but none for t={t0}, z={z0}, c={c0}; "
                f"expected all {T * Z * C} (T*Z*C)"
            )
        out[t, z, c] = flat.reshape(len(planes), Y, X)
    else:
        raise SchemaError("OME-Arrow record has no planes and no chunks: there are no pixels")
    return meta, view_buffer(buf, meta.dtype, meta.shape)


def pixels_to_record(meta: ImageMeta, pixels: np.ndarray, *, pixel_type: pa.DataType | None = None) -> pa.StructArray:
    """A one-row OME-Arrow StructArray holding ``pixels`` (``TZCYX``) as planes.

    ``pixel_type`` defaults to the pixels' own type; pass ``pa.uint16()`` for the public
    format's exact schema (only when the values are uint16).
    """
    T, Z, C, Y, X = pixels.shape
    ptype = pixel_type or pa.from_numpy_dtype(pixels.dtype)
    values = pa.array(np.ascontiguousarray(pixels).reshape(-1), type=ptype)
    n = T * Z * C
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * (Y * X))
    tt, zz, cc = np.meshgrid(np.arange(T), np.arange(Z), np.arange(C), indexing="ij")
    plane_items = pa.StructArray.from_arrays(
        [
            pa.array(zz.reshape(-1).astype(np.int32)),
            pa.array(tt.reshape(-1).astype(np.int32)),
            pa.array(cc.reshape(-1).astype(np.int16)),
            pa.ListArray.from_arrays(offsets, values),
        ],
        names=["z", "t", "c", "pixels"],
    )
    stype = ome_arrow_struct(ptype)
    planes = pa.ListArray.from_arrays(pa.array([0, n], type=pa.int32()), plane_items, type=stype.field("planes").type)
    header = record_header(meta)
    fields: list[pa.Array] = []
    for i in range(stype.num_fields):
        f = stype.field(i)
        if f.name == "planes":
            fields.append(planes)
        elif f.name == "chunks":
            fields.append(pa.array([[]], type=f.type))
        elif f.name == "masks":
            fields.append(pa.nulls(1))
        else:
            fields.append(pa.array([header[f.name]], type=f.type))
    return pa.StructArray.from_arrays(fields, fields=list(stype))
