"""The manifest's records of a table's row-group segments (``ome_arrow_core.table_groups``; see :mod:`.group_sums`):
:class:`Segments`, and each entry parsed and checked once per process, refused when malformed.

Entries are written with their integer lists packed, under ``ome_arrow_core.table_groups_packed``
(:data:`PACKED_GROUPS_KEY`): ``bounds``, ``group_rows`` and ``footer_spans`` each as base64 text of little-endian
int64 (see :mod:`.packed_ints`), beside ``"groups": G``. At a million images the three lists of the two tables are
~5,900 integers, ~100 KB of the manifest's JSON (one a line) and ~0.6 ms of every scan's parsing; packed they are
read at memcpy speed. Readers take either key (the packed one first); older readers of ours, which know only
``table_groups``, check such a dataset's tables whole (slower, as safe).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, overload

import numpy as np

from ..checksums import FIX
from ..errors import DamagedFileError
from ..fork_locks import fork_safe_lock
from ..frozen_types import frozen
from .footer_pieces import parse_pieces
from .packed_ints import pack_ints, unpack_ints
from .spec import GROUP_LISTS_KEY as LISTS_KEY
from .spec import MANIFEST
from .table_sums import recorded

__all__ = [
    "GROUPS_KEY",
    "PACKED_GROUPS_KEY",
    "HexSums",
    "Segments",
    "segments_of",
    "recorded_rows",
    "group_entries",
    "group_records",
    "packed_entry",
    "unpacked_entry",
    "set_group_records",
    "int_list",
]

#: Key of the recorded row-group digests in the manifest's ``ome_arrow_core`` section (lists as JSON numbers).
GROUPS_KEY: Final[str] = "table_groups"
#: Key of the same records with their integer lists packed (see the module): what writers write now.
PACKED_GROUPS_KEY: Final[str] = "table_groups_packed"
_LISTS: Final = ("bounds", "group_rows", "footer_spans")
_lock = fork_safe_lock(globals(), "_lock")


class HexSums(Sequence[str]):
    """Digests of 16 hex digits each, kept as the one text the manifest records them in and sliced as each is asked
    for (a million images' ~1,000 row groups are not made into ~1,000 strings by every process that opens them)."""

    __slots__ = ("_hash", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._hash: int | None = None

    def __len__(self) -> int:
        return len(self.text) // 16

    @overload
    def __getitem__(self, k: int) -> str: ...
    @overload
    def __getitem__(self, k: slice) -> tuple[str, ...]: ...
    def __getitem__(self, k: int | slice) -> str | tuple[str, ...]:
        if isinstance(k, slice):
            return tuple(self)[k]
        n = len(self)
        at = k + n if k < 0 else k
        if not 0 <= at < n:
            raise IndexError(f"digest {k} of {n}")
        return self.text[16 * at : 16 * at + 16]

    def __iter__(self) -> Iterator[str]:
        return (self.text[i : i + 16] for i in range(0, 16 * len(self), 16))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HexSums):
            return self.text == other.text
        return isinstance(other, tuple) and tuple(self) == other  # as the tuple of its digests

    def __hash__(self) -> int:
        if self._hash is None:  # as the tuple of its digests (equal to it), once
            self._hash = hash(tuple(self))
        return self._hash

    def __repr__(self) -> str:
        return f"HexSums({self.text!r})"


@frozen
class Segments:
    """One table's recorded segments: ``bounds`` (G + 1 offsets), ``sums`` (G + 1 digests), its size and digest."""

    digest: str
    size: int
    bounds: tuple[int, ...]
    sums: Sequence[str]
    #: Rows of the table (None in entries written without it): a scan counts images without parsing footers.
    rows: int | None = None
    #: Rows of each row group (None in entries written without it).
    group_rows: tuple[int, ...] | None = None
    #: Where the footer's row group entries lie (None in entries written without it): the serialized
    #: FileMetaData's first byte in the file, its length, its row group list's header and end, and each row
    #: group entry's first byte (offsets in the FileMetaData; see :mod:`.group_footers`).
    footer_spans: tuple[int, ...] | None = None
    #: The digests of the footer's pieces (head and tail, then each block of ``footer_block`` row group entries;
    #: None in entries written without them: the footer is checked whole; see :mod:`.footer_pieces`).
    footer_sums: HexSums | None = None
    footer_block: int | None = None

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
        if self.footer_sums is not None and self.footer_block is not None:
            out["footer_block"], out["footer_sums"] = self.footer_block, self.footer_sums.text
        return out


def segments_of(root: Path, manifest: Mapping[str, Any], name: str) -> Segments | None:
    """The usable segments of table ``name`` (None: none recorded, or its records disagree: hash it whole). Records
    in a sidecar (:mod:`.group_lists`) are read from it."""
    ours = manifest.get("ome_arrow_core") or {}
    if isinstance(ours, Mapping) and LISTS_KEY in ours:  # (not imported by a scan, which never reads them)
        from .group_lists import lists_of

        ours = lists_of(root, manifest)
    for key in (PACKED_GROUPS_KEY, GROUPS_KEY):
        listed = ours.get(key) if isinstance(ours, Mapping) else None
        if isinstance(listed, Mapping) and name in listed:
            break
    else:
        return None
    seg = _parsed(root, name, listed[name], key)  # a malformed entry is refused
    if ours is not manifest.get("ome_arrow_core"):  # from a sidecar: what scan counted by must be what it holds
        _agrees(root, manifest, name, seg)
    return seg if recorded(root, manifest).get(name) == [seg.digest] else None


def _agrees(root: Path, manifest: Mapping[str, Any], name: str, seg: Segments) -> None:
    """DamagedFileError unless the manifest's ``group_lists.tables`` entry of ``name`` (what a scan counts images by)
    records the rows, row groups and digest of ``seg``, the sidecar's segments of that table."""
    side = (manifest.get("ome_arrow_core") or {}).get(LISTS_KEY)
    tables = side.get("tables") if isinstance(side, Mapping) else None
    said = tables.get(name) if isinstance(tables, Mapping) else None
    if said is None:
        return  # not counted by it: a scan hashed the footers
    want = {"digest": seg.digest, "rows": seg.rows, "groups": len(seg.bounds) - 1}
    if not isinstance(said, Mapping) or {k: said.get(k) for k in want} != want:
        raise DamagedFileError(
            f"{root} [{MANIFEST}]: ome_arrow_core.{LISTS_KEY}.tables[{name!r}] is {str(said)[:200]!r}, its row-group "
            f"lists record {want}: the manifest is damaged. Fix: {FIX}"
        )


#: Parsed entries by the entry object (a plate's entry lists a segment per 1,024 images: parsed once per process; the
#: manifest a reader is handed is shared and never changed, see :mod:`.manifest_cache`): id -> (the entry, held so
#: that its id is not reused, its segments).
_PARSED: dict[int, tuple[Any, Segments]] = {}
_PARSED_KEPT: Final[int] = 64


def _parsed(root: Path, name: str, entry: Any, key: str = GROUPS_KEY) -> Segments:
    """The segments ``entry`` (the manifest's entry of table ``name``, under ``key``) records; DamagedFileError when
    malformed."""
    hit = _PARSED.get(id(entry))
    if hit is not None and hit[0] is entry:
        return hit[1]
    try:
        fields = unpacked_entry(entry)
        listed = int_list(fields["bounds"])  # checked at numpy's speed: a million images list ~1,000 groups
        text, size, digest = str(entry["sums"]).lower(), int(entry["size"]), str(entry["digest"]).lower()
        rows = None if entry.get("rows") is None else int(entry["rows"])
        ok = (
            (rows is None or rows >= 0)
            and len(listed) > 0
            and len(text) == 16 * len(listed)
            and int(listed[0]) == 0
            and bool((np.diff(listed) > 0).all())
            and int(listed[-1]) <= size
        )
        bounds = tuple(listed.tolist())
        group_rows, spans = group_entries(fields, len(bounds) - 1, rows, bounds[-1], size)
        pieces = parse_pieces(entry, len(bounds) - 1) if spans is not None else None
    except (TypeError, ValueError, KeyError, AttributeError, IndexError):
        ok = False
    if not ok:
        raise DamagedFileError(
            f"{root} [{MANIFEST}]: ome_arrow_core.{key}[{name!r}] is {str(entry)[:300]!r}; expected {{digest, "
            "size, bounds (increasing from 0), sums (16 hex digits a segment), rows, group_rows (rows of each row "
            f"group), footer_spans (where its footer lists them), footer_block and footer_sums (its pieces' digests); "
            f"packed: groups, and the three lists as base64 int64}}: "
            f"the manifest is damaged. Fix: {FIX}"
        )
    sums, block = (None, None) if pieces is None else (HexSums(pieces[0]), pieces[1])
    found = Segments(digest, size, bounds, HexSums(text), rows, group_rows, spans, sums, block)
    with _lock:
        if len(_PARSED) >= _PARSED_KEPT:
            _PARSED.clear()
        _PARSED[id(entry)] = (entry, found)
    return found


def unpacked_entry(entry: Any) -> Mapping[str, Any]:
    """Entry ``entry`` with its packed lists as int64 arrays (as it is when not packed); TypeError, ValueError or
    KeyError when they are not base64 text of G + 1, G and G + 4 int64."""
    if not isinstance(entry, Mapping) or "groups" not in entry:
        return entry
    groups = entry["groups"]
    if type(groups) is not int or groups < 0:
        raise ValueError(f"groups is {groups!r}, expected a count")
    out = {k: v for k, v in entry.items() if k != "groups"}
    for key, count in zip(_LISTS, (groups + 1, groups, groups + 4)):
        if out.get(key) is not None:
            out[key] = unpack_ints(out[key], count)
    return out


def packed_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Entry ``entry`` (lists as JSON lists or arrays, or packed already) with its lists packed."""
    if "groups" in entry:
        return dict(entry)
    out = dict(entry)
    out["groups"] = len(entry["bounds"]) - 1
    for key in _LISTS:
        if isinstance(out.get(key), (list, tuple, np.ndarray)):  # (anything else is left for readers to refuse)
            out[key] = pack_ints(np.asarray(out[key], dtype=np.int64))
    return out


def group_records(ours: Any) -> dict[str, Any]:
    """The tables' row-group records of the manifest's ``ome_arrow_core`` section ``ours``, by table name (the packed
    records, and the older key's for tables they do not record)."""
    out: dict[str, Any] = {}
    for key in (GROUPS_KEY, PACKED_GROUPS_KEY):
        listed = ours.get(key) if isinstance(ours, Mapping) else None
        if isinstance(listed, Mapping):
            out.update(listed)
    return out


def set_group_records(ours: dict[str, Any], records: Mapping[str, Any]) -> None:
    """Record ``records`` (:func:`~.group_measure.record_groups`'s) in the manifest's ``ome_arrow_core`` section
    ``ours``, packed, replacing what either key recorded."""
    ours.pop(GROUPS_KEY, None)
    ours.pop(PACKED_GROUPS_KEY, None)
    if records:
        ours[PACKED_GROUPS_KEY] = {n: packed_entry(e) for n, e in records.items()}


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
    of such values (a manifest's thousands of row groups checked at numpy's speed, not one Python int at a time). A
    flat int64 array (integers unpacked from the manifest, see :mod:`.packed_ints`) is taken as it is."""
    if isinstance(values, np.ndarray) and values.dtype == np.int64 and values.ndim == 1:
        return values
    if not isinstance(values, list):
        raise TypeError(f"expected a list, got {type(values).__name__}")
    try:
        out = np.asarray(values, dtype=np.int64)
    except OverflowError as exc:
        raise ValueError(str(exc)) from None
    if out.ndim != 1:
        raise ValueError("expected a flat list of integers")
    return out


def recorded_rows(root: Path, manifest: Mapping[str, Any], name: str) -> tuple[int, int] | None:
    """(rows, row groups) of table ``name`` as its row-group entry records them (None: not recorded, or the entry
    is not used). Trusted as the manifest is: a scan counts images by them without hashing a footer; the first read
    checks the footer (and parses the whole entry, refusing it when malformed) before it parses anything. A packed
    entry's lists are not unpacked for this (its ``groups`` and ``rows``, when integers, say it); lists in a sidecar
    are not read for it (the manifest's ``group_lists.tables`` says it, see :mod:`.group_lists`)."""
    ours = manifest.get("ome_arrow_core") or {}
    side = ours.get(LISTS_KEY) if isinstance(ours, Mapping) else None
    if isinstance(side, Mapping):
        tables = side.get("tables")
        listed = tables if isinstance(tables, Mapping) else None
    else:
        listed = ours.get(PACKED_GROUPS_KEY) if isinstance(ours, Mapping) else None
    entry = listed.get(name) if isinstance(listed, Mapping) else None
    if isinstance(entry, Mapping):
        rows, groups, digest = entry.get("rows"), entry.get("groups"), entry.get("digest")
        if type(rows) is int and type(groups) is int and rows >= 0 and groups >= 0 and isinstance(digest, str):
            return (rows, groups) if recorded(root, manifest).get(name) == [digest.lower()] else None
    if isinstance(side, Mapping):
        return None  # never the sidecar for a count: the caller counts otherwise
    seg = segments_of(root, manifest, name)
    return None if seg is None or seg.rows is None else (seg.rows, len(seg.bounds) - 1)
