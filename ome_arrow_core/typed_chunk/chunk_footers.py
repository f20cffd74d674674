"""Packed Parquet chunks files read a row group at a time through one-group footers: no whole footer parsed.

A plate's small images share row groups of ``chunks.parquet`` (see docs/format.md, "Small images share row
groups"), read through the file's footer: at a million images that footer is 1.2 MB of Thrift (977 row groups of
14 columns), ~25 ms and ~15 MiB resident to parse for one image. The manifest now records, per such file, under
``ome_arrow_core.chunk_footers``::

    "chunk_footers": {"chunks.parquet": {"size": S, "footer": "<XXH3-64 of bytes at..S>", "rows": R,
                                         "group_rows": [...], "group_bytes": [...], "footer_spans": [...]}}

Written so before; now the three lists are written packed, under ``ome_arrow_core.chunk_footers_packed``
(:data:`PACKED_FOOTERS_KEY`), as ``{"size": S, "footer": ..., "rows": R, "groups": G, "ints": "<base64>"}``: ``ints``
holds the G group_rows, G group_bytes and G + 4 footer_spans as little-endian int64 (see :mod:`.packed_ints`; ~9,400
integers at 100,000 images, ~1.2 ms of JSON a first image paid). Readers take either; older readers, which know only
``chunk_footers``, parse such a file's footer whole. ``footer_spans`` as the tables' entries have them (see :mod:`.group_footers`); ``group_bytes``: the most
``pixel_bytes`` each row group can hold (its column chunk's uncompressed bytes; -1 with a dictionary page), which
bounds an image's declared size before anything is allocated. A reader with checks on hashes the footer (and
trailer) against ``footer`` once per process and file version, then reads row group ``g`` through the footer of
its entry alone (:class:`SplicedFragment`); each splice is checked (one row group, of the rows and pixel bytes
recorded). A file of the recorded size whose footer does not match is refused (ChecksumError). Files without an
entry, entries that disagree with their ``rows``, files of another size than recorded (a compaction's swap killed
half-way leaves the old manifest beside the merged file; a truncated file) and reads with checks off parse the
footer whole, as before (chunks files' footers were never checked against a digest: each chunk is, and each row is
compared with the index).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa

from .. import parquet_lite as pq
from ..boundary import reading
from ..errors import DamagedFileError
from ..remote import remote_chunk
from .footer_pieces import FOOTER_BLOCK, parse_pieces
from .footers import group_footers
from .fragments import ParquetFragment
from .group_footers import GroupFooters
from .group_measure import footer_piece_sums
from .group_records import HexSums
from .group_sums import Segments, check_footer, digest_of, footer_spans_of, group_entries, int_list, settle_footer
from .packed_ints import pack_ints, unpack_ints
from .readcheck import AUDITED
from .spec import MANIFEST

__all__ = [
    "CHUNK_FOOTERS_KEY",
    "PACKED_FOOTERS_KEY",
    "SplicedFragment",
    "footer_records",
    "set_footer_records",
    "measure_chunk_footer",
    "record_chunk_footers",
    "recorded_rows",
    "spliced_fragment",
]

#: Key of the chunks files' footer records with JSON lists in the manifest's ``ome_arrow_core`` section (read).
CHUNK_FOOTERS_KEY: Final[str] = "chunk_footers"
#: Key of the chunks files' footer records with packed integers (written).
PACKED_FOOTERS_KEY: Final[str] = "chunk_footers_packed"
#: The list fields of a record, in the order ``ints`` packs them.
_LISTS: Final = ("group_rows", "group_bytes", "footer_spans")
#: The digest of segment 0 (the row groups' bytes) in a chunks file's segments: never computed nor checked (each
#: chunk is checked against the index's checksum instead), and no digest ever equals it.
_UNCHECKED: Final[str] = "-" * 16


def measure_chunk_footer(file: Path) -> dict[str, Any] | None:
    """The ``chunk_footers`` entry of Parquet chunks file ``file`` (just written), or None when its footer cannot
    be walked or it has no ``pixel_bytes`` column (then readers parse its footer whole)."""
    md = pq.read_metadata(file)
    at = md.schema.to_arrow_schema().get_field_index("pixel_bytes")
    size = file.stat().st_size
    fd = os.open(file, os.O_RDONLY)
    try:
        spans = footer_spans_of(fd, size, md.num_row_groups)
        digest = None if spans is None else digest_of(fd, spans[0], size)
        pieces = None if spans is None else footer_piece_sums(fd, spans)
    finally:
        os.close(fd)
    if spans is None or digest is None or at < 0:
        return None
    groups = [md.row_group(g) for g in range(md.num_row_groups)]
    return _packed(
        {
            "size": size,
            "footer": digest,
            "rows": int(md.num_rows),
            "group_rows": [int(g.num_rows) for g in groups],
            "group_bytes": [_pixel_bytes(g, at) for g in groups],
            "footer_spans": list(spans),
            "footer_block": FOOTER_BLOCK,
            "footer_sums": pieces,
        }
    )


def _packed(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Record ``entry`` (its lists as lists or arrays) with its lists packed (see the module)."""
    groups = len(entry["group_rows"])
    out = {k: v for k, v in entry.items() if k not in _LISTS}
    out["groups"] = groups
    out["ints"] = pack_ints(np.concatenate([np.asarray(entry[k], dtype=np.int64) for k in _LISTS]))
    return out


