"""Where each image of a dataset lives (its member, its row there), without an array per image when it can.

A dataset scanned without a filter is its members' rows in order: image ``k`` is row
``k - starts[m]`` of member ``m``, found by a binary search of the members' first rows, so
opening a plate of a million images allocates nothing per image. A selection keeps the
positions it picks (one integer each); a filtered scan keeps explicit arrays.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from ..arguments import IndicesTypeError, check_index

__all__ = ["Positions", "checked_indices"]


def checked_indices(indices: Sequence[int] | np.ndarray | range, n: int, what: str = "select()") -> np.ndarray:
    """``indices`` as int64 positions into ``n`` images (negative ones count from the end), as
    :func:`~ome_arrow_core.arguments.check_index` checks one: a range or an integer array at once. One integer,
    a string or anything not iterable is an :class:`~ome_arrow_core.arguments.IndicesTypeError` naming ``what``."""
    if isinstance(indices, range):
        idx = np.arange(indices.start, indices.stop, indices.step, dtype=np.int64)
        if not len(indices) or (0 <= min(indices[0], indices[-1]) and max(indices[0], indices[-1]) < n):
            return idx  # its ends in [0, n): so is every position (a shard of a million: no mask, no copy)
    elif isinstance(indices, np.ndarray) and indices.ndim == 1 and np.issubdtype(indices.dtype, np.integer):
        idx = indices.astype(np.int64)
    elif isinstance(indices, list) and all(type(i) is int for i in indices):  # a sampler's batch: checked at once
        try:
            idx = np.array(indices, dtype=np.int64)
        except OverflowError:
            return np.array([check_index(i, n) for i in indices], dtype=np.int64)
    else:
        if (
            not isinstance(indices, Iterable)
            or isinstance(indices, (str, bytes))
            or (isinstance(indices, np.ndarray) and indices.ndim == 0)
        ):
            raise IndicesTypeError(
                f"{what} takes a sequence of image indices (a list, a range or a 1-d integer array), got "
                f"{type(indices).__name__} {indices!r:.60}; pass [i] for image i alone, range(k) for the first "
                "k images"
            )
        return np.array([check_index(i, n) for i in indices], dtype=np.int64)
    bad = (idx < -n) | (idx >= n)
    if bad.any():
        check_index(int(idx[np.argmax(bad)]), n)  # raises, naming the first
    return np.where(idx < 0, idx + n, idx)


class Positions:
    """The member and row of each image: implicit (members' first rows, optionally a pick of positions) or explicit."""

    def __init__(
        self,
        starts: np.ndarray | None = None,
        pick: np.ndarray | None = None,
        part_of: np.ndarray | None = None,
        rows: np.ndarray | None = None,
    ) -> None:
        self._starts = None if starts is None else np.asarray(starts, dtype=np.int64)
        self._pick = None if pick is None else np.asarray(pick, dtype=np.int64)
        self._part_of = None if part_of is None else np.asarray(part_of, dtype=np.int32)
        self._rows = None if rows is None else np.asarray(rows, dtype=np.int64)

    @classmethod
    def explicit(cls, part_of: np.ndarray, rows: np.ndarray) -> Positions:
        """One member and one row per image, given."""
        return cls(part_of=part_of, rows=rows)

    @classmethod
    def members(cls, counts: Sequence[int]) -> Positions:
        """Every row of each member in turn (``counts[m]`` rows of member ``m``)."""
        return cls(starts=np.concatenate([[0], np.cumsum(np.asarray(counts, dtype=np.int64))]))

    @property
    def implicit(self) -> bool:
        """True when no array per image of the underlying members is kept."""
        return self._starts is not None

    @property
    def pick(self) -> np.ndarray | None:
        """Positions among the members' rows (None: all of them, in order)."""
        return self._pick

    def __len__(self) -> int:
        if self._starts is None:
            assert self._rows is not None
            return len(self._rows)
        return int(self._starts[-1]) if self._pick is None else len(self._pick)

    def many(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(member, row) of images ``idx`` (valid positions), as arrays."""
        if self._starts is None:
            assert self._part_of is not None and self._rows is not None
            return self._part_of[idx], self._rows[idx]
        flat = idx if self._pick is None else self._pick[idx]
        part = (np.searchsorted(self._starts, flat, side="right") - 1).astype(np.int32)
        return part, flat - self._starts[part]

    def one(self, k: int) -> tuple[int, int]:
        """(member, row) of image ``k`` (a valid position)."""
        if self._starts is None:
            assert self._part_of is not None and self._rows is not None
            return int(self._part_of[k]), int(self._rows[k])
        flat = k if self._pick is None else int(self._pick[k])
        part = int(np.searchsorted(self._starts, flat, side="right")) - 1
        return part, flat - int(self._starts[part])

    def take(self, idx: np.ndarray) -> Positions:
        """The images at positions ``idx`` (valid), in that order."""
        if self._starts is None:
            assert self._part_of is not None and self._rows is not None
            return Positions.explicit(self._part_of[idx], self._rows[idx])
        return Positions(self._starts, idx if self._pick is None else self._pick[idx])

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(member, row) of every image (allocated here for implicit positions)."""
        return self.many(np.arange(len(self), dtype=np.int64))

    def keep(self, kept: list[np.ndarray]) -> np.ndarray:
        """Positions (in order) of the images whose row is among ``kept[m]`` (ascending rows of member ``m``)."""
        if self._starts is not None:
            flat = np.concatenate([self._starts[m] + np.asarray(r, np.int64) for m, r in enumerate(kept)])
            if self._pick is None:
                return flat
            return np.nonzero(np.isin(self._pick, flat))[0]
        part, rows = self.arrays()
        mask = np.zeros(len(rows), dtype=bool)
        for m, r in enumerate(kept):
            mine = part == m
            mask[mine] = np.isin(rows[mine], r)
        return np.nonzero(mask)[0]

    def of_member(self, member: int) -> np.ndarray | None:
        """Rows of member ``member`` (all of them, in order: None when implicit without a pick)."""
        if self._starts is not None and self._pick is None:
            return None
        part, rows = self.arrays()
        mine: np.ndarray = rows[part == member]
        return mine
