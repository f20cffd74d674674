"""Stamping an OME-TIFF just written with the checksums of its strips and tiles (see :mod:`.integrity`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from .axes import AxisMap
from .damage import ome_root
from .integrity import annotate, page_checksums

__all__ = ["add_checksums"]


def add_checksums(path: Path, edit: Callable[[str], str] | None = None) -> None:
    """Read back the OME-TIFF at ``path`` (one TZCYX image, one plane a page) and store its checksums.

    ``edit`` changes the OME-XML tifffile wrote (before the annotation is added), in the same rewrite.

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
        levels = []
        for series in base.levels:
            axes = AxisMap.from_series(series.axes, series.shape, math.prod(series.keyframe.shape))
            if axes.page_axes != "YX":
                raise ValueError(f"{path}: pages of axes {axes.page_axes!r}, expected single planes")
            levels.append((axes.sizes, [page_checksums(series[p]) for p in range(axes.n_pages)]))
        written = str(tif.ome_metadata)
        xml = annotate(edit(written) if edit else written, 0, str(root.get("UUID")), base.dtype.name, levels)
    tifffile.tiffcomment(path, xml.encode("utf-8"))
