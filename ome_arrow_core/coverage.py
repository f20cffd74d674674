"""Exact coverage: do boxes (chunks, planes) write every pixel of an image exactly once?

A reader fills an uninitialised buffer box by box, so a box listed twice, one missing,
two that overlap or one outside the image would hand out memory nobody wrote (pixels of
an earlier read, even of another file). :func:`check_coverage` proves the boxes tile the
image before anything is read: every box inside the image, and the count of boxes over
each cell of the grid formed by all box edges (per axis) is exactly one. That grid has as
many cells as boxes for a regular chunk grid; a pathological one is refused, not built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np

from .errors import DamagedFileError
from .uniques import unique

__all__ = ["check_coverage", "MAX_CELLS"]

#: Most cells the compressed grid may have beyond 4 per box (a regular grid has about one per box).
MAX_CELLS: Final[int] = 1 << 21


def _box(origin: np.ndarray, shape: np.ndarray, i: int) -> str:
    return f"origin {tuple(origin[i].tolist())} shape {tuple(shape[i].tolist())}"


def check_coverage(
    origin: np.ndarray,
    shape: np.ndarray,
    sizes: Sequence[int],
    where: str,
    axes: str = "TCZYX",
    rows: np.ndarray | None = None,
    unit: str = "chunk row",
) -> None:
    """Raise DamagedFileError unless boxes ``origin``/``shape`` (n, d) cover ``sizes`` exactly once.

    ``where`` names the boxes in messages (file and member); ``rows[i]`` is box ``i``'s row
    number there (default: ``i``), and ``unit`` what a row is.
    """
    origin = np.asarray(origin, dtype=np.int64).reshape(len(origin), len(sizes))
    shape = np.asarray(shape, dtype=np.int64).reshape(origin.shape)
    full = np.asarray(sizes, dtype=np.int64)
    label = np.arange(len(origin)) if rows is None else np.asarray(rows)
    if len(origin) == 0:
        raise DamagedFileError(
            f"{where}: no {unit}s hold the pixels of an image of sizes "
            f"{dict(zip(axes, full.tolist()))}; the file is damaged"
        )
    bad = np.nonzero((shape < 1).any(axis=1))[0]
    if len(bad):
        i = int(bad[0])
        raise DamagedFileError(
            f"{where}: {unit} {int(label[i])} has {_box(origin, shape, i)} ({axes}); "
            "every extent must be at least 1: the file is damaged"
        )
    bad = np.nonzero(((origin < 0) | (origin + shape > full)).any(axis=1))[0]
    if len(bad):
        i = int(bad[0])
        raise DamagedFileError(
            f"{where}: {unit} {int(label[i])} ({_box(origin, shape, i)}, {axes}) lies outside "
            f"the image of sizes {tuple(full.tolist())}; the file is damaged"
        )
    edges = [unique(np.concatenate([[0, n], origin[:, k], origin[:, k] + shape[:, k]])) for k, n in enumerate(full)]
    cells_per_axis = [len(e) - 1 for e in edges]
    grid = [c + 1 for c in cells_per_axis]
    if int(np.prod(grid, dtype=np.float64)) > MAX_CELLS + 4 * len(origin):
        raise DamagedFileError(
            f"{where}: {len(origin)} {unit}s cut the image into "
            f"{int(np.prod(cells_per_axis, dtype=np.float64))} distinct cells, too irregular "
            "a layout to verify; the file is damaged or not written by a known writer"
        )
    lo = np.stack([np.searchsorted(e, origin[:, k]) for k, e in enumerate(edges)], axis=1)
    hi = np.stack([np.searchsorted(e, origin[:, k] + shape[:, k]) for k, e in enumerate(edges)], axis=1)
    if (hi - lo == 1).all():  # every box is one cell (a regular grid): count boxes per cell
        counts = np.bincount(
            np.ravel_multi_index(tuple(lo.T), cells_per_axis), minlength=int(np.prod(cells_per_axis))
        ).reshape(cells_per_axis)
    else:
        counts = _counts(lo, hi, grid)
    wrong = np.argwhere(counts == 0)  # a gap first: it names what is missing
    if not len(wrong):
        wrong = np.argwhere(counts > 1)
    if len(wrong):
        cell = wrong[0]
        pixel = np.array([edges[k][cell[k]] for k in range(len(full))], dtype=np.int64)
        n = int(counts[tuple(cell)])
        spot = ", ".join(f"{a.lower()}={int(v)}" for a, v in zip(axes, pixel))
        if n == 0:
            exc = DamagedFileError(
                f"{where}: no {unit} holds the pixel at {spot}; a {unit} is missing, the file is damaged"
            )
        else:
            over = np.nonzero(((origin <= pixel) & (pixel < origin + shape)).all(axis=1))[0][:2]
            exc = DamagedFileError(
                f"{where}: the pixel at {spot} is written by {n} {unit}s (rows "
                f"{[int(label[i]) for i in over]}{', ...' if n > 2 else ''}); they repeat or "
                "overlap, the file is damaged"
            )
        exc.pixel, exc.writers = tuple(int(v) for v in pixel), n  # type: ignore[attr-defined]
        raise exc


def _counts(lo: np.ndarray, hi: np.ndarray, grid: list[int]) -> np.ndarray:
    """Boxes over each cell of the compressed grid (cells ``lo`` to ``hi`` per box; ``grid``: cells + 1 per axis)."""
    dims = len(grid)
    plus: list[np.ndarray] = []
    minus: list[np.ndarray] = []
    for corner in range(1 << dims):  # a difference array: +1/-1 at the 2^d corners of each box
        pick = [(corner >> k) & 1 for k in range(dims)]
        at = np.ravel_multi_index(tuple(np.where(p, hi[:, k], lo[:, k]) for k, p in enumerate(pick)), grid)
        (minus if sum(pick) % 2 else plus).append(at)
    size = int(np.prod(grid))
    diff: np.ndarray = np.bincount(np.concatenate(plus), minlength=size).astype(np.int64)
    diff -= np.bincount(np.concatenate(minus), minlength=size)
    diff = diff.reshape(grid)
    for k in range(dims):  # the running sums turn corner marks into counts
        np.cumsum(diff, axis=k, out=diff)
    return diff[tuple(slice(0, g - 1) for g in grid)]
