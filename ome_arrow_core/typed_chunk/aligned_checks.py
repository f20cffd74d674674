"""What a loaded aligned index row group adds for reads: each row's chunk file, and per chunk file the read checks
(:mod:`.readcheck`) and page ranges (:mod:`.grouped_reads`) of the group's rows."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ..arrow_numpy import int_values
from ..errors import DamagedFileError
from ..uniques import unique
from .bounds import dictionary_codes
from .checks import check_member
from .grouped_reads import GroupedChecks, GroupedPages, sub_pages
from .page_index import RANGE_COLUMNS
from .paged_fragments import ranged_rows_bound
from .readcheck import ReadCheck, dtype_name

if TYPE_CHECKING:
    from .aligned_index import AlignedIndex

__all__ = ["chunk_codes", "row_dtypes", "GroupChecks"]


def chunk_codes(root: Path, name: str, names: list[str], table: pa.Table, have: set[str]) -> np.ndarray:
    """The code (in ``names``: the manifest's chunk files) of the chunk file of each row of ``table`` (a row group
    of index table ``name``); DamagedFileError for a file the manifest does not list."""
    if "fragment_path" not in have:
        files, codes = ["chunks.parquet"], np.zeros(table.num_rows, dtype=np.int64)
    else:
        files, codes = dictionary_codes(table.column("fragment_path"), "chunks.parquet")
    used = np.bincount(codes, minlength=len(files)) > 0 if len(codes) else np.zeros(len(files), dtype=bool)
    known = []
    for f, named in zip(files, used.tolist()):
        if not named:  # (dictionary_codes lists the name of nulls too)
            known.append(0)
            continue
        if f in names:  # the manifest's names were checked at open
            known.append(names.index(f))
            continue
        check_member(root, f, f"{root / name}", "chunk file")
        if f not in names:
            raise DamagedFileError(
                f"{root / name} names chunk file {f!r}, which the manifest does not list "
                f"({', '.join(names)}); the dataset is damaged"
            )
        known.append(names.index(f))
    return np.asarray(known, dtype=np.int32)[codes] if len(codes) else np.zeros(0, dtype=np.int32)


def row_dtypes(batch: pa.RecordBatch, owner: np.ndarray) -> np.ndarray:
    """The dtype name of each row's image (``owner``: its row in images row group ``batch``; None for rows of no
    image)."""
    kinds, codes = dictionary_codes(batch.column(batch.schema.names.index("dtype")), "")
    known = np.array([dtype_name(v) for v in kinds] + [None], dtype=object)
    per_image = np.concatenate([known[codes], np.array([None], dtype=object)])
    picked: np.ndarray = per_image[owner]  # -1 picks the trailing None
    return picked


class GroupChecks:
    """The read checks and page ranges of the owned rows ``mine`` (index rows) of one loaded group of ``index``,
    whose rows start at index row ``base``, of part ``part``."""

    def __init__(
        self,
        index: AlignedIndex,
        part: int,
        base: int,
        mine: np.ndarray,
        ids: pa.Array,
        dtypes: np.ndarray,
        table: pa.Table,
        have: set[str],
    ) -> None:
        self.index, self.part, self.base, self.mine = index, part, base, mine
        self.ids, self.dtypes, self.table, self.have = ids, dtypes, table, have
        #: Whether page ranges were added.
        self.paged = False

    def add_checks(self, add_pages: bool = True) -> list[tuple[int, ReadCheck]]:
        """Add the checks (and, with ``add_pages``, the page ranges) to the index's, per chunk file; the checks
        added, with their file's code."""
        index, base, mine = self.index, self.base, self.mine
        n = self.table.num_rows
        local = {c: a[base : base + n] for c, a in index.columns.items()}
        names = [p.index for p in index.parts]
        ranges = (
            [int_values(self.table.column(c), -1).astype(np.int64) for c in RANGE_COLUMNS]
            if set(RANGE_COLUMNS) <= self.have
            else None
        )
        codes = index.fragment_code[mine]
        added = []
        for code in unique(codes).tolist():
            rows = mine[codes == code] - base
            file = index.root / index.names[code]
            check = ReadCheck(
                index.root,
                str(file),
                local["row_group_id"][rows].astype(np.int64),
                local["row_index_in_group"][rows].astype(np.int64),
                local["chunk_id"][rows].astype(np.int64),
                self.dtypes[rows],
                np.full(len(rows), self.part, dtype=np.int32),
                names,
                local,
                self.ids,
                rows,
            )
            index.checks.setdefault(code, GroupedChecks(str(file))).add(check)
            added.append((code, check))
            if add_pages:
                self._add_pages(code, rows, local, ranges)
        return added

    def _add_pages(self, code: int, rows: np.ndarray, local: dict[str, np.ndarray], ranges: Any) -> None:
        """Page ranges of rows ``rows`` of chunk file ``code`` (read through its footer when they are not usable)."""
        index = self.index
        if code in index.unpaged:
            return
        name = index.names[code]
        listed, codec = index.listed(code)
        pixels = np.ones(len(rows), dtype=np.int64)
        for a in "tczyx":
            pixels *= local[f"shape_{a}"][rows].astype(np.int64)
        pages = index.pages.get(code)
        if pages is None and listed:
            pages = GroupedPages(index.root / name, ranged_rows_bound(index.root / name))
        sub = (
            sub_pages(
                local["row_group_id"][rows].astype(np.int64),
                local["row_index_in_group"][rows].astype(np.int64),
                [r[rows] for r in ranges],
                pixels,
                self.base + rows,
            )
            if listed and ranges is not None and pages is not None
            else None
        )
        if sub is None or pages is None:  # the footer decides (a file another tool rewrote, an older layout)
            index.unpaged.add(code)
            index.pages.pop(code, None)
            return
        columns = index.columns
        pages.add(sub, codec, lambda row: f"chunk {int(columns['chunk_id'][row])} of image {index.image_id(row)!r}")
        index.pages[code] = pages
        self.paged = True
