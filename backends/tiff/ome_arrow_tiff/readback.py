"""Reading back a TIFF just written: do its pixels hold the image's values bit for bit?

A codec may change pixels (JPEG, WebP, JPEG XR, ... unless in a lossless mode), so the writer decodes
every page of the temporary it wrote and compares it with the plane it came from before the file
replaces the target. An OME-TIFF is compared while its checksums are computed (the same decode, see
:mod:`.stamp`); a plain TIFF by :func:`plain_change`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["plane_change", "plain_change"]


def plane_change(got: np.ndarray | None, want: np.ndarray) -> str | None:
    """None when ``got`` (a decoded page) holds ``want`` (a YX plane) bit for bit, else how they differ."""
    if got is None:
        return "it holds no pixels"
    if got.size != want.size:
        return f"it holds {got.size} pixels, not {want.size}"
    if got.dtype.kind != want.dtype.kind or got.dtype.itemsize != want.dtype.itemsize:
        return f"it reads as {got.dtype}, not {want.dtype}"
    native = want.dtype.newbyteorder("=")
    a = np.ascontiguousarray(got.reshape(want.shape), native)
    b = np.ascontiguousarray(want, native)
    same = np.dtype(f"u{want.dtype.itemsize}")  # bits compared (NaN payloads, -0.0), a word at a time
    if np.array_equal(a.view(same), b.view(same)):
        return None
    changed = (a.view(np.uint8).reshape(*a.shape, -1) != b.view(np.uint8).reshape(*b.shape, -1)).any(axis=-1)
    text = f"{int(changed.sum())} of {want.size} pixels changed"
    if want.dtype.kind in "iuf":
        with np.errstate(invalid="ignore", over="ignore"):
            delta = np.abs(a[changed].astype(np.float64) - b[changed].astype(np.float64))
        if np.isfinite(delta).any():
            text += f", by up to {float(np.nanmax(np.where(np.isfinite(delta), delta, np.nan))):g}"
    return text


def plain_change(path: Path, expected: Callable[[int, int], np.ndarray], pages: int) -> str | None:
    """None when the plain TIFF at ``path`` (one TZCYX series, one plane a page) holds its ``pages`` planes
    (``expected(0, page)``), else how its first changed page differs."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        for p in range(pages):
            page = series[p]
            change = plane_change(None if page is None else page.asarray(), expected(0, p))
            if change is not None:
                return f"page {p}: {change}"
    return None
