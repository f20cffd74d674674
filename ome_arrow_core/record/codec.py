"""OME-Arrow records <-> pixel arrays: planes, chunks and typed pixel bytes.

A record is one row of an OME-Arrow struct column. Reading places each plane or chunk
into a ``TZCYX`` array; writing builds the planes list straight from Arrow buffers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from ..arrow_numpy import int_column, int_values, plain_values
from ..boundary import reading
from ..buffers import arrow_empty, view_buffer
from ..coverage import check_coverage
from ..errors import DamagedFileError, SchemaError
from ..meta import ImageMeta
from .bounds import check_record_sizes
from .samples import as_sample_channels, interleaved_samples
from .schema import find_ome_column, meta_from_record, ome_arrow_struct, record_header

__all__ = ["record_to_pixels", "pixels_to_record", "plane_list", "as_struct_array", "record_meta"]

_PAYLOAD = ("planes", "chunks", "masks")


def as_struct_array(obj: Any, column: str | None = None) -> pa.StructArray:
    """A StructArray of OME-Arrow records from a scalar, array, table or dict record."""
    if isinstance(obj, Mapping):  # without the stored OME-XML entry (see .memory_xml), which is no record field
        return pa.array([{k: v for k, v in obj.items() if k != "ome_xml"}])
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


def _claimed_meta(records: pa.StructArray, row: int) -> ImageMeta:
    """ImageMeta of record ``row`` as its header states it (pixels are not converted to Python)."""
    if not 0 <= row < len(records):
        raise SchemaError(f"row {row} is out of range; the table has rows 0..{len(records) - 1}")
    names = [records.type.field(i).name for i in range(records.type.num_fields)]
    header = {n: records.field(n)[row].as_py() for n in names if n not in _PAYLOAD}
    return meta_from_record(header)


def record_meta(records: pa.StructArray, row: int = 0) -> ImageMeta:
    """ImageMeta of record ``row``: its header, with interleaved samples per pixel as channels (see :mod:`.samples`)."""
    claimed = _claimed_meta(records, row)
    samples = interleaved_samples(claimed, _row_items(records, "planes", row), _row_items(records, "chunks", row))
    return as_sample_channels(claimed, samples)


def _exact_cast(values: np.ndarray, dtype: np.dtype, where: str) -> np.ndarray:
    """Cast stored values to the declared dtype, refusing any change of value."""
    if values.dtype == dtype:
        return values
    out = values.astype(dtype)
    # a round trip keeps the bits of a sign change (uint16 50000 -> int16 -15536 -> 50000): integers by their range
    ints = values.dtype.kind in "iu" and dtype.kind in "iu" and values.size
    fits = not ints or (np.iinfo(dtype).min <= values.min() and values.max() <= np.iinfo(dtype).max)
    if not fits or not np.array_equal(out.astype(values.dtype), values, equal_nan=values.dtype.kind == "f"):
        raise DamagedFileError(
            f"{where}: stored pixel values ({values.dtype}) do not fit the declared pixel type {dtype}; "
            "refusing to change them"
        )
    return out


def _row_items(records: pa.StructArray, field: str, row: int) -> pa.StructArray | None:
    if records.type.get_field_index(field) < 0:
        return None
    lists = records.field(field)
    if not lists[row].is_valid:  # a scalar's validity: is_valid() would load the compute kernels
        return None
    start, stop = lists.offsets[row].as_py(), lists.offsets[row + 1].as_py()
    if stop == start:
        return None
    return lists.values.slice(start, stop - start)


def _ints(items: pa.StructArray, name: str, default: int | None = None) -> np.ndarray:
    """Integer field ``name`` of every item (``default`` where the field is absent)."""
    if items.type.get_field_index(name) < 0 and default is not None:
        return np.full(len(items), default, dtype=np.int64)
    return int_column(items.field(name), -1)  # from the buffers: fill_null and to_numpy load kernels and pandas


def _list_values(items: pa.StructArray, dtype: np.dtype, sizes: np.ndarray, where: str) -> list[np.ndarray]:
    """The ``pixels`` list of every item (cast exactly), refusing any whose length is not ``sizes[i]``."""
    lists = items.field("pixels")
    offsets = int_values(lists.offsets).astype(np.int64) - lists.offsets[0].as_py()
    bad = np.nonzero(np.diff(offsets) != sizes)[0]
    if len(bad):
        i = int(bad[0])
        raise DamagedFileError(
            f"{where}[{i}].pixels holds {int(offsets[i + 1] - offsets[i])} values; its shape "
            f"needs {int(sizes[i])}: the record is damaged"
        )
    # without nulls the items' values are one slice of the child (flatten() loads the compute kernels)
    first, last = lists.offsets[0].as_py(), lists.offsets[len(lists)].as_py()
    values = lists.values.slice(first, last - first) if not lists.null_count else lists.flatten()
    flat = _exact_cast(plain_values(values), dtype, where)
    return [flat[offsets[i] : offsets[i + 1]] for i in range(len(items))]


def _byte_blocks(items: pa.StructArray, dtype: np.dtype, sizes: np.ndarray, where: str) -> list[np.ndarray]:
    """Decode typed ``pixel_bytes`` items (per-item dtype and zstd/lz4 compression) of ``sizes[i]`` values each."""
    names = {items.type.field(i).name for i in range(items.type.num_fields)}
    dtypes = items.field("dtype").to_pylist() if "dtype" in names else [None] * len(items)
    codecs = items.field("compression").to_pylist() if "compression" in names else [None] * len(items)
    blobs = items.field("pixel_bytes")
    out = []
    for i in range(len(items)):
        member = f"{where}[{i}].pixel_bytes"
        with reading(member, None, "decoding the pixels"):
            dt = np.dtype(dtypes[i]).newbyteorder("<") if dtypes[i] else dtype.newbyteorder("<")
            n = int(sizes[i])
            buf = blobs[i].as_buffer()
            if buf is None:
                raise DamagedFileError(f"{member} is null; the record is damaged")
            if codecs[i]:
                buf = pa.Codec(str(codecs[i])).decompress(buf, decompressed_size=n * dt.itemsize)
        if buf.size != n * dt.itemsize:
            raise DamagedFileError(
                f"{member} holds {buf.size} bytes; its shape needs {n * dt.itemsize} "
                f"({n} {dt.name} values): the record is damaged"
            )
        block = np.frombuffer(buf, dtype=dt, count=n)
        out.append(_exact_cast(block.astype(dt.newbyteorder("="), copy=False), dtype, member))
    return out


def record_to_pixels(records: pa.StructArray, row: int = 0, *, where: str = "record") -> tuple[ImageMeta, np.ndarray]:
    """Decode record ``row`` into (meta, ``TZCYX`` array) with the declared dtype.

    Every pixel must be written exactly once by the planes or chunks, each holding exactly
    the values its shape needs; otherwise DamagedFileError names ``where`` and the member.
    A record with 3 or 4 interleaved samples per pixel in one claimed channel decodes them
    as channels (see :mod:`.samples`).
    """
    claimed = _claimed_meta(records, row)
    chunks = _row_items(records, "chunks", row)
    planes = _row_items(records, "planes", row)
    k = interleaved_samples(claimed, planes, chunks)
    if k == 1:
        return claimed, _both(claimed, planes, chunks, where)
    T, Z, _, Y, X = claimed.shape
    wide = _both(claimed.with_sizes(X=X * k), planes, chunks, where, samples=k)  # (T, Z, 1, Y, X * k)
    meta = as_sample_channels(claimed, k)
    out, buf = arrow_empty(meta.shape, meta.dtype)
    out[...] = wide.reshape(T, Z, Y, X, k).transpose(0, 1, 4, 2, 3)
    return meta, view_buffer(buf, meta.dtype, meta.shape)


def _both(
    meta: ImageMeta, planes: pa.StructArray | None, chunks: pa.StructArray | None, where: str, samples: int = 1
) -> np.ndarray:
    """:func:`_decode` of the chunks (else the planes); a record holding its pixels twice, in chunks and in planes
    (as ome-arrow 0.1.0 writes them, with no checksum), must hold the same pixels in both: DamagedFileError if not."""
    out = _decode(meta, planes, chunks, where, samples)
    if chunks is not None and planes is not None:
        second = _decode(meta, planes, None, where, samples)
        if not np.array_equal(second.view(np.uint8), out.view(np.uint8)):  # bit for bit (NaN payloads too)
            raise DamagedFileError(
                f"{where}: the record's chunks and planes, two copies of its pixels, hold different values: the "
                "file is damaged (no checksum tells which copy is right)"
            )
    return out


def _decode(
    meta: ImageMeta, planes: pa.StructArray | None, chunks: pa.StructArray | None, where: str, samples: int = 1
) -> np.ndarray:
    """The ``TZCYX`` pixels ``meta`` declares, placed from ``planes`` or ``chunks``.

    ``samples`` > 1: ``meta`` is the record widened to ``X * samples`` (interleaved samples side by
    side), so a chunk at ``x`` of width ``w`` covers ``x * samples`` to ``(x + w) * samples``.
    """
    T, Z, C, Y, X = meta.shape
    sizes = [T, C, Z, Y, X]
    try:
        check_record_sizes(meta, planes, chunks, samples=samples)  # before the output is allocated
    except DamagedFileError as exc:
        raise DamagedFileError(f"{where}: {exc}") from None
    if chunks is not None:
        member = f"{where} chunks"
        origin = np.stack([_ints(chunks, a) for a in "tczyx"], axis=1)
        shape = np.stack([_ints(chunks, f"shape_{a}", 1) for a in "tczyx"], axis=1)
        origin[:, 4] *= samples
        shape[:, 4] *= samples
        covered, need = int(shape.prod(axis=1).sum()), T * Z * C * Y * X
        if covered < need:  # a missing chunk would read as whatever memory held before
            raise DamagedFileError(f"{member}: the record's chunks cover {covered} pixels; its sizes need {need}")
        check_coverage(origin, shape, sizes, member, unit="chunk")
        counts = shape.prod(axis=1)
        if chunks.type.get_field_index("pixel_bytes") >= 0:
            blocks = _byte_blocks(chunks, meta.dtype, counts, member)
        else:
            blocks = _list_values(chunks, meta.dtype, counts, member)
        out, buf = arrow_empty(meta.shape, meta.dtype)
        for (t, c, z, y, x), (st, sc, sz, sy, sx), block in zip(origin.tolist(), shape.tolist(), blocks):
            out[t : t + st, z : z + sz, c : c + sc, y : y + sy, x : x + sx] = block.reshape(
                st, sc, sz, sy, sx
            ).transpose(0, 2, 1, 3, 4)
    elif planes is not None:
        member = f"{where} planes"
        n = len(planes)
        origin = np.stack(
            [_ints(planes, "t"), _ints(planes, "c"), _ints(planes, "z"), np.zeros(n, np.int64), np.zeros(n, np.int64)],
            axis=1,
        )
        values = int(planes.field("pixels").offsets[-1].as_py() - planes.field("pixels").offsets[0].as_py())
        if values != n * Y * X:
            raise DamagedFileError(f"{member}: planes hold {values} values; expected {n} planes of {Y}x{X}")
        for ax, k, size in (("t", 0, T), ("c", 1, C), ("z", 2, Z)):
            if ((origin[:, k] < 0) | (origin[:, k] >= size)).any():
                raise DamagedFileError(f"{member}: a plane has {ax} outside 0..{size - 1}")
        try:
            check_coverage(
                origin, np.tile(np.array([1, 1, 1, Y, X], dtype=np.int64), (n, 1)), sizes, member, unit="plane"
            )
        except DamagedFileError as exc:
            if getattr(exc, "writers", 1) != 0:
                raise
            t0, c0, z0 = exc.pixel[:3]  # type: ignore[attr-defined]
            raise DamagedFileError(
                f"{member}: record has {n} planes but none for t={t0}, z={z0}, c={c0}; expected all {T * Z * C} (T*Z*C)"
            ) from None
        flat = np.concatenate(_list_values(planes, meta.dtype, np.full(n, Y * X, dtype=np.int64), member))
        out, buf = arrow_empty(meta.shape, meta.dtype)
        out[origin[:, 0], origin[:, 2], origin[:, 1]] = flat.reshape(n, Y, X)
    else:
        raise SchemaError(f"{where}: OME-Arrow record has no planes and no chunks: there are no pixels")
    return view_buffer(buf, meta.dtype, meta.shape)


def plane_list(pixels: np.ndarray, ptype: pa.DataType, list_type: pa.ListType) -> pa.ListArray:
    """A record's ``planes`` (of ``list_type``): one list of an item (z, t, c, pixels as ``ptype``) per plane of
    ``pixels`` (TZCYX), listed t, then z, then c."""
    T, Z, C, Y, X = pixels.shape
    n = T * Z * C
    values = pa.array(np.ascontiguousarray(pixels).reshape(-1), type=ptype)
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * (Y * X))
    tt, zz, cc = np.meshgrid(np.arange(T), np.arange(Z), np.arange(C), indexing="ij")
    items = pa.StructArray.from_arrays(
        [
            pa.array(zz.reshape(-1).astype(np.int32)),
            pa.array(tt.reshape(-1).astype(np.int32)),
            pa.array(cc.reshape(-1).astype(np.int16)),
            pa.ListArray.from_arrays(offsets, values),
        ],
        fields=list(list_type.value_type),
    )
    return pa.ListArray.from_arrays(pa.array([0, n], type=pa.int32()), items, type=list_type)


def pixels_to_record(meta: ImageMeta, pixels: np.ndarray, *, pixel_type: pa.DataType | None = None) -> pa.StructArray:
    """A one-row OME-Arrow StructArray holding ``pixels`` (``TZCYX``) as planes.

    ``pixel_type`` defaults to the pixels' own type; pass ``pa.uint16()`` for the public
    format's exact schema (only when the values are uint16).
    """
    ptype = pixel_type or pa.from_numpy_dtype(pixels.dtype)
    stype = ome_arrow_struct(ptype)
    planes = plane_list(pixels, ptype, stype.field("planes").type)
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
