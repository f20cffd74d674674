"""Opening one series and pyramid level of a TIFF file: choosing it, checking it, describing it.

:func:`open_series` picks series ``series`` and level ``level`` of an open ``tifffile.TiffFile``,
maps its axes to TZCYX (see :mod:`.axes`), builds its :class:`ImageMeta` and checks what the
file declares against what tifffile found (see :mod:`.damage`) before a single pixel is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import numpy as np

from ome_arrow_core import DTypeError, ImageMeta, OMEArrowError, SelectionError
from ome_arrow_core.plugin_api import SUPPORTED, DamagedFileError

from .axes import AxisMap, series_axes
from .damage import check_declared, check_last_page
from .levels import check_level, check_level_shape, level_meta
from .metadata import image_meta

__all__ = ["OpenSeries", "open_series"]


@dataclass(frozen=True)
class OpenSeries:
    """One level of one series, checked: what a reader needs to locate and decode its pages.

    ``virtual``: the series is uncompressed and contiguous, its pages read by offset
    (``dataoffset + page * keyframe.nbytes``) without parsing an IFD per page.
    """

    series: Any  # tifffile.TiffPageSeries of the level
    keyframe: Any  # tifffile.TiffPage
    axes: AxisMap
    level: int
    virtual: bool
    dataoffset: int
    file_dtype: np.dtype[Any]
    level_sizes: list[dict[str, int]]
    base_meta: ImageMeta
    meta: ImageMeta


def open_series(tif: Any, index: int, level: object, path: PurePath, size: int) -> OpenSeries:
    """Level ``level`` of series ``index`` of ``tif`` (the file at ``path``, ``size`` bytes long), checked.

    SelectionError for a series or level out of range, DTypeError for a pixel type tifffile
    cannot decode, DamagedFileError when the file's pages or declarations contradict its shape.
    """
    n = len(tif.series)
    if not 0 <= index < n:
        raise SelectionError(
            f"row={index} is out of range: {path.name} holds {n} image series; valid rows are 0..{n - 1}"
        )
    base = tif.series[index]
    k = check_level(level, len(base.levels), path.name)
    s = base.levels[k]
    if s.transform is not None:
        raise OMEArrowError(
            f"{path.name}: tifffile transforms the values of this {s.kind} series; "
            "it cannot be read plane by plane. Read it with tifffile.imread instead."
        )
    kf = s.keyframe
    axes = series_axes(s, path)
    # An uncompressed series stored contiguously is read by offset, as tifffile does,
    # without parsing an IFD per page (some such files have one IFD for the stack).
    virtual = s.dataoffset is not None
    if not virtual and len(s) != axes.n_pages:
        raise OMEArrowError(
            f"{path.name}: series {index} has {len(s)} pages but its "
            f"shape {s.shape} needs {axes.n_pages}, and its data is not contiguous"
        )
    if kf.dtype is None:
        raise DTypeError(
            f"{path.name}: tifffile cannot decode its pixel type (SampleFormat "
            f"{kf.sampleformat}, {kf.bitspersample} bits per sample); supported dtypes "
            f"are {', '.join(SUPPORTED)}"
        )
    dataoffset = int(s.dataoffset or 0)
    base_axes = axes if s is base else series_axes(base, path)
    level_sizes = [axes.sizes if lv is s else series_axes(lv, path).sizes for lv in base.levels]
    try:
        base_meta = image_meta(tif, base, index, base_axes, path.name)
    except DTypeError as exc:
        raise DTypeError(f"{path.name}: {exc}{_convert_hint(path, index, base.dtype, base_axes.targets)}") from exc
    meta = (
        base_meta
        if s is base
        else level_meta(base_meta, axes.sizes, (1, kf.tilelength, kf.tilewidth) if kf.is_tiled else None)
    )
    check_declared(tif, base, index, base_meta.sizes, base_meta.dtype, path)
    check_level_shape(path, k, axes.sizes, s.dtype, base_meta)
    check_last_page(s, path, dataoffset if virtual else None)  # the first page's tags decode them all
    end = dataoffset + axes.n_pages * kf.nbytes
    if virtual and end > size:
        raise DamagedFileError(
            f"{path}: its {axes.n_pages} pages need bytes up to {end} but the file has {size}; the file is truncated"
        )
    return OpenSeries(
        series=s,
        keyframe=kf,
        axes=axes,
        level=k,
        virtual=virtual,
        dataoffset=dataoffset,
        file_dtype=np.dtype(tif.byteorder + kf.dtype.char),
        level_sizes=level_sizes,
        base_meta=base_meta,
        meta=meta,
    )


def _convert_hint(path: PurePath, index: int, dtype: Any, targets: str) -> str:
    """How to read series ``index`` of ``path``, of unsupported ``dtype``, converted by hand (none when its axes
    map to one canonical axis twice, which ``dim_order`` cannot say)."""
    if len(set(targets)) != len(targets):
        return ""
    want = "float32" if np.dtype(dtype).itemsize <= 2 else "float64"
    return (
        f" To read this file, convert its pixels yourself (whole, in memory): OMEArrow(tifffile.imread("
        f"{path.name!r}, series={index}).astype({want!r}), dim_order={targets!r})"
    )
