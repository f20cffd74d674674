"""The footers of a dataset's tables, parsed once per process and file version, and their row counts.

Opening a plate used to parse the images table's footer four times (scan, count, row bounds, row groups) and
walk every column of every row group to check the footer's byte counts: at a million images (a thousand row
groups) that is most of an open. A footer is now parsed once per file version (path, device, inode, size, mtime,
ctime; the most recent :data:`KEPT` are kept), and the walk is skipped for a footer whose bytes matched the
digest the manifest records (see :mod:`.group_sums`): it is the one the writer wrote.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np

from .. import parquet_lite as pq
from ..boundary import reading, require_member
from ..fork_locks import fork_safe_lock
from ..parquet_files import checked_footer
from .file_version import FileVersion, member_version
from .group_footers import GroupFooters
from .group_sums import Segments, TableGuard, footer_verified, head_verified, settle_footer

__all__ = ["KEPT", "footer", "footer_rows", "footers_of", "group_footers", "group_starts"]

#: Footers kept parsed (the most recently used).
KEPT: Final[int] = 16
_kept: OrderedDict[FileVersion, pq.FileMetaData] = OrderedDict()
_lock = fork_safe_lock(globals(), "_lock")
_by_group: OrderedDict[tuple[FileVersion, tuple[int, ...]], GroupFooters] = OrderedDict()


def _fresh_table_locks() -> None:
    """A forked child's own lock of each kept table (a thread of the parent may have held one as it forked)."""
    for found in _by_group.values():
        found.fresh_lock()


os.register_at_fork(after_in_child=_fresh_table_locks)


def group_footers(root: Path, name: str, seg: Segments | None) -> GroupFooters | None:
    """Table ``name`` read a row group at a time through one-group footers (see :mod:`.group_footers`; once per
    file version in this process), or None when it cannot be: ``seg`` (its recorded segments) records no footer
    spans, or its footer has not matched its recorded digest in this process (checks off: parse it whole)."""
    if seg is None or seg.footer_spans is None or seg.group_rows is None:
        return None
    if not footer_verified(root, name) and not head_verified(root, name, seg):
        return None
    version = member_version(root, name)
    if version is None:
        return None
    key = (version, seg.footer_spans)
    with _lock:
        hit = _by_group.get(key)
        if hit is not None:
            _by_group.move_to_end(key)
            return hit
    found = GroupFooters(root, name, seg)
    with _lock:
        _by_group[key] = found
        while len(_by_group) > KEPT:
            _by_group.popitem(last=False)
    return found


def footer(root: Path, name: str) -> pq.FileMetaData:
    """The parsed footer of table ``name`` of the dataset at ``root`` (once per file version in this process)."""
    key = member_version(root, name)  # never open a FIFO
    if key is None:
        require_member(root, name)  # raises, naming the missing table
    assert key is not None
    file = root / name
    with _lock:
        hit = _kept.get(key)
        if hit is not None:
            _kept.move_to_end(key)
            return hit
    settle_footer(root, name)  # only its head and tail checked (see footer_pieces): the rest before it is parsed
    with reading(root, name, "reading the table's footer"):
        md = pq.read_metadata(file)
    with _lock:
        _kept[key] = md
        while len(_kept) > KEPT:
            _kept.popitem(last=False)
    return md


def footer_rows(root: Path, name: str) -> int:
    """Rows table ``name`` declares; a footer not verified by its digest must not claim more bytes than the file
    has (see :func:`~ome_arrow_core.parquet_files.checked_footer`)."""
    md = footer(root, name)
    file = root / name
    if footer_verified(root, name):
        return int(md.num_rows)
    with reading(root, name, "reading the table's footer"):
        return checked_footer(md, file.stat().st_size, str(file))


def group_starts(path: Path, name: str) -> np.ndarray:
    """The first row of each row group of images table ``name``, then its row count (from its footer)."""
    md = footer(path, name)
    counts = [md.row_group(g).num_rows for g in range(md.num_row_groups)]
    return np.concatenate([[0], np.cumsum(np.asarray(counts, dtype=np.int64))]).astype(np.int64)


def footers_of(path: Path, names: Sequence[str], guard: TableGuard | None) -> list[GroupFooters | None]:
    """Tables ``names`` read a row group at a time without parsing their footers whole, where they can be (see
    :func:`~.footers.group_footers`): only tables ``guard`` checks (their footers matched their digests)."""
    if guard is None or not guard.enabled:
        return [None] * len(names)
    return [group_footers(path, n, guard.segments(n)) for n in names]
