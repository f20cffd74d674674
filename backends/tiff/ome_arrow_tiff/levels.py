"""Pyramid levels: choosing one on read, describing them, and making them on write.

tifffile groups a file's resolution levels under ``series.levels`` (level 0 is the series
itself): OME-TIFF SubIFDs, reduced-resolution pages or series, SVS/NDPI pyramids. A reader
opens one level (``level=``, default 0); its physical pixel sizes are level 0's scaled by the
ratio of the sizes (a level half as wide has pixels twice as wide).

Writing makes each level from the previous one by :func:`downsample`: the mean of each 2x2
block of Y/X (T, Z and C are kept), rounded half up for integers, a block counting as ``True``
for booleans when at least two of its pixels are; an odd last row or column averages the
pixels it has, so a level is ``ceil(n / 2)`` pixels long.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import PurePath
from typing import Any

import numpy as np

from ome_arrow_core import ImageMeta, SelectionError
from ome_arrow_core.plugin_api import ArgumentError, DamagedFileError

__all__ = ["check_level", "check_level_shape", "check_levels", "describe_levels", "downsample", "level_meta"]


def check_level(level: object, count: int, name: str) -> int:
    """``level=`` as an int in ``0..count - 1`` (ArgumentError when not an integer, SelectionError out of range)."""
    if isinstance(level, (bool, np.bool_)) or not isinstance(level, (int, np.integer)):
        raise ArgumentError(f"level= must be an integer, got {level!r} ({type(level).__name__})")
    k = int(level)
    if not 0 <= k < count:
        raise SelectionError(
            f"level={k} is out of range: {name} has {count} resolution level(s); valid levels are 0..{count - 1}"
        )
    return k


def check_level_shape(path: PurePath, level: int, sizes: Mapping[str, int], dtype: np.dtype, base: ImageMeta) -> None:
    """Refuse pyramid level ``level`` (``sizes``, ``dtype``) when its T, Z, C or dtype differ from level 0's
    (``base``), or it is not level 0 reduced by one factor in Y and X (as tifffile's own pyramid detection requires)."""
    base_sizes = base.sizes
    if any(sizes[a] != base_sizes[a] for a in "TZC") or dtype != base.dtype:
        raise DamagedFileError(
            f"{path}: pyramid level {level} holds TZC {[sizes[a] for a in 'TZC']} "
            f"{dtype} but level 0 holds {[base_sizes[a] for a in 'TZC']} {base.dtype}; "
            "the file's pyramid is damaged or not one image"
        )
    ny, nx = sizes["Y"], sizes["X"]
    factors = (base_sizes["Y"] / ny, base_sizes["X"] / nx)
    if level and not any(
        f >= 1 and abs(ny - base_sizes["Y"] / f) < 1 and abs(nx - base_sizes["X"] / f) < 1 for f in factors
    ):
        raise DamagedFileError(
            f"{path}: pyramid level {level} is {ny}x{nx}, not level 0 ({base_sizes['Y']}x{base_sizes['X']}) "
            "reduced by one factor in Y and X; the file's tags are damaged"
        )


def level_meta(base: ImageMeta, sizes: Mapping[str, int], chunk: tuple[int, int, int] | None) -> ImageMeta:
    """``base`` (level 0's metadata) for a level of ``sizes``: physical sizes scaled by the size ratio."""
    phys = dict(base.physical_size)
    for ax in "XYZ":
        size = phys.get(ax)
        if size is not None and sizes[ax] != base.sizes[ax]:
            phys[ax] = size * _factor(base.sizes[ax], sizes[ax])
    stored = base.ome_xml if dict(sizes) == dict(base.sizes) else None  # the stored OME-XML describes level 0
    return replace(base, sizes=dict(sizes), physical_size=phys, chunk_shape=chunk, ome_xml=stored)


def _factor(n0: int, n: int) -> float:
    """How many level-0 pixels one of ``n`` spans: the integer step when ``n`` is ``n0 / step`` rounded, else the ratio."""
    step = round(n0 / n)
    if step >= 1 and n in (n0 // step, -(-n0 // step)):
        return float(step)
    return n0 / n


def check_levels(levels: object, sizes: Mapping[str, int]) -> int:
    """``levels=`` of the writer: 1 (no pyramid) up to the count that brings Y and X to one pixel."""
    if isinstance(levels, (bool, np.bool_)) or not isinstance(levels, (int, np.integer)):
        raise ArgumentError(f"levels= must be an integer >= 1, got {levels!r}")
    most = 1 + math.ceil(math.log2(max(sizes["Y"], sizes["X"])))
    if not 1 <= int(levels) <= most:
        raise ArgumentError(
            f"levels={levels} is out of range for a {sizes['Y']}x{sizes['X']} image: 1 (no pyramid) up to {most} "
            "(each level halves Y and X, the last is 1x1)"
        )
    return int(levels)


def downsample(arr: np.ndarray) -> np.ndarray:
    """``arr`` (..., Y, X) halved in Y and X: the mean of each 2x2 block (see the module docstring)."""
    if arr.shape[-1] % 2 or arr.shape[-2] % 2:  # odd edge: repeat it, so its blocks average what they have
        pad = [(0, 0)] * (arr.ndim - 2) + [(0, arr.shape[-2] % 2), (0, arr.shape[-1] % 2)]
        arr = np.pad(arr, pad, mode="edge")
    a, b, c, d = (arr[..., i::2, j::2] for i in (0, 1) for j in (0, 1))
    if arr.dtype == np.bool_:
        out: np.ndarray = (a.astype(np.uint8) + b + c + d) >= 2
        return out
    if arr.dtype.kind == "f":
        wide: np.ndarray = (a.astype(np.float64) + b + c + d) / 4
        return wide.astype(arr.dtype)
    # integers: floor(sum / 4) and the remainder, both without overflow in the array's own dtype
    quarters = (a >> 2) + (b >> 2) + (c >> 2) + (d >> 2)
    rest = (a & 3) + (b & 3) + (c & 3) + (d & 3)
    mean: np.ndarray = quarters + ((rest + 2) >> 2)
    return mean.astype(arr.dtype)


def describe_levels(sizes: Sequence[Mapping[str, int]], base: ImageMeta) -> list[dict[str, Any]]:
    """``info()``'s ``levels``: each level's index, TZCYX shape and physical pixel sizes."""
    return [
        {"level": k, "shape": [int(s[a]) for a in "TZCYX"], "scale": dict(level_meta(base, s, None).physical_size)}
        for k, s in enumerate(sizes)
    ]
