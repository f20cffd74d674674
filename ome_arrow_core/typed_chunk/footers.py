"""The footers of a dataset's tables, parsed once per process and file version, and their row counts.

Opening a plate used to parse the images table's footer four times (scan, count, row bounds, row groups) and
walk every column of every row group to check the footer's byte counts: at a million images (a thousand row
groups) that is most of an open. A footer is now parsed once per file version (path, device, inode, size, mtime,
ctime; the most recent :data:`KEPT` are kept), and the walk is skipped for a footer whose bytes matched the
digest the manifest records (see :mod:`.group_sums`): it is the one the writer wrote.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Final

import pyarrow.parquet as pq

from ..boundary import reading, require_member
from ..parquet_files import checked_footer
from .file_version import FileVersion, member_version
from .group_sums import footer_verified

__all__ = ["KEPT", "footer", "footer_rows"]

#: Footers kept parsed (the most recently used).
KEPT: Final[int] = 16
_kept: OrderedDict[FileVersion, pq.FileMetaData] = OrderedDict()
_lock = threading.Lock()


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
