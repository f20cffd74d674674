"""Reading image records (see :mod:`.image_records`): one image's row from a page or two, each checked first.

A reader whose manifest lists records for an images table, made from that table as it is now (the entry's
``images`` digests are the table's recorded ones), reads an image's metadata and pixel locator from its record
instead of decoding its images row group. With checks on, the file's page sums are hashed once against the
manifest's ``sums`` and every page read against its sum (``ChecksumError`` otherwise); a record whose fields
cannot be right (a variant or heap range past the end, bytes that are not UTF-8) is a ``DamagedFileError`` even with
checks off. A records file of another size than recorded (truncated, rewritten) is not used: the images table
serves, checked by its row groups as before.
"""

from __future__ import annotations

import copy
import os
import struct
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import numpy as np

from ..boundary import open_regular
from ..checksums import ENV, FIX, hex_digest, to_hex
from ..errors import ChecksumError, DamagedFileError
from ..meta import ImageMeta
from .image_records import NULL_NAME, PAGE, RECORD, RECORDS_KEY, VARIANT_COLUMNS, WIDTH, entry_known, entry_ok
from .image_rows import meta_from_row
from .spec import LOCATOR_COLUMNS, MANIFEST
from .table_sums import TABLES_KEY

__all__ = ["RecordReader", "PartRecords", "records_of", "records_uniform", "RECORD_COLUMNS", "ROWS_KEPT"]

#: The columns a record serves: its metadata's and its pixel locator's.
RECORD_COLUMNS: Final[frozenset[str]] = frozenset(("image_id", "name", *VARIANT_COLUMNS, *LOCATOR_COLUMNS))
#: One record (see :data:`~.image_records.RECORD`).
_RECORD: Final = struct.Struct("<QQQHHI")
assert _RECORD.size == RECORD.itemsize == WIDTH
#: Checked pages kept (the most recently used).
PAGES_KEPT: Final[int] = 16
#: Rows read from records kept (the most recently used).
ROWS_KEPT: Final[int] = 4096


def records_of(
    root: Path, manifest: Mapping[str, Any], images: Sequence[str], verify: bool
) -> list[RecordReader | None]:
    """A reader of the records of each images table of ``images`` (None: it has none, or none made from the table
    as the manifest records it now). DamagedFileError for a malformed entry."""
    ours = manifest.get("ome_arrow_core") or {}
    listed = ours.get(RECORDS_KEY) if isinstance(ours, Mapping) else None
    if listed is None:
        return [None] * len(images)
    if not isinstance(listed, Mapping):
        raise DamagedFileError(f"{root} [{MANIFEST}]: ome_arrow_core.{RECORDS_KEY} is not a mapping of tables")
    tables = ours.get(TABLES_KEY) or {}
    out: list[RecordReader | None] = []
    for name in images:
        entry = listed.get(name)
        if entry is None:
            out.append(None)
            continue
        if not entry_ok(entry):
            raise DamagedFileError(
                f"{root} [{MANIFEST}]: ome_arrow_core.{RECORDS_KEY}[{name!r}] is {str(entry)[:300]!r}: not a records "
                "entry; the manifest is damaged"
            )
        fresh = entry_known(entry) and isinstance(tables, Mapping) and tables.get(name) == entry["images"]
        out.append(RecordReader(root, entry, verify) if fresh else None)
    return out


def records_uniform(manifest: Mapping[str, Any], images: Sequence[str], columns: Sequence[str]) -> bool | None:
    """Whether every image of images tables ``images`` has the same values of ``columns`` (variant columns), by the
    variants of their records; None when a table has no records made from it as it is now."""
    ours = manifest.get("ome_arrow_core") or {}
    listed = ours.get(RECORDS_KEY) if isinstance(ours, Mapping) else None
    tables = ours.get(TABLES_KEY) if isinstance(ours, Mapping) else None
    if not isinstance(listed, Mapping) or not isinstance(tables, Mapping):
        return None
    at = [VARIANT_COLUMNS.index(c) for c in columns]
    seen: set[tuple[Any, ...]] = set()
    for name in images:
        entry = listed.get(name)
        if entry is None or not entry_ok(entry) or not entry_known(entry) or tables.get(name) != entry["images"]:
            return None
        seen.update(tuple(v[k] for k in at) for v in entry["variants"])
    return len(seen) == 1


