"""Records whose pixel lists hold 3 or 4 interleaved samples per pixel while claiming one channel.

Composite (RGB, RGBA) image columns of CytoDataFrame tables are such records: ``size_c`` is 1
but each plane's ``pixels`` list holds ``3 * Y * X`` values, ``r, g, b`` for each pixel in turn.
They read as 3 or 4 channels (named R, G, B[, A]), with :data:`~ome_arrow_core.meta.SAMPLES_NOTE`
in the metadata's notes. Only an exact multiple counts: every plane or chunk must hold exactly
3 (or 4) times the values its shape needs; anything else is left for the size checks to refuse.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

import numpy as np
import pyarrow as pa

from ..arrow_numpy import int_column, int_values
from ..meta import SAMPLES_NOTE, ImageMeta, sample_channels

__all__ = ["SAMPLE_COUNTS", "interleaved_samples", "as_sample_channels"]

#: Samples per pixel read as channels: RGB and RGBA.
SAMPLE_COUNTS: Final[tuple[int, ...]] = (3, 4)


def _counts(items: pa.StructArray) -> np.ndarray:
    """Values in each item's ``pixels`` list (from the offsets alone)."""
    return np.diff(int_values(items.field("pixels").offsets).astype(np.int64))  # np.asarray would import pandas


def _declared(items: pa.StructArray, chunked: bool, meta: ImageMeta) -> np.ndarray:
    """Pixels each plane (Y*X) or chunk (its shape's product, absent extents 1) holds."""
    if not chunked:
        return np.full(len(items), meta.sizes["Y"] * meta.sizes["X"], dtype=np.int64)
    out = np.ones(len(items), dtype=np.int64)
    for a in "tczyx":
        if items.type.get_field_index(f"shape_{a}") >= 0:
            out *= int_column(items.field(f"shape_{a}"))
    return out


def interleaved_samples(meta: ImageMeta, planes: pa.StructArray | None, chunks: pa.StructArray | None) -> int:
    """3 or 4 when ``meta`` claims one channel and every plane or chunk list holds exactly that many
    values per pixel; 1 otherwise (typed ``pixel_bytes`` chunks are always 1)."""
    items, chunked = (chunks, True) if chunks is not None else (planes, False)
    if meta.sizes["C"] != 1 or items is None or len(items) == 0 or items.type.get_field_index("pixels") < 0:
        return 1
    if items.type.get_field_index("pixel_bytes") >= 0:
        return 1
    counts, declared = _counts(items), _declared(items, chunked, meta)
    if (declared < 1).any() or (counts == declared).all():
        return 1
    for k in SAMPLE_COUNTS:
        if (counts == k * declared).all():
            return k
    return 1


def as_sample_channels(meta: ImageMeta, samples: int) -> ImageMeta:
    """``meta`` (one channel) with its ``samples`` samples per pixel as channels, and the note saying so."""
    if samples == 1:
        return meta
    return replace(
        meta,
        sizes={**meta.sizes, "C": samples},
        channels=sample_channels(samples, meta.channels),
        notes=(*meta.notes, SAMPLES_NOTE),
    )
