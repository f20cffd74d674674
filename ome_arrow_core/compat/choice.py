"""Chunk-shape presets for typed-chunk datasets (the reference's ``choose_chunking``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import ArgumentError

__all__ = ["AccessPattern", "ChunkChoice", "Layout", "choose_chunking"]

Layout = Literal["auto", "image", "tile", "volume", "z-plane", "block", "hybrid"]
AccessPattern = Literal[
    "balanced",
    "full_image",
    "random_image",
    "crop_2d",
    "fast_crop_2d",
    "full_volume",
    "plane_3d",
    "subvolume_3d",
    "balanced_5d",
    "time_series",
]

_LAYOUT_OF = {
    "balanced": "block",
    "full_image": "image",
    "random_image": "image",
    "crop_2d": "tile",
    "fast_crop_2d": "tile",
    "full_volume": "volume",
    "plane_3d": "z-plane",
    "subvolume_3d": "block",
    "balanced_5d": "block",
    "time_series": "block",
}
#: (z, y, x) caps of a block chunk per access pattern.
_BLOCK = {"time_series": (8, 256, 256), "balanced_5d": (16, 256, 256)}


@dataclass(frozen=True)
class ChunkChoice:
    """A layout, a TCZYX chunk shape, a compression and why."""

    layout: str
    chunk_shape: tuple[int, int, int, int, int]
    compression: str | None
    rationale: str


def _preset(layout: str, pattern: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    _, _, z, y, x = shape
    if layout in ("image", "hybrid"):
        return shape
    if layout == "volume":
        return (1, 1, z, y, x)
    if layout == "z-plane":
        return (1, 1, 1, y, x)
    if layout == "tile":
        side = 256 if pattern == "fast_crop_2d" else 512
        return (1, 1, 1, min(y, side), min(x, side))
    bz, by, bx = _BLOCK.get(pattern, (16, 128, 128))
    return (1, 1, min(z, bz), min(y, by), min(x, bx))


def choose_chunking(
    shape: Sequence[int],
    dtype: Any,
    *,
    layout: Layout = "auto",
    access_pattern: AccessPattern = "balanced",
    target_chunk_mb: float = 4.0,
    compression: str | None = "zstd",
    chunk_shape: Sequence[int] | None = None,
) -> ChunkChoice:
    """A chunking for a TCZYX image: explicit ``chunk_shape``, else the layout's (or access pattern's) preset,
    with Y and X scaled down so a tile or block chunk stays under ``target_chunk_mb``."""
    if len(shape) != 5 or min(int(v) for v in shape) <= 0:
        raise ArgumentError(f"shape must be five positive TCZYX sizes, got {tuple(shape)!r}")
    try:
        target = float(target_chunk_mb)
    except (TypeError, ValueError):
        target = math.nan
    if not target > 0:
        raise ArgumentError(f"target_chunk_mb must be > 0 (it bounds the chunk size_mb), got {target_chunk_mb!r}")
    if access_pattern not in _LAYOUT_OF:
        raise ArgumentError(f"unknown access_pattern {access_pattern!r}; expected one of {sorted(_LAYOUT_OF)}")
    sizes = tuple(int(v) for v in shape)
    resolved = _LAYOUT_OF[access_pattern] if layout == "auto" else str(layout)
    if chunk_shape is not None:
        if len(chunk_shape) != 5:
            raise ArgumentError("chunk_shape must be five TCZYX sizes")
        chunk = tuple(max(1, min(int(v), n)) for v, n in zip(chunk_shape, sizes))
    else:
        chunk = tuple(max(1, min(v, n)) for v, n in zip(_preset(resolved, access_pattern, sizes), sizes))
    item = np.dtype(dtype).itemsize
    size_mb = float(np.prod(chunk)) * item / 2**20
    if chunk_shape is None and size_mb > target and resolved not in ("image", "volume", "z-plane"):
        scale = math.sqrt(target / size_mb)
        chunk = (*chunk[:3], max(1, int(chunk[3] * scale)), max(1, int(chunk[4] * scale)))
        size_mb = float(np.prod(chunk)) * item / 2**20
    why = (
        f'Selected layout="{resolved}", chunk_shape={chunk}, compression={compression!r} because '
        f"dtype={np.dtype(dtype).name}, estimated chunk size is {size_mb:.3g} MB, and "
        f'access_pattern="{access_pattern}".'
    )
    return ChunkChoice(resolved, chunk, compression, why)  # type: ignore[arg-type]
