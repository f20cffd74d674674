"""Strips and tiles: where each lies in a page, and decoding only those a crop intersects."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

import numpy as np

from ome_arrow_core import BackendUnavailableError

__all__ = ["JPEG", "SegmentCheck", "as_slice", "codec_hint", "read_segments", "segment_geometry", "span"]

#: TIFF compressions whose segments need the page's JPEG tables to decode.
JPEG: Final[frozenset[int]] = frozenset({6, 7, 33007, 34892})
#: Called with each decoded segment's index and samples (None when the file stores no bytes for it).
SegmentCheck = Callable[[int, "np.ndarray | None"], None]


def segment_geometry(kf: Any) -> np.ndarray:
    """(index, s, d, y, x, depth, height, width) of every strip or tile of ``kf``'s pages."""
    with kf.parent.filehandle.lock:
        kf.decode  # noqa: B018  (first access builds the decoder; not thread-safe)
    rows = []
    for i in range(math.prod(kf.chunked)):
        _, (s, d, y, x, _), shape = kf.decode(None, i)
        rows.append((i, s, d, y, x, *shape[:3]))
    return np.array(rows, dtype=np.int64).reshape(-1, 8)


def read_segments(
    page: Any,
    geo: np.ndarray,
    crop: tuple[int, int, int, int],
    dtype: np.dtype,
    check: SegmentCheck | None = None,
    prefetch: Callable[[list[tuple[int, int]]], None] | None = None,
) -> tuple[np.ndarray, int, int]:
    """Decode the strips or tiles of ``page`` that intersect ``crop`` = (y0, y1, x0, x1).

    Returns the crop shaped (S, D, Y, X, S), the number of segments read and their stored bytes.
    ``check``, when given, sees every decoded segment before it is used; ``prefetch``, when
    given, gets the segments' byte ranges first (a remote file fetches them merged).
    """
    y0, y1, x0, x1 = crop
    kf = page.keyframe
    _, sy, sx, sh, sw = geo[:, 0], geo[:, 3], geo[:, 4], geo[:, 6], geo[:, 7]
    hit = (sy < y1) & (sy + sh > y0) & (sx < x1) & (sx + sw > x0)
    wanted = [int(i) for i in geo[hit, 0]]
    offsets = [page.dataoffsets[i] for i in wanted]
    counts = [page.databytecounts[i] for i in wanted]
    ss, depth, _, _, sc = kf.shaped
    out = np.empty((ss, depth, y1 - y0, x1 - x0, sc), dtype)
    kwargs = {}
    if kf.compression in JPEG:
        kwargs = {"jpegtables": page.jpegtables, "jpegheader": kf.jpegheader}
    if prefetch is not None:
        prefetch([(o, o + n) for o, n in zip(offsets, counts) if o and n])
    fh = page.parent.filehandle
    for data, i in fh.read_segments(offsets, counts, indices=wanted, lock=fh.lock, sort=True):
        seg, (s, d, y, x, _), shape = kf.decode(data, i, **kwargs)
        if check is not None:
            check(i, seg)
        dd = min(shape[0], depth - d)
        ra, rb = max(y, y0), min(y + shape[1], y1, kf.imagelength)
        ca, cb = max(x, x0), min(x + shape[2], x1, kf.imagewidth)
        dst = out[s, d : d + dd, ra - y0 : rb - y0, ca - x0 : cb - x0]
        dst[...] = kf.nodata if seg is None else seg[:dd, ra - y : rb - y, ca - x : cb - x]
    return out, len(wanted), int(sum(counts))


@contextmanager
def codec_hint() -> Iterator[None]:
    """Turn tifffile's 'requires imagecodecs' failures into BackendUnavailableError."""
    try:
        yield
    except (ValueError, KeyError, ImportError) as exc:
        if "imagecodecs" not in str(exc):
            raise
        raise BackendUnavailableError(
            f"decoding this TIFF needs the imagecodecs package ({exc}); install it with: pip install imagecodecs"
        ) from exc


def as_slice(r: range) -> slice:
    """The slice that picks ``r`` from its axis."""
    return slice(r.start, r.stop if r.stop >= 0 else None, r.step)


def span(r: range) -> tuple[int, int, slice]:
    """Bounding ``[lo, hi)`` of a non-empty range and the slice that picks it from there."""
    lo, hi = min(r[0], r[-1]), max(r[0], r[-1]) + 1
    stop = r.stop - lo
    return lo, hi, slice(r.start - lo, stop if stop >= 0 else None, r.step)
