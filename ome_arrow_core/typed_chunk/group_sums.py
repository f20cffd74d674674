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

import itertools
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from ..boundary import reading
from ..checksums import ALGORITHM, ENV, FIX, verify_enabled
from ..errors import ChecksumError, DamagedFileError
from .file_version import member_version
from .spec import MANIFEST
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
    "check_whole",
    "check_footer",
    "footer_spans_of",
    "group_entries",
    "digest_of",
    "int_list",
]

#: Key of the recorded row-group digests in the manifest's ``ome_arrow_core`` section.
GROUPS_KEY: Final[str] = "table_groups"
#: (path, device, inode, size, mtime, ctime, segment) whose digest matched in this process; segment -1: the whole file.
_passed: set[tuple[Any, ...]] = set()
_lock = threading.Lock()
_WHOLE: Final[int] = -1
#: Segment number recording that a table's footer matched (whatever its number of row groups).
_FOOTER: Final[int] = -2


@dataclass(frozen=True)
class Segments:
    """One table's recorded segments: ``bounds`` (G + 1 offsets), ``sums`` (G + 1 digests), its size and digest."""

    digest: str
    size: int
    bounds: tuple[int, ...]
    sums: tuple[str, ...]
    #: Rows of the table (None in entries written without it): a scan counts images without parsing footers.
    rows: int | None = None
    #: Rows of each row group (None in entries written without it).
    group_rows: tuple[int, ...] | None = None
    #: Where the footer's row group entries lie (None in entries written without it): the serialized
    #: FileMetaData's first byte in the file, its length, its row group list's header and end, and each row
    #: group entry's first byte (offsets in the FileMetaData; see :mod:`.group_footers`).
    footer_spans: tuple[int, ...] | None = None

    def span(self, k: int) -> tuple[int, int]:
        """Byte range of segment ``k`` (``len(bounds) - 1``: the footer)."""
        return self.bounds[k], self.bounds[k + 1] if k + 1 < len(self.bounds) else self.size

    def to_json(self) -> dict[str, Any]:
        """The manifest entry."""
        out: dict[str, Any] = {
            "digest": self.digest,
            "size": self.size,
            "bounds": list(self.bounds),
            "sums": "".join(self.sums),
        }
        if self.rows is not None:
            out["rows"] = self.rows
        if self.group_rows is not None and self.footer_spans is not None:
            out["group_rows"], out["footer_spans"] = list(self.group_rows), list(self.footer_spans)
        return out


#: Bytes hashed at a time, read into one buffer reused for the whole range (a fresh 4 MiB ``bytes`` per read cost
#: a first open of a plate ~3 ms of page faults for a 3.7 MB footer; hashing it costs 0.1 ms).
_BLOCK: Final[int] = 256 << 10


def _digest(fd: int, start: int, stop: int) -> str:
    import xxhash

    h = xxhash.xxh3_64()
    view = memoryview(bytearray(max(0, min(stop - start, _BLOCK))))
    at = start
    while at < stop:
        got = os.preadv(fd, [view[: min(stop - at, len(view))]], at)
        if got <= 0:
            break  # short: the digest cannot match
        h.update(view[:got])
        at += got
    return f"{h.intdigest():016x}"


def measure(file: Path, digest: str) -> Segments | None:
    """The segments of Parquet table ``file`` (just written by us; its whole-file ``digest`` given), or None when
    its row groups do not lie one after another (the table is then checked whole)."""
    import pyarrow.parquet as pq

    md = pq.read_metadata(file)
    size = file.stat().st_size
    bounds = [0]
    end = 4
    for g in range(md.num_row_groups):
        group = md.row_group(g)
        spans = []
        for c in range(group.num_columns):
            col = group.column(c)
            first = col.data_page_offset
            if col.has_dictionary_page and col.dictionary_page_offset:
                first = min(first, col.dictionary_page_offset)
            spans.append((first, first + col.total_compressed_size))
        if not spans:
            continue
        lo, hi = min(s for s, _ in spans), max(e for _, e in spans)
        if lo < end or hi > size:
            return None
        if g:
            bounds.append(lo)
        end = hi
    if md.num_row_groups:
        bounds.append(end)
    if len(bounds) != md.num_row_groups + 1 or any(b >= a for a, b in zip(bounds[1:], bounds)):
        return None
    fd = os.open(file, os.O_RDONLY)
    try:
        sums = [_digest(fd, a, b) for a, b in zip(bounds, [*bounds[1:], size])]
        listed = _footer_spans(fd, size, md.num_row_groups)
    finally:
        os.close(fd)
    rows = tuple(int(md.row_group(g).num_rows) for g in range(md.num_row_groups))
    return Segments(digest, size, tuple(bounds), tuple(sums), int(md.num_rows), rows, listed)