class RecordReader:
    """The records of one images table (``entry``: its manifest entry; ``verify``: check each page read)."""

    def __init__(self, root: Path, entry: Mapping[str, Any], verify: bool) -> None:
        self.path = root / str(entry["file"])
        self.count, self.verify = int(entry["count"]), verify
        self.per_page = PAGE // WIDTH
        self.record_pages = int(entry["record_pages"])
        self.heap_bytes = int(entry["heap_bytes"])
        self.pages = self.record_pages + -(-self.heap_bytes // PAGE)
        self.size, self.sums_digest = int(entry["size"]), str(entry["sums"])
        if (
            self.count <= 0
            or self.heap_bytes < 0
            or self.record_pages != -(-self.count // self.per_page)
            or self.size != self.pages * (PAGE + 8)
        ):
            raise DamagedFileError(
                f"{self.path}: its manifest entry's counts and sizes disagree; the manifest is damaged"
            )
        self.variants = [dict(zip(VARIANT_COLUMNS, v)) for v in entry["variants"]]
        #: None: not looked at yet; False: not usable (another size than recorded: the images table serves).
        self._usable: bool | None = None
        self._sums: np.ndarray | None = None
        self._pages: OrderedDict[int, bytes] = OrderedDict()
        self._held: int | None = None  # the file, open while a batch holds it (see :meth:`hold`)
        self._holds = 0

    def hold(self) -> None:
        """Keep the file open for :meth:`row` until as many :meth:`release` calls (a batch's rows: one open, not one
        a row). Not thread-safe: callers hold the lock they hold for :meth:`row`."""
        if self._holds == 0 and self._usable is not False:
            try:
                self._held = open_regular(self.path.parent, self.path.name)
            except FileNotFoundError:
                self._held = None  # (row() finds it gone and says so)
        self._holds += 1

    def release(self) -> None:
        """The end of a :meth:`hold` (the file closed at the last)."""
        self._holds -= 1
        if self._holds == 0 and self._held is not None:
            fd, self._held = self._held, None
            os.close(fd)

    def row(self, i: int) -> tuple[dict[str, Any], int] | None:
        """Record ``i`` as an images row (the columns of :data:`RECORD_COLUMNS`) and its variant number, or None when
        the file is not usable."""
        if self._usable is False:
            return None
        fd = self._held
        if fd is None:
            try:
                fd = open_regular(self.path.parent, self.path.name)  # a FIFO refused, not waited on
            except FileNotFoundError:
                self._usable = False
                return None
        try:
            if self._usable is None:
                self._usable = os.fstat(fd).st_size == self.size
                if not self._usable:
                    return None
            if not 0 <= i < self.count:
                raise IndexError(i)
            p, k = divmod(i, self.per_page)
            offset, checksum, heap, id_len, name_len, variant = _RECORD.unpack_from(self._page(fd, p), k * WIDTH)
            end = heap + id_len + (0 if name_len == NULL_NAME else name_len)
            if variant >= len(self.variants) or end > self.heap_bytes:
                raise DamagedFileError(
                    f"{self.path}: record {i} names variant {variant} of {len(self.variants)} and heap bytes "
                    f"{heap}..{end} of {self.heap_bytes}; the records file is damaged"
                )
            text = self._heap(fd, heap, end)
        finally:
            if fd != self._held:
                os.close(fd)
        try:
            image_id = text[:id_len].decode()
            name = None if name_len == NULL_NAME else text[id_len:].decode()
        except UnicodeDecodeError:
            raise DamagedFileError(f"{self.path}: record {i}'s id or name is not UTF-8; the file is damaged") from None
        row = {**self.variants[variant], "image_id": image_id, "name": name}
        row.update(pixels_offset=offset, pixels_checksum=checksum)
        return row, variant

    def _heap(self, fd: int, start: int, end: int) -> bytes:
        """Heap bytes ``start..end`` (from their pages, each checked)."""
        if end <= start:
            return b""
        first, last = (self.record_pages + start // PAGE, self.record_pages + (end - 1) // PAGE)
        data = b"".join(self._page(fd, p) for p in range(first, last + 1))
        at = start % PAGE
        return data[at : at + end - start]

    def _page(self, fd: int, p: int) -> bytes:
        """Page ``p``, checked against its sum (with checks on; the most recent :data:`PAGES_KEPT` kept)."""
        hit = self._pages.get(p)
        if hit is not None:
            self._pages.move_to_end(p)
            return hit
        data = os.pread(fd, PAGE, p * PAGE)
        if len(data) != PAGE:
            raise DamagedFileError(f"{self.path}: page {p} is cut short ({len(data)} of {PAGE} bytes); truncated")
        if self.verify:
            import xxhash

            sums = self._sums if self._sums is not None else self._load_sums(fd)
            got = xxhash.xxh3_64_intdigest(data)
            if got != int(sums[p]):
                raise ChecksumError(
                    f"{self.path}: page {p} (bytes {p * PAGE}..{(p + 1) * PAGE}) does not match its recorded "
                    f"checksum (recorded {to_hex(int(sums[p]))}, computed {to_hex(got)}); the records file is damaged and "
                    f"was not used. Fix: {FIX}. To read it anyway pass verify=False or set {ENV}=0"
                )
        self._pages[p] = data
        while len(self._pages) > PAGES_KEPT:
            self._pages.popitem(last=False)
        return data

    def _load_sums(self, fd: int) -> np.ndarray:
        """The page sums, checked against the manifest's digest of them (once)."""
        tail = os.pread(fd, self.pages * 8, self.pages * PAGE)
        got = hex_digest(tail) if len(tail) == self.pages * 8 else "short"
        if got != self.sums_digest:
            raise ChecksumError(
                f"{self.path}: its page sums (bytes {self.pages * PAGE}..{self.size}) do not match the manifest's "
                f"digest (recorded {self.sums_digest}, computed {got}); the records file is damaged (or the manifest "
                f"lies) and was not used. Fix: {FIX}. To read it anyway pass verify=False or set {ENV}=0"
            )
        self._sums = np.frombuffer(tail, "<u8")
        return self._sums


class PartRecords:
    """The records of the images tables of a dataset's parts (in order; ``first``: each part's first image row, then
    the count), read by image row."""

    def __init__(
        self, root: Path, manifest: Mapping[str, Any], images: Sequence[str], first: np.ndarray, verify: bool
    ) -> None:
        self.first = first
        self.readers = records_of(root, manifest, images, verify)
        for reader, n in zip(self.readers, np.diff(first).tolist()):
            if reader is not None and reader.count != n:
                raise DamagedFileError(
                    f"{reader.path}: holds {reader.count} records for an images table of {n} rows; the manifest is "
                    "damaged"
                )
        self._rows: OrderedDict[int, tuple[dict[str, Any], int, int]] = OrderedDict()
        #: The metadata of the first image of each (part, variant) read, without OME-XML (None: with it).
        self._templates: dict[tuple[int, int], ImageMeta | None] = {}

    @contextmanager
    def held(self, lock: threading.Lock) -> Iterator[None]:
        """Every records file kept open while the block runs (:meth:`RecordReader.hold`), opened and closed under
        ``lock``, the one callers of :meth:`row` and :meth:`meta` hold."""
        with lock:
            readers = [r for r in self.readers if r is not None]
            for reader in readers:
                reader.hold()
        try:
            yield
        finally:
            with lock:
                for reader in readers:
                    reader.release()

    def row(self, pos: int) -> dict[str, Any] | None:
        """Image row ``pos``'s columns of :data:`RECORD_COLUMNS` from its record (None: its table has none usable;
        the most recent :data:`ROWS_KEPT` kept). Not thread-safe: callers hold their lock."""
        got = self._entry(pos)
        return None if got is None else got[0]

    def meta(self, pos: int) -> ImageMeta | None:
        """The metadata of image row ``pos`` from its record (None: its table has none usable): ``meta_from_row`` of
        its row, made once per variant and given each image's id and name (a variant without OME-XML: the rest of
        the metadata is the variant's alone)."""
        got = self._entry(pos)
        if got is None:
            return None
        row, part, variant = got
        key = (part, variant)
        if key not in self._templates:
            self._templates[key] = meta_from_row(row) if row.get("ome_xml") is None else None
        template = self._templates[key]
        if template is None:
            return meta_from_row(row)
        meta = copy.copy(template)
        object.__setattr__(meta, "id", str(row["image_id"]))
        object.__setattr__(meta, "name", str(row.get("name") or row["image_id"]))
        return meta

    def _entry(self, pos: int) -> tuple[dict[str, Any], int, int] | None:
        """(row, part, variant) of image row ``pos`` from its record (see :meth:`row`)."""
        hit = self._rows.get(pos)
        if hit is not None:
            self._rows.move_to_end(pos)
            return hit
        part = 0 if len(self.readers) == 1 else int(np.searchsorted(self.first, pos, side="right")) - 1
        reader = self.readers[part]
        if reader is None:
            return None
        got = reader.row(pos - int(self.first[part]))
        if got is None:
            self.readers[part] = None  # not usable (another size than recorded): the images table serves
            return None
        entry = self._rows[pos] = (got[0], part, got[1])
        while len(self._rows) > ROWS_KEPT:
            self._rows.popitem(last=False)
        return entry