def _unpacked(entry: Any) -> Mapping[str, Any]:
    """Record ``entry`` with its lists as int64 arrays when packed (as it is otherwise); TypeError, ValueError or
    KeyError when its packed integers are not G + G + (G + 4) int64."""
    if not isinstance(entry, Mapping) or "ints" not in entry:
        return entry
    groups = entry["groups"]
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 0:
        raise ValueError(f"groups is {groups!r}, expected a count")
    ints = unpack_ints(entry["ints"], 3 * groups + 4)
    lists = dict(zip(_LISTS, (ints[:groups], ints[groups : 2 * groups], ints[2 * groups :])))
    return {**{k: v for k, v in entry.items() if k not in ("groups", "ints")}, **lists}


def footer_records(ours: Any) -> dict[str, Any]:
    """The chunks files' footer records of the manifest's ``ome_arrow_core`` section ``ours``, by file name (the
    packed records, and the older key's for files they do not record)."""
    out: dict[str, Any] = {}
    for key in (CHUNK_FOOTERS_KEY, PACKED_FOOTERS_KEY):
        listed = ours.get(key) if isinstance(ours, Mapping) else None
        if isinstance(listed, Mapping):
            out.update(listed)
    return out


def set_footer_records(ours: dict[str, Any], footers: Mapping[str, Any]) -> None:
    """Record ``footers`` (:func:`record_chunk_footers`'s) in the manifest's ``ome_arrow_core`` section ``ours``,
    replacing what either key recorded."""
    ours.pop(CHUNK_FOOTERS_KEY, None)
    ours.pop(PACKED_FOOTERS_KEY, None)
    if footers:
        ours[PACKED_FOOTERS_KEY] = dict(footers)


def _pixel_bytes(group: pq.RowGroupMetaData, at: int) -> int:
    col = group.column(at)
    return -1 if col.has_dictionary_page else int(col.total_uncompressed_size)


def _still_matches(file: Path, entry: Any) -> bool:
    """True when ``entry`` (a previous manifest's) still describes ``file``: its size and footer digest agree."""
    try:
        entry = _unpacked(entry)
        size, spans, digest = int(entry["size"]), entry["footer_spans"], str(entry["footer"])
        if file.stat().st_size != size:
            return False
        fd = os.open(file, os.O_RDONLY)
        try:
            return digest_of(fd, int(spans[0]), size) == digest
        finally:
            os.close(fd)
    except (TypeError, ValueError, KeyError, IndexError, OSError):
        return False


