"""A chunks file's page ranges and read checks, one piece per loaded index row group (see :mod:`.aligned_index`).

Each loaded index row group adds the ranges and checks of its rows; a read of some chunk row groups goes to
the pieces holding them. Pieces cover disjoint runs of chunk row groups (the writer writes images in order):
two that overlap are an index lying about where its chunks lie.
"""

from __future__ import annotations

import bisect
import itertools
import mmap
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
import pyarrow as pa

from ..errors import DamagedFileError
from ..frozen_types import FrozenTuple
from ..uniques import unique
from .page_reads import AUDIT_BY_FOOTER, PageFragment
from .readcheck import Columns, ReadCheck

if TYPE_CHECKING:
    from .opened import OpenedDataset

__all__ = [
    "SubPages",
    "sub_pages",
    "GroupedPages",
    "GroupedChecks",
    "OPEN_PIECES",
    "ranged_piece",
    "ranged_pieces",
    "one_file_groups",
]

#: Page pieces kept open (each holds a file descriptor); others are reopened from their ranges on use.
OPEN_PIECES: Final[int] = 16
#: A page is at most this many bytes a pixel plus this many bytes of levels and lengths (as page_reads bounds it).
_ITEMSIZE, _OVERHEAD = 16, 64


class SubPages(FrozenTuple):
    """Page ranges of chunk row groups ``lo`` .. ``lo + len(offset) - 1`` (-1: not named); ``owner``: index rows."""

    lo: int
    offset: np.ndarray
    compressed: np.ndarray
    uncompressed: np.ndarray
    first: np.ndarray
    limit: np.ndarray
    owner: np.ndarray


def sub_pages(
    groups: np.ndarray, within: np.ndarray, ranges: list[np.ndarray], pixels: np.ndarray, rows: np.ndarray
) -> SubPages | None:
    """The page ranges of index rows ``rows`` (in chunk row groups ``groups`` at rows ``within``; ``ranges``: the
    RANGE_COLUMNS values; ``pixels``: pixel counts), or None when they are not one chunk per row group with a range
    each (the file is then read through its footer, which checks it)."""
    if not len(groups) or (within != 0).any() or (groups < 0).any() or any((r < 0).any() for r in ranges):
        return None
    lo, hi = int(groups.min()), int(groups.max())
    at = np.full(hi - lo + 1, -1, dtype=np.int64)
    at[groups - lo] = np.arange(len(groups))
    if any((r[at[groups - lo]] != r).any() for r in ranges):  # one group named twice with two ranges
        return None
    picked = [np.where(at >= 0, r[np.maximum(at, 0)], -1) for r in ranges]
    limit = np.zeros(hi - lo + 1, dtype=np.int64)
    np.maximum.at(limit, groups - lo, pixels * _ITEMSIZE + _OVERHEAD)
    owner = np.where(at >= 0, rows[np.maximum(at, 0)], -1)
    offset, compressed, uncompressed, first = picked
    return SubPages(lo, offset, compressed, uncompressed, first, limit, owner)


