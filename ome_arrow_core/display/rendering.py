"""Rendering an image's selection to an RGB thumbnail: max over Z, channel composite, auto-contrast.

Steps (each documented where it lives):

1. One T index of the selection (the first unless ``t=`` says otherwise).
2. Downsampling: every ``step``-th row and column is kept, ``step`` the largest integer that
   keeps the longer side at least ``size``; nearest-neighbour sampling then brings the longer
   side to exactly ``size`` (smaller images keep their size: nothing is enlarged). Z planes are
   read in batches, whole storage chunks deep, folded into a running maximum (NaN ignored): each
   plane is read once and memory stays at one batch of :data:`BATCH_BYTES`. Where whole planes
   fit that budget they are read whole and strided in memory (a storage chunk is decoded whole
   anyway, and contiguous reads are the fastest); larger planes are read strided (only every
   ``step``-th row and column: under twice the pixels shown per side).
3. Per-channel robust contrast (:mod:`.contrast`) and additive composite with each channel's
   colour (:mod:`.colors`), clipped to [0, 1] and rounded to 8 bits.
"""

from __future__ import annotations

import math

import numpy as np

from ..arguments import whole_number
from ..errors import ArgumentError, PluginError
from ..handlers import PixelSource
from ..selection import Selection, normalize_index
from .colors import channel_colors
from .contrast import PERCENTILES, scale
from .subjects import DEFAULT_SIZE

__all__ = [
    "DEFAULT_SIZE",
    "BATCH_BYTES",
    "check_size",
    "stride",
    "target_shape",
    "fit",
    "project",
    "composite",
    "render",
]

#: Bytes one batch of Z planes may hold as read (fewer, larger reads; bounded memory).
BATCH_BYTES = 32 << 20


def check_size(size: object) -> int:
    """``size=`` as a positive int; ArgumentError otherwise."""
    n = whole_number(size, "size=")
    if n < 1:
        raise ArgumentError(f"size={size!r} must be a whole number of pixels >= 1 (the longest side)")
    return n


def stride(sel: Selection, size: int) -> int:
    """The largest row and column step that keeps the selection's longer side at least ``size`` (1 if shorter)."""
    return max(1, max(len(sel.y), len(sel.x)) // size)


def target_shape(sel: Selection, size: int) -> tuple[int, int]:
    """(h, w) of the thumbnail: the selection's Y and X scaled so the longer is ``size`` (unchanged when shorter)."""
    h, w = len(sel.y), len(sel.x)
    longest = max(h, w)
    if longest <= size:
        return h, w
    return max(1, math.floor(h * size / longest + 0.5)), max(1, math.floor(w * size / longest + 0.5))


def fit(planes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``(C, h, w)`` planes sampled (nearest pixel) to ``shape`` (never larger than theirs); as they are if equal."""
    h, w = planes.shape[1:]
    if (h, w) == tuple(shape):
        return planes
    picks = [np.minimum(((np.arange(m) + 0.5) * n / m).astype(np.int64), n - 1) for m, n in zip(shape, (h, w))]
    return planes[:, picks[0][:, None], picks[1][None, :]]


def project(source: PixelSource, sel: Selection, t: int = 0, step: int = 1) -> np.ndarray:
    """A ``(C, h, w)`` max projection over the selection's Z at its ``t``-th T index, every ``step``-th
    row and column (see the module docs for how it is read)."""
    ti = normalize_index(whole_number(t, "t="), len(sel.t), "t")[0]
    tt = sel.t[ti]
    chunk = source.meta.chunk_shape
    depth = max(1, int(chunk[0])) if chunk else 1
    itemsize = len(sel.c) * source.meta.dtype.itemsize
    whole = depth * len(sel.y) * len(sel.x) * itemsize <= BATCH_BYTES  # whole planes fit: read them, stride here
    y, x = (sel.y, sel.x) if whole else (sel.y[::step], sel.x[::step])
    batch = depth * max(1, BATCH_BYTES // max(1, depth * len(y) * len(x) * itemsize))
    out: np.ndarray | None = None
    for k in range(0, len(sel.z), batch):
        part = Selection(t=range(tt, tt + 1), z=sel.z[k : k + batch], c=sel.c, y=y, x=x)
        pixels = np.asarray(source.read(part))
        if pixels.shape != part.shape:
            raise PluginError(f"the pixel source returned shape {pixels.shape} for {part} (expected {part.shape})")
        planes = pixels[0, :, :, ::step, ::step] if whole else pixels[0]
        if planes.dtype.kind == "f":
            top = np.fmax.reduce(planes, axis=0)
            out = top if out is None else np.fmax(out, top)
        else:
            top = planes.max(axis=0)
            out = top if out is None else np.maximum(out, top)
    assert out is not None  # a selection has at least one Z index
    return out


def composite(planes: np.ndarray, colors: np.ndarray, percentiles: tuple[float, float] = PERCENTILES) -> np.ndarray:
    """``(C, h, w)`` planes scaled each by robust contrast and added in ``colors`` (``(C, 3)``): ``(h, w, 3)`` uint8."""
    rgb = np.zeros((*planes.shape[1:], 3), dtype=np.float32)
    for plane, color in zip(planes, colors, strict=True):
        rgb += scale(plane, percentiles)[:, :, None] * color[None, None, :]
    return np.rint(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def render(
    source: PixelSource,
    sel: Selection,
    *,
    size: int = DEFAULT_SIZE,
    t: int = 0,
    percentiles: tuple[float, float] = PERCENTILES,
) -> np.ndarray:
    """The selection ``sel`` of ``source`` as an ``(h, w, 3)`` uint8 RGB thumbnail (see the module docs)."""
    n = check_size(size)
    planes = fit(project(source, sel, t, stride(sel, n)), target_shape(sel, n))
    channels = [source.meta.channels[c] for c in sel.c]
    return composite(planes, channel_colors(channels), percentiles)
