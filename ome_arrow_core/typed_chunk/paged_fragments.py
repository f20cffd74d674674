"""Which chunks files are read by page range: a :class:`~.page_reads.PageFragment` from the ranges an index gives.

An index row of a chunks file written one chunk per row group records where that chunk's pixel page lies
(``page_offset``, ``page_compressed_size``, ``page_uncompressed_size``); the manifest lists the file and its
codec (``ome_arrow_core.page_ranges``). Anything else (no listing, a missing range, rows not one per row group,
ranges that disagree) gets None here, and the file is read through its Parquet footer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from ..arrow_numpy import int_values
from ..boundary import reading, require_regular_file
from ..uniques import unique
from .page_index import RANGE_COLUMNS, listed_codec
from .page_reads import PageFragment

if TYPE_CHECKING:
    from .opened import OpenedDataset

__all__ = ["ranged_rows_bound", "paged_fragment", "index_paged_fragment", "MIN_ROW_BYTES"]

#: A page is at most this many bytes a pixel (complex128) plus this many of levels and lengths: a larger
#: declared size is refused before anything is allocated.
_MAX_ITEMSIZE, _PAGE_OVERHEAD = 16, 64
#: Bytes every row group of a chunks file takes at least (pages and footer entries of its columns): bounds
#: how many chunk rows a file can back, checked before the index is read.
MIN_ROW_BYTES: Final[int] = 64


def ranged_rows_bound(file: Path) -> int:
    """The most chunk rows ranged chunks file ``file`` can hold (from its size; its footer is not read)."""
    with reading(file, None, "checking the chunks file"):
        return int(require_regular_file(file).st_size) // MIN_ROW_BYTES


def paged_fragment(
    root: Path,
    name: str,
    manifest: dict[str, Any],
    index_file: Path,
    local: np.ndarray,
    groups: np.ndarray,
    within: np.ndarray,
    rows: np.ndarray,
    pixels: np.ndarray,
    where: Callable[[int], str] | None = None,
) -> PageFragment | None:
    """A :class:`PageFragment` for chunks file ``name``, or None when the manifest does not list it, an index
    row lacks its range or the rows are not one per row group (then the footer is read).

    Index rows ``rows`` (rows ``local`` of index table ``index_file``, whose range columns are read
    here, once) name it, in row groups ``groups`` at rows ``within``; ``pixels`` are their pixel
    counts; ``where(row)`` names index row ``row`` in messages.
    """
    listed, codec = listed_codec(root, manifest, name)
    if not listed:
        return None
    from .. import parquet_lite as pq

    with reading(root, index_file.name, "reading the page ranges"):
        pf = pq.ParquetFile(index_file)
        if not all(c in pf.schema_arrow.names for c in RANGE_COLUMNS):
            return None
        table = pf.read(columns=list(RANGE_COLUMNS), use_threads=False)
    if table.num_rows <= int(local.max(initial=-1)) or (local < 0).any():
        return None
    cols = []
    for c in RANGE_COLUMNS:  # numpy only: a take kernel would load pyarrow's compute functions (~50 MiB)
        values = int_values(table.column(c), -1).astype(np.int64)[local]
        if (values < 0).any():
            return None
        cols.append(values)
    del table
    file = root / name
    n = int(groups.max(initial=-1)) + 1
    # ranges describe one chunk per row group; an index that says otherwise (rewritten by another tool, damaged)
    # is read through the footer, whose reader checks the row groups and the checksums the pixels
    if (within != 0).any() or (groups < 0).any() or n > ranged_rows_bound(file):
        return None
    # stray rows (left by an interrupted write of older versions) may name a row group again: with the same range
    at = np.full(n, -1, dtype=np.int64)
    at[groups] = np.arange(len(rows))
    if any((c[at[groups]] != c).any() for c in cols):
        return None
    limit = np.zeros(n, dtype=np.int64)
    np.maximum.at(limit, groups, pixels * _MAX_ITEMSIZE + _PAGE_OVERHEAD)
    owner = np.where(at >= 0, rows[np.maximum(at, 0)], -1)
    label = (lambda g: where(int(owner[g]))) if where is not None else None
    offset, compressed, uncompressed, first = (np.where(at >= 0, c[np.maximum(at, 0)], -1) for c in cols)
    return PageFragment(file, codec, offset, compressed, uncompressed, first, limit=limit, label=label)


def index_paged_fragment(opened: OpenedDataset, code: int) -> PageFragment | None:
    """Chunks file ``code`` of ``opened`` read by the page ranges its index rows give (None: it has none, or the
    index is aligned, whose row groups bring their ranges; then its footer is read)."""
    assert opened.fragment_code is not None
    name = opened.fragment_names[code]
    if opened.aligned is not None:  # its page ranges come with its loaded row groups (see aligned.pages)
        return None
    if not listed_codec(opened.path, opened.manifest, name)[0]:
        return None
    rows = np.nonzero(opened.fragment_code == code)[0]
    parts = unique(opened.index_part[rows])
    if len(parts) != 1:  # a chunks file is written by one part
        return None
    part = int(parts[0])
    local = rows - int(np.searchsorted(opened.index_part, part))
    pixels = np.ones(len(rows), dtype=np.int64)
    for a in "tczyx":
        pixels *= opened.columns[f"shape_{a}"][rows].astype(np.int64)
    return paged_fragment(
        opened.path,
        name,
        opened.manifest,
        opened.path / opened.index_names[part],
        local,
        opened.columns["row_group_id"][rows].astype(np.int64),
        opened.columns["row_index_in_group"][rows].astype(np.int64),
        rows,
        pixels,
        lambda row: opened.where(row)[1],
    )