class GroupedPages:
    """A ranged chunks file read piece by piece (each a :class:`PageFragment` over its run of row groups)."""

    format = "parquet"

    def __init__(self, file: Path, rows_bound: int) -> None:
        """``rows_bound``: the most row groups the file can hold (from its size)."""
        self.path = file
        self.bound = rows_bound
        #: One row per row group (as PageFragment's), without allocating them.
        self.group_rows = np.broadcast_to(np.int64(1), (rows_bound,))
        #: Uncompressed page bytes of each row group named so far (0 elsewhere; pages never touched stay unallocated).
        self.group_bytes: np.ndarray | None = np.frombuffer(mmap.mmap(-1, max(8, 8 * rows_bound)), np.int64, rows_bound)
        self._subs: list[SubPages] = []
        self._lo: list[int] = []
        self._open: OrderedDict[int, PageFragment] = OrderedDict()
        self._codec: str | None = None
        self._label: Callable[[int], str] | None = None
        self._local: bool | None = None

    @property
    def raw(self) -> bool:
        """Whether pieces were added, their pages are stored uncompressed, and the file is local (not a remote
        dataset's chunk placeholder): what a read straight into outputs needs."""
        if not self._subs or self._codec is not None:
            return False
        if self._local is None:
            from ..remote import remote_chunk

            self._local = remote_chunk(self.path) is None
        return self._local

    def add(self, sub: SubPages, codec: str | None, label: Callable[[int], str]) -> None:
        """Add a piece (its ranges checked against the file now); DamagedFileError when it overlaps another."""
        hi = sub.lo + len(sub.offset) - 1
        if hi >= self.bound:
            raise DamagedFileError(
                f"{self.path}: the index names row group {hi}, but a file of its size holds at most {self.bound}; "
                "the index is damaged"
            )
        k = bisect.bisect_left(self._lo, sub.lo)
        for j in (k - 1, k):
            if 0 <= j < len(self._subs):
                other = self._subs[j]
                if sub.lo <= other.lo + len(other.offset) - 1 and other.lo <= hi:
                    raise DamagedFileError(
                        f"{self.path}: two index row groups name its row groups {max(sub.lo, other.lo)}.."
                        f"{min(hi, other.lo + len(other.offset) - 1)}; the index is damaged"
                    )
        self._codec, self._label = codec, label
        self._subs.insert(k, sub)
        self._lo.insert(k, sub.lo)
        self._open.clear()  # positions shifted
        assert self.group_bytes is not None
        self.group_bytes[sub.lo : hi + 1] = np.maximum(sub.uncompressed, 0)
        self._piece(k)  # checks its ranges against the file

    def _piece(self, k: int) -> PageFragment:
        hit = self._open.get(k)
        if hit is not None:
            self._open.move_to_end(k)
            return hit
        sub, label = self._subs[k], self._label
        owner = sub.owner
        hit = self._open[k] = PageFragment(
            self.path,
            self._codec,
            sub.offset,
            sub.compressed,
            sub.uncompressed,
            sub.first,
            limit=sub.limit,
            label=(lambda g: label(int(owner[g]))) if label is not None else None,
        )
        while len(self._open) > OPEN_PIECES:
            self._open.popitem(last=False)
        return hit

    def pieces_of(self, groups: np.ndarray) -> list[tuple[PageFragment, int, int, int]] | None:
        """(piece, its first row group, a, b) for each run ``groups[a:b]`` of row groups ``groups`` (ascending,
        repeats allowed) that one piece holds, or None when one lies outside every piece (then :meth:`read` reads
        and refuses it)."""
        if not len(groups) or not self._lo:
            return None
        which = np.searchsorted(np.asarray(self._lo, dtype=np.int64), groups, side="right") - 1
        cuts = [0, *(np.nonzero(np.diff(which))[0] + 1).tolist(), len(groups)]
        out = []
        for a, b in itertools.pairwise(cuts):
            k = int(which[a])
            if k < 0 or int(groups[b - 1]) >= self._subs[k].lo + len(self._subs[k].offset):
                return None
            out.append((self._piece(k), self._subs[k].lo, a, b))
        return out

    def read(self, groups: np.ndarray, audit: bool = False) -> pa.Table:
        """``pixel_bytes`` of row groups ``groups`` (ascending), as PageFragment reads them, piece by piece."""
        groups = np.asarray(groups, dtype=np.int64)
        which = np.searchsorted(np.asarray(self._lo, dtype=np.int64), groups, side="right") - 1
        tables = []
        for k in unique(which).tolist():
            mine = groups[which == k]
            sub = self._subs[k] if k >= 0 else None
            if sub is None or int(mine.max()) >= sub.lo + len(sub.offset):
                raise DamagedFileError(f"{self.path}: row group {int(mine[-1])} has no page range in the index")
            step = AUDIT_BY_FOOTER - 1 if audit else len(mine)  # audits decode pages; never the whole footer
            for a in range(0, len(mine), step):
                tables.append(self._piece(k).read(mine[a : a + step] - sub.lo, audit=audit))
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def ranged_pieces(frag: object, groups: np.ndarray) -> list[tuple[PageFragment, int, int, int]] | None:
    """(fragment, the row group its group 0 is, a, b) for each run ``groups[a:b]`` of row groups ``groups``
    (ascending, repeats allowed) of ``frag`` that one :class:`PageFragment` reads by page ranges: ``frag`` itself,
    or a piece of a :class:`GroupedPages`; None when ``frag`` is read otherwise."""
    if isinstance(frag, PageFragment):
        return [(frag, 0, 0, len(groups))]
    if isinstance(frag, GroupedPages):
        return frag.pieces_of(groups)
    return None


