"""The index rows of each image of one loaded images row group: who owns each row, and where each image's rows are."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from ..arrow_numpy import int_values
from .bounds import dictionary_codes
from .checks import check_unique

__all__ = ["image_owners", "keyed_owners", "GroupRows"]


def image_owners(ids: pa.Array, images: pa.Array, where: str) -> np.ndarray:
    """The image (its row in ``images``, the image ids of one images row group) of each index row of ``ids`` (their
    image ids, dictionary-encoded), -1 for rows of no image of the group (left by an interrupted write, or lying);
    DamagedFileError when ``where``'s image ids repeat.

    As we write them, the index group's dictionary is the images group's ids in order: then each row's code is its
    image (compared in Arrow); otherwise one lookup per distinct id.
    """
    if (
        pa.types.is_dictionary(ids.type)
        and ids.null_count == 0
        and images.null_count == 0
        and ids.dictionary.type == images.type
        and ids.dictionary.equals(images)
    ):
        if len(images.dictionary_encode().dictionary) != len(images):  # in Arrow: no Python string per id
            check_unique(images, where, "image_id")  # raises, naming the repeated id
        return int_values(ids.indices).astype(np.int64)
    listed = [str(v) for v in images.to_pylist()]
    if len(set(listed)) != len(listed):
        check_unique(images, where, "image_id")  # raises, naming the repeated id
    at = {v: k for k, v in enumerate(listed)}
    distinct, codes = dictionary_codes(ids, "")
    owner_of = np.array([at.get(v, -1) for v in distinct], dtype=np.int64)
    return owner_of[codes] if len(codes) else np.zeros(0, np.int64)


def keyed_owners(
    keys: np.ndarray, starts: np.ndarray, order: np.ndarray, image_keys: np.ndarray, rows: int
) -> np.ndarray:
    """The image of each of ``rows`` index rows, -1 for rows of no image, from the index rows grouped by key
    (``keys`` ascending; group k's rows are ``order[starts[k]:starts[k + 1]]``) and each image's key
    (``image_keys``, -1: none; unique, checked at open)."""
    at = np.minimum(np.searchsorted(keys, image_keys), max(len(keys) - 1, 0))
    has = (image_keys >= 0) & (len(keys) > 0)
    if len(keys):
        has &= keys[at] == image_keys
    image_of_group = np.full(len(keys), -1, dtype=np.int64)
    image_of_group[at[has]] = np.nonzero(has)[0]
    out = np.full(rows, -1, dtype=np.int64)
    out[order] = np.repeat(image_of_group, np.diff(starts))
    return out


class GroupRows:
    """The index rows of each image of one loaded images row group: rows of image k are ``rows(k)``."""

    def __init__(self, base: int, owner: np.ndarray, images: int) -> None:
        """``owner``: the image (row in its images group) of each of the group's index rows (-1: of none), which
        are index rows ``base`` onwards."""
        self.order = base + np.argsort(owner, kind="stable").astype(np.int64)
        self.cut = np.searchsorted(np.sort(owner, kind="stable"), np.arange(images + 1), side="left")
        #: Images whose one chunk is the whole image (covered exactly once: no per-image check needed).
        self.whole = np.zeros(images, dtype=bool)

    def mark_whole(self, columns: dict[str, np.ndarray], sizes: np.ndarray) -> None:
        """Find the images of one chunk at the origin with the image's sizes (``sizes``: TCZYX of each image)."""
        one = np.diff(self.cut) == 1
        first = self.order[np.minimum(self.cut[:-1], len(self.order) - 1)] if len(self.order) else self.cut[:-1]
        ok = one.copy()
        for k, a in enumerate("tczyx"):
            ok &= (columns[a][first] == 0) & (columns[f"shape_{a}"][first] == sizes[:, k]) & (sizes[:, k] >= 1)
        self.whole = ok

    def rows(self, k: int) -> np.ndarray:
        """Index rows of image ``k`` of the group, in index order."""
        rows: np.ndarray = self.order[int(self.cut[k]) : int(self.cut[k + 1])]
        return rows

    def rows_of_many(self, ks: Sequence[int]) -> tuple[np.ndarray, list[int]]:
        """The index rows of images ``ks`` of the group, one after another in a new array, and how many each has."""
        k = np.asarray(ks, dtype=np.int64)
        starts, counts = self.cut[k], self.cut[k + 1] - self.cut[k]
        if len(k) > 1 and bool((k[1:] == k[:-1] + 1).all()):  # consecutive images: one stretch of ``order``
            return self.order[int(starts[0]) : int(starts[0] + counts.sum())].copy(), counts.tolist()
        ends = np.cumsum(counts)
        picks = np.repeat(starts - (ends - counts), counts) + np.arange(int(ends[-1]) if len(ends) else 0)
        return self.order[picks], counts.tolist()
