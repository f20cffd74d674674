"""What an opened dataset checks once before reading: each image's chunk coverage and bytes, each chunk file's rows.

:class:`DatasetChecks` runs the checks and remembers which passed, so each runs once per opened dataset
(see :mod:`.opened`, whose ``verify``, ``bound``, ``bound_many`` and ``read_check`` it serves). It holds
no reference to the dataset: each call is handed it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..chunks import ChunkTable
from ..errors import DamagedFileError
from .bounds import dictionary_codes, held_bytes
from .checks import check_image_chunks, check_unique
from .grouped_reads import GroupedChecks
from .readcheck import ReadCheck, dtype_name

if TYPE_CHECKING:
    from .opened import OpenedDataset

__all__ = ["DatasetChecks"]

#: An image row's id and sizes (TCZYX), read alone (see :meth:`~.image_groups.ImageRows.scalars`).
_ID_SIZES: tuple[str, ...] = ("image_id", *(f"size_{a}" for a in "tczyx"))


class DatasetChecks:
    """The checks of one opened dataset that passed (images verified and bounded), and its chunk files' read checks."""

    def __init__(self) -> None:
        #: Image rows whose chunks were checked to cover them exactly (see :meth:`verify`).
        self.verified: set[int] = set()
        #: Image rows whose declared pixel bytes were checked against their row groups (see :meth:`bound_many`).
        self.bounded: set[int] = set()
        self._reads: dict[int, ReadCheck] = {}

    def verify(self, opened: OpenedDataset, pos: int, rows: np.ndarray, table: ChunkTable | None = None) -> None:
        """Raise DamagedFileError unless chunk ``rows`` write every pixel of image row ``pos`` of ``opened`` exactly
        once (checked once per image; chunk ids are checked unique across the index on the first call).

        ``table`` is ``opened.chunk_table(rows)`` when the caller has it (a batch's, sliced): not gathered again.
        A chunk missing, repeated, overlapping or outside the image would otherwise read as
        whatever memory held before.
        """
        if pos in self.verified:
            return
        aligned = opened.aligned
        if aligned is not None and aligned.covered(pos):  # checked with its row group, vectorized
            self.verified.add(pos)
            return
        image_id, *sizes = opened.images.scalars(pos, _ID_SIZES)  # not its whole row: no other column decoded
        if table is None:
            table = opened.chunk_table(rows)
        first: int | np.ndarray = rows  # subtracted from rows: their numbers in their own index tables
        if aligned is not None:  # chunk ids were checked unique in the row group the rows were loaded with
            first = int(aligned.part_first[int(opened.image_part[pos])])
        elif len(rows):
            first = np.searchsorted(opened.index_part, opened.index_part[rows], side="left")
        check_image_chunks(
            f"{opened.path} [{opened.index_names[int(opened.image_part[pos])]}]",
            str(image_id),
            [int(v) for v in sizes],
            table.origin,
            table.shape,
            rows - first,
        )
        if aligned is None and not self.verified:
            owned = opened.columns["chunk_id"][opened.row_images() >= 0]
            check_unique(owned, f"{opened.path} [{', '.join(opened.index_names)}]", "chunk_id")
        self.verified.add(pos)

    def bound_many(self, opened: OpenedDataset, positions: Sequence[int], picked: Sequence[np.ndarray]) -> None:
        """Raise DamagedFileError when an image row of ``positions`` declares more pixel bytes than the row groups of
        its chunk rows (``picked``) hold.

        Checked once per image, a batch at once, from the chunk files' footers, before any output is allocated.
        """
        todo = [k for k, pos in enumerate(positions) if pos not in self.bounded]
        if not todo or opened.fragment_code is None:
            return
        rows = np.concatenate([picked[k] for k in todo])
        owner = np.repeat(np.arange(len(todo)), [len(picked[k]) for k in todo])
        groups = opened.columns["row_group_id"][rows].astype(np.int64)
        held, known = held_bytes(
            owner, opened.fragment_code[rows], groups, len(todo), lambda code: opened.fragment(code).group_bytes
        )
        for k, has, sure in zip(todo, held, known):
            image_id, dtype, *sizes = opened.images.scalars(positions[k], ("image_id", "dtype", *_ID_SIZES[1:]))
            declared = math.prod(int(v) for v in sizes) * np.dtype(dtype).itemsize
            if sure and declared > has:  # unknown sizes stay so for these files: not checked again
                raise DamagedFileError(
                    f"image {image_id!r} of {opened.path} declares {declared} bytes of pixels, but the row groups "
                    f"of its chunks hold at most {has}; images.parquet or index.parquet is damaged or lying"
                )
            self.bounded.add(positions[k])

    def read_check(self, opened: OpenedDataset, code: int) -> ReadCheck | GroupedChecks:
        """What the index of ``opened`` says about the rows of chunk file ``code`` (built on first use)."""
        if opened.aligned is not None:
            path = str(opened.path / opened.fragment_names[code])
            return opened.aligned.checks.setdefault(code, GroupedChecks(path))
        hit = self._reads.get(code)
        if hit is None:
            assert opened.fragment_code is not None
            mine = np.nonzero((opened.fragment_code == code) & (opened.row_images() >= 0))[0]  # rows images read
            columns = opened.columns
            hit = self._reads[code] = ReadCheck(
                opened.path,
                str(opened.path / opened.fragment_names[code]),
                columns["row_group_id"][mine].astype(np.int64),
                columns["row_index_in_group"][mine].astype(np.int64),
                columns["chunk_id"][mine].astype(np.int64),
                _row_dtypes(opened)[mine],
                opened.index_part[mine],
                opened.index_names,
                columns,
                opened.index.column("image_id"),
                mine,
            )
        return hit


def _row_dtypes(opened: OpenedDataset) -> np.ndarray:
    """The dtype name of the image of each index row of ``opened`` (None for rows of no image)."""
    distinct, codes = dictionary_codes(opened.images.column("dtype"), "")
    known = np.array([dtype_name(v) for v in distinct] + [None], dtype=object)
    per_image = np.concatenate([known[codes], np.array([None], dtype=object)])
    picked: np.ndarray = per_image[opened.row_images()]  # -1 picks the trailing None
    return picked
