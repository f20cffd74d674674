"""Record checks and descriptions under the reference's names (``ome_arrow.utils``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

__all__ = ["describe_ome_arrow", "describe_sizes", "image_kind", "verify_ome_arrow"]


def verify_ome_arrow(data: Any, struct: pa.StructType) -> bool:
    """True when ``data`` (a dict or StructScalar) converts to ``struct`` without loss; False otherwise."""
    if isinstance(data, pa.StructScalar):
        return bool(data.type == struct)
    if not isinstance(data, Mapping):
        return False
    try:
        pa.array([{f.name: data.get(f.name) for f in struct}], type=struct)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return False
    return True


def image_kind(t: int, z: int) -> str:
    """The reference's words for an image's extent in T and Z."""
    if t == 1:
        return "2D image" if z == 1 else "3D image (z-stack)"
    return "movie / timelapse" if z == 1 else "4D timelapse-volume"


def describe_ome_arrow(data: pa.StructScalar | Mapping[str, Any]) -> dict[str, Any]:
    """``shape`` (T, C, Z, Y, X), ``type``, ``channels``, ``is_multichannel`` and ``summary`` of a record."""
    pm: Mapping[str, Any]
    if isinstance(data, pa.StructScalar):
        pm = data["pixels_meta"].as_py() or {}
    else:
        pm = data.get("pixels_meta") or {}
    return describe_sizes(*(int(pm.get(f"size_{a}") or 1) for a in "tczyx"))


def describe_sizes(t: int, c: int, z: int, y: int, x: int) -> dict[str, Any]:
    """The reference's description of an image of these sizes."""
    kind = image_kind(t, z)
    chans = f"multi-channel ({c} channels)" if c > 1 else "single-channel"
    return {
        "shape": (t, c, z, y, x),
        "type": kind,
        "channels": c,
        "is_multichannel": c > 1,
        "summary": f"{kind}, {chans} - shape (T={t}, C={c}, Z={z}, Y={y}, X={x})",
    }
