"""Sorted distinct values of an array, as ``numpy.unique`` gives them, without its first-call cost.

``np.unique(a)`` (no indices, no counts) imports ``numpy.ma`` on its first call (~35 ms of a
fresh process's first read) to ask whether ``a`` is masked; ours never are.
"""

from __future__ import annotations

import numpy as np

__all__ = ["unique"]


def unique(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values of ``values`` (flattened), as ``np.unique(values)`` for integer and bool arrays."""
    a = np.sort(np.asarray(values).ravel())
    if a.dtype.kind not in "biu":  # floats (NaN), strings, objects: numpy's own
        return np.unique(a)
    keep = np.empty(a.shape, dtype=bool)
    keep[:1] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]