def ranged_piece(frag: object, groups: np.ndarray) -> tuple[PageFragment, int] | None:
    """:func:`ranged_pieces` when one fragment reads all of ``groups``: (it, the row group its group 0 is)."""
    pieces = ranged_pieces(frag, groups)
    return (pieces[0][0], pieces[0][1]) if pieces is not None and len(pieces) == 1 else None


class GroupedChecks:
    """The read checks of one chunks file, one per loaded index row group (see :class:`~.readcheck.ReadCheck`).

    Checks are added and removed as index row groups are loaded and dropped; each change replaces the lists
    whole, so a read in another thread sees the lists before or after it, never half changed."""

    def __init__(self, file: str) -> None:
        self.file = file
        self._state: tuple[list[ReadCheck], list[int], list[int]] = ([], [], [])

    def add(self, check: ReadCheck) -> None:
        """Add the check of a loaded group's rows; DamagedFileError when its row groups overlap another's."""
        if not len(check.groups):
            return
        subs, los, his = self._state
        lo, hi = int(check.groups[0]), int(check.groups[-1])  # sorted
        k = bisect.bisect_left(los, lo)
        for j in (k - 1, k):
            if 0 <= j < len(subs) and lo <= his[j] and los[j] <= hi:
                raise DamagedFileError(
                    f"{self.file}: two index row groups name chunks of its row groups {max(lo, los[j])}.."
                    f"{min(hi, his[j])}; the index is damaged"
                )
        self._state = ([*subs[:k], check, *subs[k:]], [*los[:k], lo, *los[k:]], [*his[:k], hi, *his[k:]])

    def remove(self, check: ReadCheck) -> None:
        """Withdraw ``check`` (its index row group was dropped); nothing when it is not here."""
        subs, los, his = self._state
        keep = [j for j, c in enumerate(subs) if c is not check]
        self._state = ([subs[j] for j in keep], [los[j] for j in keep], [his[j] for j in keep])

    def __len__(self) -> int:
        return len(self._state[0])

    def _split(self, groups: np.ndarray) -> list[tuple[ReadCheck, np.ndarray]]:
        subs, los, his = self._state
        which = np.searchsorted(np.asarray(los, dtype=np.int64), groups, side="right") - 1
        out = []
        for k in unique(which).tolist():
            if k >= 0:
                sel = (which == k) & (groups <= his[k])
                if sel.any():
                    out.append((subs[k], sel))
        return out

    def unaudited(self, groups: np.ndarray) -> bool:
        """True when a row of ``groups`` has not been compared with the index in full yet."""
        return any(check.unaudited(groups[sel]) for check, sel in self._split(groups))

    def trust(self, groups: np.ndarray) -> None:
        """Count the rows of ``groups`` as audited (as :meth:`ReadCheck.trust`)."""
        for check, sel in self._split(groups):
            check.trust(groups[sel])

    def check(self, groups: np.ndarray, group_rows: np.ndarray, first: np.ndarray, table: Columns) -> None:
        """Compare the rows read (as :meth:`ReadCheck.check`), each group by the check of its index row group."""
        parts = self._split(groups)
        # the columns compared, each made one array once (not once per check), pixels left out; heads read at once
        # (no table) are single arrays already
        if len(parts) > 1 and isinstance(table, pa.Table):
            table = pa.table({c: table.column(c).combine_chunks() for c in table.column_names if c != "pixel_bytes"})
        for check, sel in parts:
            check.check(groups[sel], group_rows, first[sel], table)


def one_file_groups(opened: OpenedDataset, rows: Sequence[int]) -> tuple[int, np.ndarray, np.ndarray] | None:
    """(file code, the order that sorts index rows ``rows`` by row group, their row groups in that order) when all
    of ``rows`` (non-empty) have their chunks in one file, else None."""
    assert opened.fragment_code is not None
    at = np.asarray(rows, dtype=np.int64)
    codes = opened.fragment_code[at]
    code = int(codes[0])
    if (codes != code).any():
        return None
    groups = opened.columns["row_group_id"][at].astype(np.int64)
    order = np.argsort(groups, kind="stable")
    return code, order, groups[order]