def _kept(entry: Any) -> dict[str, Any] | None:
    """A previous manifest's record ``entry`` packed (None when its lists are not integers: measured again)."""
    try:
        return _packed(_unpacked(entry))
    except (TypeError, ValueError, KeyError, OverflowError):
        return None


def record_chunk_footers(
    root: Path, names: Iterable[str], keep: Mapping[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """The ``chunk_footers`` entries of the Parquet chunks files ``names`` of the dataset at ``root`` (those read
    through their footers: the caller leaves out files read by page ranges), kept from ``keep`` (the previous
    manifest's entries, see :func:`footer_records`; packed) where a file is unchanged, measured otherwise."""
    out: dict[str, dict[str, Any]] = {}
    kept = keep if isinstance(keep, Mapping) else {}
    for name in names:
        file = root / name
        if not name.lower().endswith(".parquet") or not file.is_file():
            continue
        old = kept.get(name)
        found = _kept(old) if _still_matches(file, old) else None
        found = found or measure_chunk_footer(file)
        if found is not None:
            out[name] = found
    return out


def _segments(root: Path, name: str, entry: Any) -> tuple[Segments, np.ndarray] | None:
    """(the segments, the pixel bytes of each row group) ``entry`` records for chunks file ``name``; None when its
    rows disagree (the footer decides); DamagedFileError when malformed."""
    try:
        entry = _unpacked(entry)
        size, digest, rows = int(entry["size"]), str(entry["footer"]).lower(), int(entry["rows"])
        group_bytes = int_list(entry["group_bytes"])
        groups = len(int_list(entry["footer_spans"])) - 4
        ok = (
            len(digest) == 16
            and all(c in "0123456789abcdef" for c in digest)
            and rows >= 0
            and groups >= 0
            and len(group_bytes) == groups
            and bool((group_bytes >= -1).all())
        )
        found = group_entries(entry, groups, rows, 4, size) if ok else (None, None)
        pieces = parse_pieces(entry, groups) if found[1] is not None else None
    except (TypeError, ValueError, KeyError, AttributeError):
        ok = False
    if not ok:
        raise DamagedFileError(
            f"{root} [{MANIFEST}]: ome_arrow_core.{PACKED_FOOTERS_KEY} (or {CHUNK_FOOTERS_KEY})[{name!r}] is "
            f"{str(entry)[:300]!r}; expected {{size, footer (16 hex digits), rows, group_rows, group_bytes, "
            "footer_spans (packed: groups, ints: their 3 groups + 4 int64 as base64), footer_block and footer_sums} "
            "that fit the file: the "
            "manifest is damaged. Rewrite the dataset, or read it with verify=False (its footer then parsed whole)"
        )
    group_rows, listed = found
    if group_rows is None or listed is None:
        return None
    sums, block = (None, None) if pieces is None else (HexSums(pieces[0]), pieces[1])
    found_seg = Segments("", size, (0, listed[0]), (_UNCHECKED, digest), rows, group_rows, listed, sums, block)
    return found_seg, group_bytes


def recorded_rows(root: Path, manifest: Mapping[str, Any], name: str, verify: bool) -> int | None:
    """The rows chunks file ``name`` of the dataset at ``root`` holds by the manifest's record, when it is to be opened
    on first use (checks on, a file of the recorded size: :func:`spliced_fragment` tries it; a remote one, which it
    does not splice, opens with its footer parsed whole); None otherwise, or when the record gives no count. Nothing
    of the file is read: its footer is checked and its rows compared with the record when it opens (a plate's
    images read by their pixel locators never open it: a remote plate's ``ds[i]`` fetches no footer)."""
    if not verify:
        return None
    from .group_lists import lists_of

    entry = footer_records(lists_of(root, manifest)).get(name)
    if not isinstance(entry, Mapping):
        return None
    rows, size = entry.get("rows"), entry.get("size")
    if type(rows) is not int or type(size) is not int or rows < 0:
        return None  # opened now: spliced_fragment says what is wrong with the record
    try:
        return rows if (root / name).stat().st_size == size else None
    except OSError:
        return None


def spliced_fragment(root: Path, manifest: Mapping[str, Any], name: str, verify: bool) -> SplicedFragment | None:
    """Chunks file ``name`` of the dataset at ``root`` read through one-group footers, its footer checked against
    the manifest's record first (ChecksumError when it does not match); None when it cannot be (checks off, no
    record, a remote file, records that disagree, a file of another size than recorded): then it opens as before,
    its footer parsed whole."""
    if not verify or remote_chunk(root / name) is not None:
        return None
    from .group_lists import lists_of

    listed = footer_records(lists_of(root, manifest))  # in the manifest, or its sidecar (see group_lists)
    if name not in listed:
        return None
    found = _segments(root, name, listed[name])
    if found is None:
        return None
    seg, group_bytes = found
    try:
        if (root / name).stat().st_size != seg.size:  # not the file recorded (a compaction's swap half done, or a
            return None  # truncated one): its footer decides, parsed whole as before
    except OSError:
        return None  # opening it as before says what is wrong
    check_footer(root, name, seg)  # ChecksumError before any of its bytes is parsed
    footers = group_footers(root, name, seg)
    return None if footers is None else SplicedFragment(root / name, footers, group_bytes)


class SplicedFragment(ParquetFragment):
    """A Parquet chunks file whose row groups are read through one-group footers (see the module)."""

    def __init__(self, file: Path, footers: GroupFooters, group_bytes: np.ndarray) -> None:
        self.path = file
        self._footers = footers
        self._whole: pq.ParquetFile | None = None
        self.group_rows = footers.group_rows
        self.group_bytes = group_bytes
        self._bytes = group_bytes
        names = footers.schema.names
        self._at = names.index("pixel_bytes") if "pixel_bytes" in names else -1
        self._columns = [c for c in ("chunk_id",) if c in names] + ["pixel_bytes"]
        self._audited = [c for c in AUDITED if c in names] + self._columns

    @property
    def file(self) -> pq.ParquetFile:
        """The file opened with its whole footer (parsed on first use: ``info()`` only)."""
        if self._whole is None:
            settle_footer(self.path.parent, self.path.name)  # its head and tail only checked: the rest first
            with reading(self.path.parent, self.path.name, "reading the chunks file's footer"):
                self._whole = pq.ParquetFile(self.path)
        return self._whole

    @file.setter
    def file(self, value: pq.ParquetFile) -> None:
        self._whole = value

    def read(self, groups: np.ndarray, audit: bool = False) -> pa.Table:
        """``pixel_bytes`` and ``chunk_id`` of row groups ``groups`` (with ``audit`` also ``dtype``, ``image_id``,
        the coordinates and the shapes), each through its one-group footer, checked against the record."""
        columns = self._audited if audit else self._columns
        tables = []
        for g in np.asarray(groups, dtype=np.int64).tolist():
            md = self._footers.group_metadata(g)
            held = _pixel_bytes(md.row_group(0), self._at) if self._at >= 0 else -2
            if held != int(self._bytes[g]):
                raise DamagedFileError(
                    f"{self.path}: row group {g} holds {held} bytes of pixel_bytes, the manifest records "
                    f"{int(self._bytes[g])}; the chunks file or the manifest is damaged"
                )
            with reading(self.path.parent, self.path.name, "reading chunk pixels"):
                pf = pq.ParquetFile(self.path, metadata=md, **pq.LOCAL_READS)
                tables.append(pf.read_row_group(0, columns=columns, use_threads=False))
        if not tables:
            return pa.table({c: pa.array([], self._footers.schema.field(c).type) for c in columns})
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        if not pa.types.is_large_binary(table.schema.field("pixel_bytes").type):
            raise DamagedFileError(
                f"{self.path.parent} [{self.path.name}]: pixel_bytes is {table.schema.field('pixel_bytes').type}, "
                "expected large_binary; the chunks file is damaged or not ours"
            )
        return table