def digest_of(fd: int, start: int, stop: int) -> str:
    """XXH3-64 (16 hex digits) of bytes ``start..stop`` of the file open as ``fd``."""
    return _digest(fd, start, stop)


def footer_spans_of(fd: int, size: int, groups: int) -> tuple[int, ...] | None:
    """The ``footer_spans`` of the Parquet file open as ``fd`` (``size`` bytes, ``groups`` row groups), or None when
    its footer cannot be walked (then readers parse it whole)."""
    return _footer_spans(fd, size, groups)


def _footer_spans(fd: int, size: int, groups: int) -> tuple[int, ...] | None:
    """The ``footer_spans`` of the Parquet file open as ``fd`` (``size`` bytes, ``groups`` row groups), or None when
    its footer cannot be walked (then readers parse it whole)."""
    from .thrift_walk import ThriftError, row_group_spans

    tail = os.pread(fd, 8, size - 8)
    length = int.from_bytes(tail[:4], "little")
    if tail[4:] != b"PAR1" or not 0 < length <= size - 12:
        return None
    at = size - 8 - length
    try:
        found = row_group_spans(os.pread(fd, length, at))
    except ThriftError:
        return None
    if len(found.starts) != groups:
        return None
    return (at, length, found.header, found.end, *found.starts)


