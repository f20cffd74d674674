"""Record transforms under the reference's names (``ome_arrow.transform``): ``slice_ome_arrow``.

The crop is decoded and re-encoded by ome-arrow-core, so pixels keep their dtype. A record
missing some of its (t, c, z) planes raises ``DamagedFileError`` instead of being zero-filled
(the reference's ``fill_missing``): a read returns the stored pixels or raises.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import ArgumentError
from .records import RecordSpec, build_record, decode_record, record_array

__all__ = ["slice_ome_arrow"]


def _kept(indices: Iterable[int] | None, size: int, axis: str) -> list[int]:
    """Sorted distinct indices in range (all of ``range(size)`` for None), as the reference keeps them."""
    if indices is None:
        return list(range(size))
    kept = sorted({int(i) for i in indices if 0 <= int(i) < size})
    if not kept:
        raise ArgumentError(f"{axis}_indices keeps no index in 0..{size - 1}; keep at least one index in each of T/C/Z")
    return kept


def _spec(row: Mapping[str, Any], meta: Mapping[str, Any], channels: list[dict[str, Any]]) -> RecordSpec:
    grid = row.get("chunk_grid") or {}
    has_chunks = bool(grid) or bool(row.get("chunks"))
    chunk = (int(grid.get("chunk_z", 1)), int(grid.get("chunk_y", 512)), int(grid.get("chunk_x", 512)))
    acquired = row.get("acquisition_datetime")
    return RecordSpec(
        image_id=str(row.get("id") or "unnamed"),
        name=str(row.get("name") or "unknown"),
        image_type=row.get("image_type"),
        acquisition_datetime=acquired if isinstance(acquired, dt.datetime) else None,
        dimension_order=str(meta.get("dimension_order") or "XYZCT"),
        physical_size=(meta.get("physical_size_x"), meta.get("physical_size_y"), meta.get("physical_size_z")),
        physical_unit=str(meta.get("physical_size_x_unit") or meta.get("physical_size_unit") or "µm"),
        channels=channels,
        chunk_shape=chunk,
        build_chunks=has_chunks,
    )


def slice_ome_arrow(
    data: Mapping[str, Any] | pa.StructScalar,
    x_min: int,
    x_max: int,
    y_min: int,
    y_max: int,
    t_indices: Iterable[int] | None = None,
    c_indices: Iterable[int] | None = None,
    z_indices: Iterable[int] | None = None,
    fill_missing: bool = True,
) -> pa.StructScalar:
    """A cropped copy of a record: ``[y_min:y_max, x_min:x_max]`` and the given T/C/Z indices.

    Bounds are half-open pixels; indices are kept sorted and distinct, out-of-range ones
    dropped, and renumbered from 0 (as in the reference). Channel entries of the kept
    channels follow, their ids renumbered ``ch-<i>``; the chunk grid's shape is kept.
    ``fill_missing`` is accepted and has no effect (incomplete records raise).
    """
    del fill_missing
    arr = record_array(data)
    row = {f.name: arr.field(f.name)[0].as_py() for f in arr.type if f.name not in ("planes", "chunks", "masks")}
    row["chunks"] = len(arr.field("chunks")[0].values or []) if "chunks" in arr.type.names else 0
    meta = row.get("pixels_meta") or {}
    sizes = {ax: int(meta.get(f"size_{ax.lower()}", 1)) for ax in "TCZYX"}
    if not (0 <= x_min < x_max <= sizes["X"] and 0 <= y_min < y_max <= sizes["Y"]):
        raise ArgumentError(
            f"crop bounds out of range: x[{x_min},{x_max}) within [0,{sizes['X']}), "
            f"y[{y_min},{y_max}) within [0,{sizes['Y']}); bounds are half-open pixel indices"
        )
    keep_t = _kept(t_indices, sizes["T"], "t")
    keep_c = _kept(c_indices, sizes["C"], "c")
    keep_z = _kept(z_indices, sizes["Z"], "z")
    pixels = decode_record(arr)  # TCZYX in the stored dtype; checks the record
    crop = pixels[np.ix_(keep_t, keep_c, keep_z)][..., y_min:y_max, x_min:x_max]
    given = list(meta.get("channels") or [])
    if len(given) != sizes["C"]:
        given = [{"id": f"ch-{i}", "name": f"C{i}"} for i in range(sizes["C"])]
    channels = [
        {**given[old], "id": f"ch-{new}", "name": str(given[old].get("name") or f"C{new}")}
        for new, old in enumerate(keep_c)
    ]
    return build_record(np.ascontiguousarray(crop), _spec(row, meta, channels))
