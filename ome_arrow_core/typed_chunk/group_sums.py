"""Row-group checksums of a dataset's tables: a table's footer is checked when it is opened, each row group when
it is first read, so opening a plate of a million images hashes what it reads, not every table whole.

The manifest records, beside the whole-table digests of :mod:`.table_sums`, how each images and index table
splits into byte segments and the XXH3-64 of each, under ``ome_arrow_core.table_groups``::

    "table_groups": {"images.parquet": {"digest": "<the table's digest>", "size": 123456,
                                        "bounds": [0, 20480, ..., 120000], "sums": "<16 hex digits each>"}}

Segment ``g < G`` is ``bounds[g] .. bounds[g + 1]``: Parquet row group ``g``'s column chunks (segment 0 starts
with the file's magic); the last segment, ``bounds[G] .. size``, is the footer (page indexes, metadata, length,
magic). ``sums`` holds G + 1 digests. An entry is used only while its ``digest`` is the one digest ``tables``
records for that table: a manifest whose two records disagree (a tool that rewrote a table and its ``tables``
entry), or that accepts two versions (a compaction's swap), falls back to hashing the table whole, as do datasets
written before this. A passed check is remembered per process and file version (device, inode, size, mtime,
ctime).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from ..boundary import reading
from ..checksums import ALGORITHM, ENV, FIX, hex_digest, verify_enabled
from ..errors import ChecksumError, DamagedFileError
from ..fork_locks import fork_safe_lock
from .file_version import member_version
from .group_measure import digest_of, footer_spans_of, measure, record_groups, swapped_groups
from .group_records import GROUPS_KEY, HexSums, Segments, group_entries, int_list, recorded_rows
from .group_records import segments_of as _segments
from .spec import GROUP_LISTS_KEY, MANIFEST
from .table_sums import check_tables, recorded

__all__ = [
    "GROUPS_KEY",
    "Segments",
    "TableGuard",
    "measure",
    "record_groups",
    "swapped_groups",
    "footer_verified",
    "recorded_rows",
    "check_footers",
    "check_group",
    "check_groups",
    "statistics_trusted",
    "check_whole",
    "check_footer",
    "head_verified",
    "settle_footer",
    "footer_spans_of",
    "group_entries",
    "digest_of",
    "int_list",
]

#: (path, device, inode, size, mtime, ctime, segment, recorded digest) whose digest matched in this process; segment
#: -1: the whole file (its recorded digests, all of them); -2: the footer (also kept without a digest: some digest the
#: manifest recorded matched). Keyed by the recorded digest too: a manifest replaced by one recording another digest
#: for the same bytes (a lie) is checked again, not trusted because the old one passed.
_passed: set[tuple[Any, ...]] = set()
_lock = fork_safe_lock(globals(), "_lock")

#: How a segment is hashed (a name of this module's own: tests count the hashing a read does).
_digest = digest_of
_WHOLE: Final[int] = -1
#: Segment number recording that a table's footer matched (whatever its number of row groups).
_FOOTER: Final[int] = -2
#: Segment number recording that a footer's head and tail matched their piece's digest (see :mod:`.footer_pieces`).
_HEAD: Final[int] = -3
#: The recorded segments of each table (by file version) whose footer's head and tail only were checked, the most
#: recent :data:`HEADS_KEPT`.
_heads: OrderedDict[tuple[Any, ...], Segments] = OrderedDict()
HEADS_KEPT: Final[int] = 4096


def _key(version: tuple[Any, ...], seg: Segments, k: int) -> tuple[Any, ...]:
    """The :data:`_passed` entry of segment ``k`` (or :data:`_WHOLE`, :data:`_FOOTER`, :data:`_HEAD`) of ``seg``'s
    table."""
    if k == _HEAD:
        return (*version, k, None if seg.footer_sums is None else seg.footer_sums[0])
    if k == _WHOLE:  # every digest, as the one text the manifest records them in
        return (*version, k, seg.sums.text if isinstance(seg.sums, HexSums) else "".join(seg.sums))
    return (*version, k, seg.sums[-1 if k == _FOOTER else k])


def _seen(version: tuple[Any, ...], seg: Segments, *segments: int) -> bool:
    with _lock:
        return any(_key(version, seg, k) in _passed for k in segments)


def _check(root: Path, name: str, seg: Segments, k: int, what: str) -> None:
    """Hash segment ``k`` of table ``name`` and raise ChecksumError unless it has its recorded digest."""
    version = member_version(root, name)
    if version is None or _seen(version, seg, _WHOLE, k):
        return
    _check_segments(root, name, seg, version, [k], what)


def _what(seg: Segments, k: int) -> str:
    return "footer" if k == len(seg.bounds) - 1 else f"row group {k}"


def _check_segments(
    root: Path, name: str, seg: Segments, version: tuple[Any, ...], segments: list[int], what: str | None = None
) -> None:
    """Hash segments ``segments`` of table ``name`` (file version ``version``) through one open file, raising
    ChecksumError at the first whose digest is not the recorded one (``what``: how to name it; None: by number)."""
    if version[3] != seg.size:
        raise ChecksumError(
            f"{root} [{name}]: the table's bytes do not match the checksum the manifest records: it holds "
            f"{version[3]} bytes, the manifest records {seg.size} (truncated, extended or replaced); the table was "
            f"not parsed. Fix: {FIX}. To read it anyway pass verify=False or set {ENV}=0"
        )
    with reading(root, name, f"checking the checksum of its {what or 'row groups'}"):
        fd = os.open(root / name, os.O_RDONLY)
    try:
        for k in segments:
            named = what or _what(seg, k)
            start, stop = seg.span(k)
            with reading(root, name, f"checking the checksum of its {named}"):
                actual = _digest(fd, start, stop)
            if actual != seg.sums[k]:
                raise ChecksumError(
                    f"{root} [{name}]: the table's bytes do not match the checksum the manifest records for its "
                    f"{named} (bytes {start}..{stop}: recorded {seg.sums[k]}, computed {actual}, {ALGORITHM}); the "
                    f"table is damaged (or the manifest lies) and {named} was not parsed. Fix: {FIX}. To read it "
                    f"anyway (trusting its bytes: a damaged table can then abort the process) pass verify=False or "
                    f"set {ENV}=0"
                )
            with _lock:
                _passed.add(_key(version, seg, k))
                if k == len(seg.bounds) - 1:
                    _passed.update((_key(version, seg, _FOOTER), (*version, _FOOTER)))
    finally:
        os.close(fd)


def footer_verified(root: Path, name: str, seg: Segments | None = None) -> bool:
    """True when the footer of table ``name``, as it is on disk now, matched a digest a manifest recorded in this
    process (``seg``: the one ``seg`` records)."""
    version = member_version(root, name)
    if version is None:
        return False
    if seg is not None:
        return _seen(version, seg, _FOOTER)
    with _lock:
        return (*version, _FOOTER) in _passed


def check_footer(root: Path, name: str, seg: Segments) -> None:
    """Raise ChecksumError unless the footer segment of file ``name`` (``seg``'s last) has its recorded digest
    (checked once per process and file version; then :func:`footer_verified` holds); a footer recorded in pieces
    (see :mod:`.footer_pieces`): its head and tail (then :func:`head_verified` holds: a read checks each block of
    entries it parses, and :func:`settle_footer` the rest before the footer is parsed whole)."""
    if seg.footer_sums is None or seg.footer_spans is None:
        _check(root, name, seg, len(seg.bounds) - 1, "footer")
        return
    version = member_version(root, name)
    if version is None or _seen(version, seg, _WHOLE, len(seg.bounds) - 1, _HEAD):
        return
    if version[3] != seg.size:
        _check_segments(root, name, seg, version, [len(seg.bounds) - 1], "footer")  # raises, naming the sizes
    at, length, header, end = seg.footer_spans[:4]
    with reading(root, name, "checking the checksum of its footer's head and tail"):
        fd = os.open(root / name, os.O_RDONLY)
        try:
            head, tail = os.pread(fd, header, at), os.pread(fd, length - end + 8, at + end)
        finally:
            os.close(fd)
    actual = hex_digest(head, tail)
    if actual != seg.footer_sums[0]:
        raise ChecksumError(
            f"{root} [{name}]: the table's bytes do not match the checksum the manifest records for its footer's head "
            f"and tail (bytes {at}..{at + header} and {at + end}..{seg.size}: recorded {seg.footer_sums[0]}, "
            f"computed {actual}, {ALGORITHM}); the table is damaged (or the manifest lies) and its footer was not "
            f"parsed. Fix: {FIX}. To read it anyway pass verify=False or set {ENV}=0"
        )
    with _lock:
        _passed.add(_key(version, seg, _HEAD))
        _heads[version] = seg
        while len(_heads) > HEADS_KEPT:  # forgotten whole: its head is checked again when it is next opened
            old, was = _heads.popitem(last=False)
            _passed.discard(_key(old, was, _HEAD))


def head_verified(root: Path, name: str, seg: Segments) -> bool:
    """True when the head and tail of the footer of table ``name``, as it is on disk now, matched the digest ``seg``
    records in this process (:func:`check_footer`)."""
    version = member_version(root, name)
    return version is not None and seg.footer_sums is not None and _seen(version, seg, _HEAD)


def settle_footer(root: Path, name: str) -> None:
    """Before table ``name``'s footer is parsed whole: when only its head and tail were checked (see
    :func:`check_footer`), check it whole now (ChecksumError when it does not match)."""
    version = member_version(root, name)
    with _lock:
        seg = None if version is None else _heads.get(version)
    if seg is not None and version is not None:
        _check(root, name, seg, len(seg.bounds) - 1, "footer")


def check_footers(root: Path, manifest: Mapping[str, Any], names: Iterable[str], verify: bool | None = None) -> None:
    """Check the footer of every table of ``names`` (tables without usable segments: the whole table), before
    pyarrow parses any of them; their row groups are then checked by :func:`check_group` as they are read."""
    if not verify_enabled(verify):
        return
    for name in names:
        seg = _segments(root, manifest, name)
        if seg is None:
            check_whole(root, manifest, [name], verify)
        else:  # whole, pieces or not: its footer may then be parsed whole (and is, in many places) unchecked
            _check(root, name, seg, len(seg.bounds) - 1, "footer")


def statistics_trusted(root: Path, manifest: Mapping[str, Any], name: str, verify: bool | None = None) -> bool:
    """Whether what table ``name``'s footer says (its statistics) is as trusted as the bytes a read decodes, once
    :func:`check_footers` passed for it: checks are off, or its footer as it is on disk now matched a digest the
    manifest records (its own, or the whole table's). False for a table with no recorded digest (ome-arrow 0.1.0's)."""
    return not verify_enabled(verify) or footer_verified(root, name) or name in recorded(root, manifest)


def check_group(root: Path, manifest: Mapping[str, Any], name: str, group: int, verify: bool | None = None) -> None:
    """Raise ChecksumError unless row group ``group`` of table ``name`` has its recorded digest (checked once per
    process and file version; a table without usable segments is checked whole)."""
    if verify_enabled(verify):
        _check_group(root, manifest, name, group, _segments(root, manifest, name))


def check_groups(
    root: Path, manifest: Mapping[str, Any], name: str, groups: Iterable[int], verify: bool | None = None
) -> None:
    """Raise ChecksumError unless each row group of ``groups`` of table ``name`` has its recorded digest, through one
    open file (each checked once per process and file version), before a read of those groups alone; a table
    without usable segments is checked whole."""
    if not verify_enabled(verify):
        return
    seg = _segments(root, manifest, name)
    if seg is None:
        check_whole(root, manifest, [name], True)
        return
    version = member_version(root, name)
    if version is None or _seen(version, seg, _WHOLE):
        return
    todo = []
    for group in groups:
        if not 0 <= group < len(seg.bounds) - 1:
            _check_group(root, manifest, name, group, seg)  # raises, naming the row group
        if not _seen(version, seg, group):
            todo.append(group)
    if todo:
        _check_segments(root, name, seg, version, todo)


def _check_group(root: Path, manifest: Mapping[str, Any], name: str, group: int, seg: Segments | None) -> None:
    if seg is None:
        check_whole(root, manifest, [name], True)
        return
    if not 0 <= group < len(seg.bounds) - 1:
        raise ChecksumError(
            f"{root} [{name}]: row group {group} is not among the {len(seg.bounds) - 1} the manifest records "
            f"checksums for; the table does not match its manifest and was not read. Fix: {FIX}"
        )
    _check(root, name, seg, group, f"row group {group}")


class TableGuard:
    """:func:`check_group` for the tables of one opened dataset, its manifest's entries parsed once."""

    def __init__(self, root: Path, manifest: Mapping[str, Any], verify: bool | None = None) -> None:
        self.root, self.manifest, self.enabled = root, manifest, verify_enabled(verify)
        self._segments: dict[str, Segments | None] = {}
        self._done: set[tuple[str, int]] = set()

    def segments(self, name: str) -> Segments | None:
        """The usable segments of table ``name`` (parsed once per guard)."""
        if name not in self._segments:
            self._segments[name] = _segments(self.root, self.manifest, name)
        return self._segments[name]

    def group(self, name: str, group: int) -> None:
        """Check row group ``group`` of table ``name`` before it is first read (once per guard)."""
        if not self.enabled or (name, group) in self._done:
            return
        _check_group(self.root, self.manifest, name, group, self.segments(name))
        self._done.add((name, group))

    def whole(self, names: Iterable[str]) -> None:
        """Check tables ``names`` whole, before a read of all of them."""
        if self.enabled:
            check_whole(self.root, self.manifest, names, True)