def record_groups(
    root: Path, tables: Mapping[str, list[str]], keep: Mapping[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """The ``table_groups`` entries of the tables ``tables`` records (the manifest's ``tables``, just computed):
    kept from ``keep`` (the previous manifest's entries) where the table is unchanged, measured otherwise."""
    out: dict[str, dict[str, Any]] = {}
    kept = keep if isinstance(keep, Mapping) else {}
    for name, digests in tables.items():
        if len(digests) != 1:
            continue
        old = kept.get(name)
        if isinstance(old, Mapping) and old.get("digest") == digests[0]:
            out[name] = dict(old)
            continue
        found = measure(root / name, digests[0]) if (root / name).is_file() else None
        if found is not None:
            out[name] = found.to_json()
    return out


def swapped_groups(root: Path, new: Path, tables: Mapping[str, list[str]]) -> dict[str, dict[str, Any]]:
    """The ``table_groups`` entries once a swap is done: of ``new / name`` when the swap writes it, else of
    ``root / name`` (``tables``: their digests, as :func:`~.table_sums.swapped_digest` gives them)."""
    out: dict[str, dict[str, Any]] = {}
    for name, digests in tables.items():
        file = new / name if (new / name).exists() else root / name
        found = measure(file, digests[0]) if len(digests) == 1 else None
        if found is not None:
            out[name] = found.to_json()
    return out


def _segments(root: Path, manifest: Mapping[str, Any], name: str) -> Segments | None:
    """The usable segments of table ``name`` (None: none recorded, or its records disagree: hash it whole)."""
    ours = manifest.get("ome_arrow_core") or {}
    listed = ours.get(GROUPS_KEY) if isinstance(ours, Mapping) else None
    if not isinstance(listed, Mapping) or name not in listed:
        return None
    seg = _parsed(root, name, listed[name])  # a malformed entry is refused
    return seg if recorded(root, manifest).get(name) == [seg.digest] else None


#: Parsed entries by their content (a plate's entry lists a segment per 1,024 images: parsed once per process).
_PARSED: dict[tuple[Any, ...], Segments] = {}
_PARSED_KEPT: Final[int] = 64


def _parsed(root: Path, name: str, entry: Any) -> Segments:
    """The segments ``entry`` (the manifest's entry of table ``name``) records; DamagedFileError when malformed."""
    try:
        key = (
            entry["digest"],
            entry["size"],
            entry["sums"],
            tuple(entry["bounds"]),
            entry.get("rows"),
            tuple(entry.get("group_rows") or ()),
            tuple(entry.get("footer_spans") or ()),
        )
        hit = _PARSED.get(key)
    except (TypeError, KeyError, AttributeError):
        key, hit = None, None
    if hit is not None:
        return hit
    try:
        bounds = tuple(map(int, entry["bounds"]))
        text, size, digest = str(entry["sums"]).lower(), int(entry["size"]), str(entry["digest"]).lower()
        rows = None if entry.get("rows") is None else int(entry["rows"])
        ok = (
            (rows is None or rows >= 0)
            and len(text) == 16 * len(bounds)
            and bounds[:1] == (0,)
            and all(b > a for a, b in itertools.pairwise(bounds))
            and bounds[-1] <= size
        )
        group_rows, spans = group_entries(entry, len(bounds) - 1, rows, bounds[-1], size)
    except (TypeError, ValueError, KeyError, AttributeError):
        ok = False
    if not ok:
        raise DamagedFileError(
            f"{root} [{MANIFEST}]: ome_arrow_core.{GROUPS_KEY}[{name!r}] is {str(entry)[:300]!r}; expected {{digest, "
            "size, bounds (increasing from 0), sums (16 hex digits a segment), rows, group_rows (rows of each row "
            f"group), footer_spans (where its footer lists them)}}: the manifest is damaged. Fix: {FIX}"
        )
    sums = tuple([text[i : i + 16] for i in range(0, len(text), 16)])
    found = Segments(digest, size, bounds, sums, rows, group_rows, spans)
    if key is not None:
        with _lock:
            if len(_PARSED) >= _PARSED_KEPT:
                _PARSED.clear()
            _PARSED[key] = found
    return found


def group_entries(
    entry: Any, groups: int, rows: int | None, footer_at: int, size: int
) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
    """The entry's ``group_rows`` and ``footer_spans`` (None, None when it has neither, or when its rows disagree
    with ``rows``: the footer is then parsed whole); ValueError when they do not fit the table (``groups`` row
    groups, its footer segment from ``footer_at`` to ``size``)."""
    if entry.get("group_rows") is None and entry.get("footer_spans") is None:
        return None, None
    counts, listed = int_list(entry["group_rows"]), int_list(entry["footer_spans"])
    if len(listed) < 4:
        raise ValueError("footer_spans lists fewer than 4 values")
    at, length, header, end = listed[:4].tolist()
    if rows is not None and int(counts.sum()) != rows:  # the records disagree: the footer decides, parsed whole
        return None, None
    fits = (
        len(counts) == groups
        and bool((counts >= 0).all())
        and len(listed) - 4 == groups
        and footer_at <= at
        and 0 < length
        and at + length + 8 == size
        and 0 < header < end <= length
        and bool((np.diff(np.concatenate([[header], listed[4:], [end]])) > 0).all())
    )
    if not fits:
        raise ValueError("group_rows or footer_spans do not fit the table")
    return tuple(counts.tolist()), tuple(listed.tolist())


def int_list(values: Any) -> np.ndarray:
    """JSON list ``values`` as int64 (each value as ``int()`` takes it); TypeError or ValueError when it is not a list
    of such values (a manifest's thousands of row groups checked at numpy's speed, not one Python int at a time)."""
    if not isinstance(values, list):
        raise TypeError(f"expected a list, got {type(values).__name__}")
    try:
        out = np.asarray(values, dtype=np.int64)
    except OverflowError as exc:
        raise ValueError(str(exc)) from None
    if out.ndim != 1:
        raise ValueError("expected a flat list of integers")
    return out


def _seen(version: tuple[Any, ...], *segments: int) -> bool:
    with _lock:
        return any((*version, k) in _passed for k in segments)


def _check(root: Path, name: str, seg: Segments, k: int, what: str) -> None:
    """Hash segment ``k`` of table ``name`` and raise ChecksumError unless it has its recorded digest."""
    version = member_version(root, name)
    if version is None or _seen(version, _WHOLE, k):
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
                _passed.add((*version, k))
                if k == len(seg.bounds) - 1:
                    _passed.add((*version, _FOOTER))
    finally:
        os.close(fd)


def recorded_rows(root: Path, manifest: Mapping[str, Any], name: str) -> tuple[int, int] | None:
    """(rows, row groups) of table ``name`` as its row-group entry records them (None: not recorded, or the entry
    is not used). Trusted as the manifest is, once :func:`check_footers` passed: the footer they were measured
    from is the one on disk."""
    seg = _segments(root, manifest, name)
    return None if seg is None or seg.rows is None else (seg.rows, len(seg.bounds) - 1)


def footer_verified(root: Path, name: str) -> bool:
    """True when the footer of table ``name``, as it is on disk now, matched its recorded digest in this process."""
    version = member_version(root, name)
    return version is not None and _seen(version, _FOOTER)


def check_footer(root: Path, name: str, seg: Segments) -> None:
    """Raise ChecksumError unless the footer segment of file ``name`` (``seg``'s last) has its recorded digest
    (checked once per process and file version; then :func:`footer_verified` holds)."""
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
        else:
            _check(root, name, seg, len(seg.bounds) - 1, "footer")


def check_group(root: Path, manifest: Mapping[str, Any], name: str, group: int, verify: bool | None = None) -> None:
    """Raise ChecksumError unless row group ``group`` of table ``name`` has its recorded digest (checked once per
    process and file version; a table without usable segments is checked whole)."""
    if verify_enabled(verify):
        _check_group(root, manifest, name, group, _segments(root, manifest, name))


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
            continue
        version = member_version(root, name)
        if version is None or _seen(version, _WHOLE):
            continue
        _check_segments(root, name, seg, version, [k for k in range(len(seg.bounds)) if not _seen(version, k)])
        with _lock:
            _passed.add((*version, _WHOLE))
