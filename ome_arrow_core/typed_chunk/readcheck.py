"""What a read of a chunk file returned, checked against what the index says about those rows.

Every read takes ``chunk_id`` with ``pixel_bytes``: the row an index entry points at must
hold its chunk id and lie inside its row group. The first read of each chunk row in a
process also takes its ``dtype``, ``image_id``, coordinates and shape, which must be the
index's and its image's (two chunks whose coordinates were swapped in the index would
otherwise be placed at each other's positions); later reads of the same rows (the chunk
file stays open, so its rows cannot change under the reader) skip those columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final, TypeAlias

import numpy as np
import pyarrow as pa

from ..arrow_numpy import int_values, string_values
from ..arrow_text import distinct_text, same_text
from ..errors import DamagedFileError

__all__ = ["ReadCheck", "AUDITED", "dtype_name", "Columns"]

#: Rows read, by column: an Arrow table, or (heads read at once) each column alone: integers as numpy arrays,
#: ``dtype`` as Python strings or Arrow, ``image_id`` as Arrow (compared byte for byte with the index's).
Columns: TypeAlias = pa.Table | Mapping[str, np.ndarray | pa.Array | list[str]]

#: Columns a first read of a chunk row also takes, to compare with the index (beyond chunk_id).
AUDITED: Final[tuple[str, ...]] = ("dtype", "image_id", "t", "c", "z", "y", "x", *(f"shape_{a}" for a in "tczyx"))
_GEOMETRY: Final = AUDITED[2:]


class ReadCheck:
    """Index rows of one chunk file by row group, to check what a read of some row groups returned."""

    def __init__(
        self,
        root: Path,
        file: str,
        groups: np.ndarray,
        within: np.ndarray,
        chunk_ids: np.ndarray,
        dtypes: Sequence[str | None] | np.ndarray,
        parts: np.ndarray,
        index_names: Sequence[str],
        columns: Mapping[str, np.ndarray],
        image_ids: pa.ChunkedArray | pa.Array,
        index_rows: np.ndarray,
    ) -> None:
        """Index rows ``index_rows`` of chunk file ``file``: row group, row in it, chunk id, image dtype, part
        (of ``index_names``); t, c, z, y, x and shape_t..shape_x are taken from the index ``columns`` (all rows)
        and ``image_ids`` from the index's
        index's whole image_id column (taken only for the rows a read audits)."""
        order = np.argsort(groups, kind="stable")
        self.root, self.file, self.index_names = root, file, list(index_names)
        self.groups, self.within, self.chunk_ids = groups[order], within[order], chunk_ids[order]
        self.dtypes = np.asarray(dtypes, dtype=object)[order]
        self.parts = parts[order]
        self._columns = columns
        self._id_column = image_ids
        self.index_rows = np.asarray(index_rows, dtype=np.int64)[order]
        self.audited = np.zeros(len(order), dtype=bool)
        self.complete = False  # every row audited
        self._audited_groups: set[int] = set()  # row groups all of whose rows were audited

    def _source(self, row: int) -> str:
        return f"{self.root} [{self.index_names[int(self.parts[row])]}]"

    def _rows(self, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """This check's rows in row groups ``groups`` (ascending), and the position in ``groups`` of each."""
        lo = np.searchsorted(self.groups, groups, side="left")
        counts = np.searchsorted(self.groups, groups, side="right") - lo
        ends = np.cumsum(counts)
        mine = np.repeat(lo - ends + counts, counts) + np.arange(int(ends[-1]) if len(ends) else 0)
        return mine.astype(np.int64), np.repeat(np.arange(len(groups)), counts)

    def unaudited(self, groups: np.ndarray) -> bool:
        """True when a row of ``groups`` has not been compared with the index in full yet."""
        if self.complete or self._audited_groups.issuperset(groups.tolist()):
            return False
        mine, _ = self._rows(groups)
        return not bool(self.audited[mine].all())

    def trust(self, groups: np.ndarray) -> None:
        """Count the rows of row groups ``groups`` (ascending) as audited: a process reading the same version of the
        files audited those row groups whole (see :mod:`.ledger`)."""
        mine, _ = self._rows(groups)
        self.audited[mine] = True
        self._audited_groups.update(groups.tolist())
        self.complete = bool(self.audited.all())

    def check(self, groups: np.ndarray, group_rows: np.ndarray, first: np.ndarray, table: Columns) -> None:
        """Compare rows read from row groups ``groups`` (ascending; ``first[k]``: row of group k in ``table``)."""
        mine, which = self._rows(groups)
        within = self.within[mine]
        bad = np.nonzero((within < 0) | (within >= group_rows[groups[which]]))[0]
        if len(bad):
            j = int(bad[0])
            raise DamagedFileError(
                f"{self._source(int(mine[j]))}: chunk {int(self.chunk_ids[mine[j]])} is row {int(within[j])} of "
                f"row group {int(groups[which[j]])} of {self.file}, which has {int(group_rows[groups[which[j]]])} "
                "rows; the "
                "dataset is damaged"
            )
        names = set(table.column_names if isinstance(table, pa.Table) else table)
        # only the rows this check owns, and the columns it compares: a read of many row groups serves many checks.
        # Taken from the columns' buffers with numpy: a take kernel would load pyarrow's compute functions.
        at = first[which] + within
        if "chunk_id" in names:
            found_ids = _ints(table, "chunk_id")[at]
            self._same(mine, groups[which], within, "chunk", self.chunk_ids[mine], found_ids)
        if set(_GEOMETRY) <= names:
            if "dtype" in names:
                distinct, codes = _distinct(table, "dtype", at)  # a Python string per distinct value
                found_dt = np.array([_dtype_of(v) for v in distinct] + [None], dtype=object)[codes]
                want = self.dtypes[mine]
                bad = np.nonzero((want != None) & (found_dt != want))[0]  # noqa: E711 (element-wise)
                if len(bad):
                    j = int(bad[0])
                    raise DamagedFileError(
                        f"{self.file}: chunk {int(self.chunk_ids[mine[j]])} holds {found_dt[j]} pixels, but the "
                        f"images table says its image is {want[j]}; the dataset is damaged"
                    )
            rows = self.index_rows[mine]
            differ = np.zeros(len(at), dtype=bool)
            for c in _GEOMETRY:  # column by column: a row group of 500,000 chunks holds no (rows x 10) copies
                differ |= _ints(table, c)[at] != self._columns[c][rows]
            wrong = np.nonzero(differ)[0]
            if len(wrong):
                j = int(wrong[0])
                found = np.array([int(_ints(table, c)[at[j]]) for c in _GEOMETRY])
                geometry = np.array([int(self._columns[c][rows[j]]) for c in _GEOMETRY])
                raise DamagedFileError(
                    f"{self._source(int(mine[j]))} says chunk {int(self.chunk_ids[mine[j]])} lies at (t, c, z, y, x, "
                    f"shape_t..shape_x) {tuple(geometry.tolist())}, but its row (row {int(within[j])} of "
                    f"row group {int(groups[which[j]])} of {self.file}) says {tuple(found.tolist())}; the index and "
                    "the chunk file disagree, the dataset is damaged"
                )
            if "image_id" in names:
                if isinstance(self._id_column, pa.ChunkedArray) and self._id_column.num_chunks > 1:
                    self._id_column = self._id_column.combine_chunks()  # once: each lookup then finds its chunk in O(1)
                found_col, want_at = _column(table, "image_id"), self.index_rows[mine]
                wrong = np.nonzero(~same_text(self._id_column, want_at, found_col, at))[0]  # bytes, not strings
                if len(wrong):
                    j = int(wrong[0])
                    want = string_values(self._id_column, want_at[j : j + 1])[0]
                    got = string_values(found_col, at[j : j + 1])[0]
                    self._fail(mine, groups[which], within, "chunk of image", j, want, got)
            self.audited[mine] = True
            self._audited_groups.update(groups.tolist())
            self.complete = bool(self.audited.all())

    def _same(
        self, mine: np.ndarray, groups: np.ndarray, within: np.ndarray, what: str, want: np.ndarray, found: np.ndarray
    ) -> None:
        wrong = np.nonzero(want != found)[0]
        if len(wrong):
            j = int(wrong[0])
            self._fail(mine, groups, within, what, j, want[j], found[j])

    def _fail(
        self, mine: np.ndarray, groups: np.ndarray, within: np.ndarray, what: str, j: int, want: object, found: object
    ) -> None:
        raise DamagedFileError(
            f"{self._source(int(mine[j]))} says {what} {_plain(want)!r} is row {int(within[j])} of row group "
            f"{int(groups[j])} of {self.file}, but that row holds {what} {_plain(found)!r}; the index and the "
            "chunk file disagree, the dataset is damaged"
        )


def _column(table: Columns, name: str) -> pa.Array | pa.ChunkedArray:
    """Text column ``name`` of ``table``, in Arrow."""
    column = table.column(name) if isinstance(table, pa.Table) else table[name]
    if isinstance(column, np.ndarray | list):
        raise TypeError(f"column {name} is not an Arrow column")
    return column


def _distinct(table: Columns, name: str, at: np.ndarray) -> tuple[list[str | None], np.ndarray]:
    """:func:`~..arrow_text.distinct_text` of text column ``name`` of ``table`` at ``at`` (Python strings at once)."""
    column = None if isinstance(table, pa.Table) else table[name]
    if not isinstance(column, list):
        return distinct_text(_column(table, name), at)
    index: dict[str | None, int] = {}
    codes = [index.setdefault(column[k], len(index)) for k in at.tolist()]
    return list(index), np.array(codes, dtype=np.int64)


def _ints(table: Columns, name: str) -> np.ndarray:
    """Integer column ``name`` of ``table`` as a numpy array."""
    column = table.column(name) if isinstance(table, pa.Table) else table[name]
    if isinstance(column, list):
        raise TypeError(f"column {name} holds text, not integers")
    return column if isinstance(column, np.ndarray) else int_values(column)


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


_DTYPE_NAMES: dict[str | None, str | None] = {}


def _dtype_of(value: str | None) -> str | None:
    """:func:`dtype_name` of a stored dtype string (remembered: a read compares the same few names again)."""
    if value not in _DTYPE_NAMES:
        if len(_DTYPE_NAMES) > 256:
            _DTYPE_NAMES.clear()
        _DTYPE_NAMES[value] = dtype_name(value)
    return _DTYPE_NAMES[value]


def dtype_name(dtype: object) -> str | None:
    """The numpy name of dtype string ``dtype`` (None when it names none)."""
    try:
        return np.dtype(str(dtype)).name
    except TypeError:
        return None