def check_whole(root: Path, manifest: Mapping[str, Any], names: Iterable[str], verify: bool | None = None) -> None:
    """Every table of ``names`` checked whole (before a read of the whole table): its segments when recorded,
    else its whole-table digest (see :func:`~.table_sums.check_tables`)."""
    if not verify_enabled(verify):
        return
    for name in names:
        seg = _segments(root, manifest, name)
        if seg is None:
            check_tables(root, manifest, [name], verify)
            _counted_right(root, manifest, name)
            continue
        version = member_version(root, name)
        if version is None or _seen(version, seg, _WHOLE):
            continue
        _check_segments(root, name, seg, version, [k for k in range(len(seg.bounds)) if not _seen(version, seg, k)])
        with _lock:
            _passed.add(_key(version, seg, _WHOLE))


def _counted_right(root: Path, manifest: Mapping[str, Any], name: str) -> None:
    """Once table ``name`` passed its whole-table digest (its lists missing or unused): DamagedFileError unless the
    rows and row groups a scan counted it by (:func:`recorded_rows`) are its footer's."""
    said = recorded_rows(root, manifest, name)
    version = member_version(root, name)
    if said is None or version is None:
        return
    key = ("counted", version, said)
    with _lock:
        if key in _passed:
            return
    from .. import parquet_lite

    with reading(root, name, "reading the table's footer"):  # its bytes just matched the table's digest
        md = parquet_lite.read_metadata(root / name)
    if said != (md.num_rows, md.num_row_groups):
        raise DamagedFileError(
            f"{root} [{MANIFEST}]: records {said[0]} rows in {said[1]} row groups for table {name!r} (what a scan "
            f"counts images by, e.g. ome_arrow_core.{GROUP_LISTS_KEY}.tables), its footer {md.num_rows} in "
            f"{md.num_row_groups}: the manifest is damaged. Fix: {FIX}"
        )
    with _lock:
        _passed.add(key)
