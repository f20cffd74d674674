"""Sorted distinct values of an array, as ``numpy.unique`` gives them, without its first-call cost.

``np.unique(a)`` imports ``numpy.ma`` on its first call (~35 ms of a fresh process's first
read) to ask whether ``a`` is masked; ours never are. ``unique_first`` and ``unique_counts``
give ``return_index=True`` and ``return_counts=True`` the same way.
"""

from __future__ import annotations

import numpy as np

__all__ = ["unique", "unique_counts", "unique_first", "unique_inverse"]


def _starts(sorted_values: np.ndarray) -> np.ndarray:
    """Mask of the first element of each run of equal values in a sorted 1-D array."""
    keep = np.empty(sorted_values.shape, dtype=bool)
    keep[:1] = True
    if sorted_values.dtype.kind == "V":  # raw byte keys: the ufunc has no loop for them, the operator compares bytes
        keep[1:] = sorted_values[1:] != sorted_values[:-1]
    else:
        np.not_equal(sorted_values[1:], sorted_values[:-1], out=keep[1:])
    return keep


def unique(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values of ``values`` (flattened), as ``np.unique(values)`` for integer and bool arrays."""
    a = np.sort(np.asarray(values).ravel())
    if a.dtype.kind not in "biu":  # floats (NaN), strings, objects: numpy's own
        return np.unique(a)
    distinct: np.ndarray = a[_starts(a)]
    return distinct


def unique_first(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values, index of each one's first occurrence), as ``np.unique(values, return_index=True)``."""
    a = np.asarray(values).ravel()
    if a.dtype.kind not in "biu":
        uniq, first = np.unique(a, return_index=True)
        return uniq, first
    order = np.argsort(a, kind="stable")  # equal values keep their order: the first comes first
    s = a[order]
    keep = _starts(s)
    return s[keep], order[keep]


def unique_counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values, how often each occurs), as ``np.unique(values, return_counts=True)``."""
    a = np.asarray(values).ravel()
    if a.dtype.kind not in "biu":
        uniq, counts = np.unique(a, return_counts=True)
        return uniq, counts
    s = np.sort(a)
    starts = np.flatnonzero(_starts(s))
    return s[starts], np.diff(np.append(starts, s.size))


def unique_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sorted distinct values, index of each one's first occurrence, code of each element among them), as
    ``np.unique(values, return_index=True, return_inverse=True)`` for integer, bool and raw-byte (void) arrays."""
    a = np.asarray(values).ravel()
    if a.dtype.kind not in "biuV":
        uniq, first, inverse = np.unique(a, return_index=True, return_inverse=True)
        return uniq, first, inverse.reshape(-1)
    order = np.argsort(a, kind="stable")
    s = a[order]
    keep = _starts(s)
    inverse = np.empty(a.size, dtype=np.intp)
    inverse[order] = np.cumsum(keep) - 1
    return s[keep], order[keep], inverse
