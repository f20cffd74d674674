"""Robust auto-contrast: each channel is scaled between low and high percentiles of its finite values.

The limits are the 0.1st and 99.9th percentiles (:data:`PERCENTILES`) of the channel's finite
pixels in the rendered (projected, downsampled) plane, so a few hot or dead pixels do not set the
range. Pixels map linearly to [0, 1] and are clipped. When the limits coincide (a constant
channel, or one whose pixels are nearly all one value) there is no range to scale: pixels above
that value render at full intensity and the others black, except that a positive value renders
at full intensity too (a constant image is black when it is 0 or less, bright otherwise). NaN
renders black, +inf at full intensity, -inf black; a channel with no finite value is black but
for its +inf pixels.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PERCENTILES", "limits", "scale"]

#: Low and high percentiles that map to black and full intensity.
PERCENTILES = (0.1, 99.9)


def limits(plane: np.ndarray, percentiles: tuple[float, float] = PERCENTILES) -> tuple[float, float] | None:
    """The (low, high) display limits of ``plane``'s finite values; None when it has none."""
    values = plane[np.isfinite(plane)] if plane.dtype.kind == "f" else plane.ravel()
    if values.size == 0:
        return None
    low, high = np.percentile(values, percentiles)
    return float(low), float(high)


def scale(plane: np.ndarray, percentiles: tuple[float, float] = PERCENTILES) -> np.ndarray:
    """``plane`` (any real dtype) as float32 in [0, 1] under robust limits (see the module docs)."""
    data = plane.astype(np.float64, copy=False)
    found = limits(data, percentiles)
    if found is None:
        return np.where(np.isposinf(data), 1.0, 0.0).astype(np.float32)
    low, high = found
    if high <= low:
        out = np.where(data >= low, 1.0, 0.0) if low > 0 else np.where(data > low, 1.0, 0.0)
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            out = (data - low) / (high - low)
    out = np.nan_to_num(out, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(out, 0.0, 1.0).astype(np.float32)
