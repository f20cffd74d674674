"""Stamping an OME-TIFF just written with the checksums of its strips and tiles (see :mod:`.integrity`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .axes import AxisMap
from .damage import ome_root
from .integrity import annotate, page_checksums
from .readback import plane_change

__all__ = ["add_checksums"]


def add_checksums(
    path: Path, edit: Callable[[str], str] | None = None, expected: Callable[[int, int], np.ndarray] | None = None
) -> str | None:
    """Read back the OME-TIFF at ``path`` (one TZCYX image, one plane a page) and store its checksums.

    ``edit`` changes the OME-XML tifffile wrote (before the annotation is added), in the same rewrite.
    ``expected``, when given, gives each page's plane (``expected(level, page)``): the first page that does not
    read back as its plane bit for bit is returned, in words, and nothing is stored (None: all did, checksums
    stored).

    Every level's pages are decoded segment by segment, as the reader decodes them; the
    annotation goes into the first page's ImageDescription (tifffile moves it to the end of
    the file when it grows; strips and tiles stay where they are).
    """
    import tifffile

    with tifffile.TiffFile(path) as tif:
        root = ome_root(tif)
        base = tif.series[0]
        if root is None or base.kind != "ome" or len(tif.series) != 1 or not root.get("UUID"):
            raise ValueError(f"{path} was not written as one OME image; cannot store its checksums")
        levels: list[tuple[dict[str, int], list[list[int]]]] = []
        for series in base.levels:
            axes = AxisMap.from_series(series.axes, series.shape, math.prod(series.keyframe.shape))
            if axes.page_axes != "YX":
                raise ValueError(f"{path}: pages of axes {axes.page_axes!r}, expected single planes")
            sums = []
            for p in range(axes.n_pages):
                page_sums, decoded = page_checksums(series[p])
                change = None if expected is None else plane_change(decoded, expected(len(levels), p))
                if change is not None:
                    where = f" of pyramid level {len(levels)}" if levels else ""
                    return f"page {p}{where}: {change}"
                sums.append(page_sums)
            levels.append((axes.sizes, sums))
        written = str(tif.ome_metadata)
        xml = annotate(edit(written) if edit else written, 0, str(root.get("UUID")), base.dtype.name, levels)
    tifffile.tiffcomment(path, xml.encode("utf-8"))
    return None
