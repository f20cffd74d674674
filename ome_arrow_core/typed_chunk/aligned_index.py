"""Aligned index tables: row group g of an index table holds the chunk rows of the images of images row group g.

Written so (:func:`write_aligned_index`, marked by the key ``ome_arrow_core.index_groups = images`` in the
index file's footer), opening one image reads one row group of the images table and one of the index, whatever
the number of images: :class:`AlignedIndex` loads index row groups as images need them, into index-length
arrays that stay unallocated (zero pages) where nothing was loaded. Tables without the key (older datasets,
ome-arrow 0.1.0, rewritten by other tools) are read whole, as before.

The layout is only ever trusted for what it is read for: a row group holding another group's images leaves an
image without its chunks (refused by the coverage check), a fragment_path the manifest does not list is refused,
chunk ids must be unique within a group, and reads check each chunk row against the index (:mod:`.readcheck`).
"""

from __future__ import annotations

import itertools
import mmap
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa

from .. import parquet_lite as pq
from ..arrow_numpy import int_values, valid_mask
from ..boundary import reading, require_member
from ..errors import DamagedFileError
from ..uniques import unique, unique_first
from .bounds import dictionary_codes
from .checks import check_member, check_unique
from .footers import footer
from .group_sums import TableGuard
from .grouped_reads import GroupedChecks, GroupedPages, sub_pages
from .image_groups import ImageRows, footers_of
from .page_index import RANGE_COLUMNS, listed_codec
from .page_reads import ranged_rows_bound
from .readcheck import ReadCheck, dtype_name
from .spec import FILE_METADATA
from .tables import Part

__all__ = [
    "INDEX_GROUPS_KEY",
    "ALIGNED",
    "lazy_zeros",
    "write_aligned_index",
    "aligned_starts",
    "image_owners",
    "AlignedIndex",
]

#: Footer key of an aligned index table, and its value.
INDEX_GROUPS_KEY: Final[bytes] = b"ome_arrow_core.index_groups"
ALIGNED: Final[bytes] = b"images"
#: Integer index columns kept as arrays (by index row), and their types.
_INTS: Final[dict[str, Any]] = {
    "chunk_id": np.int64,
    "row_group_id": np.int32,
    "row_index_in_group": np.int32,
    **{a: np.int32 for a in "tczyx"},
    **{f"shape_{a}": np.int32 for a in "tczyx"},
}


def lazy_zeros(n: int, dtype: Any) -> np.ndarray:
    """A writable array of ``n`` zeros in an anonymous mapping: its pages become resident only once written
    (np.zeros may take them from the heap, already touched)."""
    dt = np.dtype(dtype)
    return np.frombuffer(mmap.mmap(-1, max(1, n * dt.itemsize)), dtype=dt, count=n)


def write_aligned_index(index: pa.Table, image_ids: Sequence[str], per_group: int | Sequence[int], out: Path) -> None:
    """Write ``index`` to ``out`` with row group g holding the chunk rows of the images of images row group g
    (``image_ids`` in images-table order; ``index`` rows in that order, as the packer writes them). ``per_group``
    is the images table's row-group size, or the image count of each of its row groups.

    An index whose rows are not in image order, an image without chunks, or a chunk row group holding chunks of
    images of two groups (readers load each group's chunk row groups apart), is written as one table, unmarked.
    """
    at = {v: i for i, v in enumerate(image_ids)}
    owner = np.fromiter(
        (at.get(str(v), -1) for v in index.column("image_id").to_pylist()), dtype=np.int64, count=index.num_rows
    )
    if isinstance(per_group, int):
        sizes = np.full(-(-len(image_ids) // per_group), per_group, dtype=np.int64)
        sizes[-1:] = len(image_ids) - per_group * (len(sizes) - 1)
    else:
        sizes = np.asarray(per_group, dtype=np.int64)
    group_of = np.repeat(np.arange(len(sizes)), sizes)  # images-table row -> its row group
    aligned = bool(len(owner) > 0 and (owner >= 0).all() and int(sizes.sum()) == len(image_ids))
    if aligned:
        owner_group = group_of[owner]
        bounds = np.searchsorted(owner_group, np.arange(len(sizes) + 1), side="left")
        aligned = bool((np.diff(owner) >= 0).all() and (np.diff(bounds) > 0).all())
    if aligned and "row_group_id" in index.column_names:
        codes = dictionary_codes(index.column("fragment_path"), "")[1].astype(np.int64)
        chunk_group = codes << 32 | int_values(index.column("row_group_id"), -1).astype(np.int64)
        first = unique_first(chunk_group)[1]
        last = unique_first(chunk_group[::-1])[1]
        aligned = bool((owner_group[first] == owner_group[len(owner) - 1 - last]).all())
    from ..safe_write import atomic_path  # writers only: a read never loads it

    with atomic_path(out) as tmp:
        if not aligned:
            pq.write_table(index.replace_schema_metadata(FILE_METADATA), tmp, write_page_checksum=True)
            return
        table = index.replace_schema_metadata({**FILE_METADATA, INDEX_GROUPS_KEY: ALIGNED})
        # statistics of chunk_id only (max_chunk_id reads them): a footer of N/per_group groups stays small
        with pq.ParquetWriter(tmp, table.schema, write_page_checksum=True, write_statistics=["chunk_id"]) as w:
            for a, b in itertools.pairwise(bounds.tolist()):
                w.write_table(table.slice(a, b - a), row_group_size=b - a)


def aligned_starts(root: Path, parts: Sequence[Part], images: ImageRows) -> list[np.ndarray] | None:
    """The first row of each row group of every part's index table (then its row count) when all of them are
    aligned with their images tables, else None (read whole, with every check of the whole index). Footers only.

    An index marked aligned whose row groups do not pair one to one with its images table's (another tool
    rewrote it and kept the key) is read whole; so are indexes of one row group each (the same read).
    """
    out = []
    by_group = footers_of(root, [p.index for p in parts], images.guard)
    for k, part in enumerate(parts):
        if not (root / part.index).exists():
            return None
        known = by_group[k]
        if known is not None:  # its footer is never parsed whole
            metadata, counts = known.metadata, known.group_rows
        else:
            md = footer(root, part.index)
            metadata = md.metadata
            counts = np.asarray([md.row_group(g).num_rows for g in range(md.num_row_groups)], dtype=np.int64)
        if (metadata or {}).get(INDEX_GROUPS_KEY) != ALIGNED:
            return None
        if len(counts) != len(images.starts[k]) - 1:  # rewritten by a tool that kept the key: read whole
            return None
        out.append(np.concatenate([[0], np.cumsum(np.asarray(counts, dtype=np.int64))]).astype(np.int64))
    if all(len(s) <= 2 for s in out):  # one row group a table: reading it whole is the same read
        return None
    return out


def image_owners(ids: pa.Array, images: pa.Array, where: str) -> np.ndarray:
    """The image (its row in ``images``, the image ids of one images row group) of each index row of ``ids`` (their
    image ids, dictionary-encoded), -1 for rows of no image of the group (left by an interrupted write, or lying);
    DamagedFileError when ``where``'s image ids repeat.

    As we write them, the index group's dictionary is the images group's ids in order: then each row's code is its
    image (compared in Arrow); otherwise one lookup per distinct id.
    """
    listed = [str(v) for v in images.to_pylist()]
    if len(set(listed)) != len(listed):
        check_unique(images, where, "image_id")  # raises, naming the repeated id
    if (
        pa.types.is_dictionary(ids.type)
        and ids.null_count == 0
        and images.null_count == 0
        and ids.dictionary.type == images.type
        and ids.dictionary.equals(images)
    ):
        return int_values(ids.indices).astype(np.int64)
    at = {v: k for k, v in enumerate(listed)}
    distinct, codes = dictionary_codes(ids, "")
    owner_of = np.array([at.get(v, -1) for v in distinct], dtype=np.int64)
    return owner_of[codes] if len(codes) else np.zeros(0, np.int64)


class GroupRows:
    """The index rows of each image of one loaded images row group: rows of image k are ``rows(k)``."""

    def __init__(self, base: int, owner: np.ndarray, images: int) -> None:
        """``owner``: the image (row in its images group) of each of the group's index rows (-1: of none), which
        are index rows ``base`` onwards."""
        self.order = base + np.argsort(owner, kind="stable").astype(np.int64)
        self.cut = np.searchsorted(np.sort(owner, kind="stable"), np.arange(images + 1), side="left")
        #: Images whose one chunk is the whole image (covered exactly once: no per-image check needed).
        self.whole = np.zeros(images, dtype=bool)

    def mark_whole(self, columns: dict[str, np.ndarray], sizes: np.ndarray) -> None:
        """Find the images of one chunk at the origin with the image's sizes (``sizes``: TCZYX of each image)."""
        one = np.diff(self.cut) == 1
        first = self.order[np.minimum(self.cut[:-1], len(self.order) - 1)] if len(self.order) else self.cut[:-1]
        ok = one.copy()
        for k, a in enumerate("tczyx"):
            ok &= (columns[a][first] == 0) & (columns[f"shape_{a}"][first] == sizes[:, k]) & (sizes[:, k] >= 1)
        self.whole = ok

    def rows(self, k: int) -> np.ndarray:
        """Index rows of image ``k`` of the group, in index order."""
        rows: np.ndarray = self.order[int(self.cut[k]) : int(self.cut[k + 1])]
        return rows


class AlignedIndex:
    """The index tables of a dataset whose index is aligned, loaded a row group at a time as images need it.

    Index rows are numbered across parts (the base, then each append's), as when the index is read whole:
    ``columns`` and ``fragment_code`` hold every row's values once its row group is loaded.
    """

    def __init__(
        self,
        root: Path,
        parts: Sequence[Part],
        images: ImageRows,
        starts: list[np.ndarray],
        names: list[str],
        manifest: dict[str, Any],
        lock: threading.Lock | None = None,
        guard: TableGuard | None = None,
    ) -> None:
        """``lock``: the one reads of the dataset hold (loading a group adds to what they read); ``guard``: checks
        each index row group's bytes before it is read."""
        self.root, self.parts, self.images, self.starts, self.names = root, list(parts), images, starts, names
        self.guard = guard
        self.manifest = manifest
        self.part_first = np.concatenate([[0], np.cumsum([int(s[-1]) for s in starts])]).astype(np.int64)
        total = int(self.part_first[-1])
        self.num_rows = total
        # anonymous mappings: untouched pages are never resident, so a million-row index costs what is loaded
        self.columns: dict[str, np.ndarray] = {n: lazy_zeros(total, t) for n, t in _INTS.items()}
        self.fragment_code = lazy_zeros(total, np.int32)
        self.checksum = lazy_zeros(total, np.uint64)
        self.has_checksum = lazy_zeros(total, np.bool_)
        self.pages: dict[int, GroupedPages] = {}
        self.checks: dict[int, GroupedChecks] = {}
        self.unpaged: set[int] = set()
        self._rows: dict[tuple[int, int], GroupRows] = {}
        self._ids: dict[tuple[int, int], pa.Array] = {}
        self._failed: dict[tuple[int, int], DamagedFileError] = {}
        self._files: dict[int, pq.ParquetFile] = {}
        #: Each part's index table read a row group at a time without parsing its footer whole (None: parsed).
        self._by_group = footers_of(root, [p.index for p in self.parts], guard)
        self._lock = lock or threading.Lock()

    def part_of_row(self, row: int) -> int:
        """The part of index row ``row``."""
        return int(np.searchsorted(self.part_first, row, side="right")) - 1

    def image_id(self, row: int) -> str:
        """The image_id of loaded index row ``row``."""
        part = self.part_of_row(row)
        local = row - int(self.part_first[part])
        g = int(np.searchsorted(self.starts[part], local, side="right")) - 1
        ids = self._ids.get((part, g))
        return "?" if ids is None else str(ids[local - int(self.starts[part][g])].as_py())

    def rows_of(self, pos: int) -> np.ndarray:
        """The index rows of image row ``pos`` (its index row group loaded first; none if it has none there)."""
        part, g, k = self.images.locate(pos)
        with self._lock:
            found = self._rows.get((part, g))
            if found is None:
                failed = self._failed.get((part, g))
                if failed is not None:  # a damaged group stays damaged (its checks may be half added)
                    raise failed
                try:
                    found = self._rows[(part, g)] = self._load(part, g)
                except DamagedFileError as exc:
                    self._failed[(part, g)] = exc
                    raise
        rows = found.rows(k)
        if not len(rows):
            image = str(self.images.row(pos)["image_id"])
            raise DamagedFileError(
                f"image {image!r} of {self.root} has no chunks in its index row group ({self.parts[part].index}, "
                f"row group {g}, as images row group {g} of {self.parts[part].images}); the index is damaged"
            )
        return rows

    def covered(self, pos: int) -> bool:
        """True when image row ``pos`` (its group loaded) is one chunk covering the whole image."""
        part, g, k = self.images.locate(pos)
        found = self._rows.get((part, g))
        return found is not None and bool(found.whole[k])

    def _file(self, part: int) -> pq.ParquetFile:
        pf = self._files.get(part)
        if pf is None:
            name = self.parts[part].index
            pf = self._files[part] = pq.ParquetFile(
                require_member(self.root, name),
                metadata=footer(self.root, name),  # parsed once (and checked) at open
                read_dictionary=["image_id", "fragment_path"],
            )
        return pf

    def _load(self, part: int, g: int) -> GroupRows:
        """Read index row group ``g`` of ``part`` into the arrays; the rows of each image of images row group ``g``."""
        name = self.parts[part].index
        start, stop = int(self.starts[part][g]), int(self.starts[part][g + 1])
        if self.guard is not None:
            self.guard.group(name, g)  # its bytes, before pyarrow decodes them
        by_group = self._by_group[part]
        with reading(self.root, name, "reading an index row group"):
            have = set(by_group.schema.names if by_group is not None else self._file(part).schema_arrow.names)
            cols = [*_INTS, "image_id", *(c for c in ("fragment_path", "checksum", *RANGE_COLUMNS) if c in have)]
            if by_group is not None and by_group.serves(g):  # its footer is not parsed whole
                table = by_group.read(g, cols, ["image_id", "fragment_path"])
            else:
                table = self._file(part).read_row_group(g, columns=cols, use_threads=False)
        if table.num_rows != stop - start:
            raise DamagedFileError(
                f"{self.root / name}: row group {g} holds {table.num_rows} rows, its footer says {stop - start}; "
                "the index is damaged"
            )
        base = int(self.part_first[part]) + start
        at = slice(base, base + table.num_rows)
        for n in _INTS:
            self.columns[n][at] = int_values(table.column(n))
        if "checksum" in have:
            self.checksum[at] = int_values(table.column("checksum")).astype(np.uint64, copy=False)
            self.has_checksum[at] = valid_mask(table.column("checksum"))
        self.fragment_code[at] = self._codes(table, name, have)
        ids = table.column("image_id").combine_chunks()
        self._ids[(part, g)] = ids
        batch = self.images.group(part, g)
        names = batch.schema.names
        owner = image_owners(
            ids, batch.column(names.index("image_id")), f"{self.root} [{self.parts[part].images}, row group {g}]"
        )
        found = GroupRows(base, owner, batch.num_rows)
        sizes = np.stack([int_values(batch.column(names.index(f"size_{a}")), -1) for a in "tczyx"], axis=1)
        found.mark_whole(self.columns, sizes.astype(np.int64))
        mine = base + np.nonzero(owner >= 0)[0]
        check_unique(self.columns["chunk_id"][mine], f"{self.root} [{name}, row group {g}]", "chunk_id")
        plain = (
            ids.dictionary_decode() if pa.types.is_dictionary(ids.type) else ids
        )  # to_pylist of a dictionary array is slow
        self._add_checks(part, g, base, mine, plain, self._dtypes(batch, owner), table, have)
        return found

    def _codes(self, table: pa.Table, name: str, have: set[str]) -> np.ndarray:
        """The code (in ``names``: the manifest's chunk files) of each row's chunk file."""
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
            if f in self.names:  # the manifest's names were checked at open
                known.append(self.names.index(f))
                continue
            check_member(self.root, f, f"{self.root / name}", "chunk file")
            if f not in self.names:
                raise DamagedFileError(
                    f"{self.root / name} names chunk file {f!r}, which the manifest does not list "
                    f"({', '.join(self.names)}); the dataset is damaged"
                )
            known.append(self.names.index(f))
        return np.asarray(known, dtype=np.int32)[codes] if len(codes) else np.zeros(0, dtype=np.int32)

    @staticmethod
    def _dtypes(batch: pa.RecordBatch, owner: np.ndarray) -> np.ndarray:
        """The dtype name of each row's image (``owner``: its row in ``batch``; None for rows of no image)."""
        kinds, codes = dictionary_codes(batch.column(batch.schema.names.index("dtype")), "")
        known = np.array([dtype_name(v) for v in kinds] + [None], dtype=object)
        per_image = np.concatenate([known[codes], np.array([None], dtype=object)])
        picked: np.ndarray = per_image[owner]  # -1 picks the trailing None
        return picked

    def _add_checks(
        self,
        part: int,
        g: int,
        base: int,
        mine: np.ndarray,
        ids: pa.Array,
        dtypes: np.ndarray,
        table: pa.Table,
        have: set[str],
    ) -> None:
        """The read checks (and page ranges) of the owned rows ``mine`` of a loaded group, per chunk file."""
        n = table.num_rows
        local = {c: a[base : base + n] for c, a in self.columns.items()}
        names = [p.index for p in self.parts]
        ranges = (
            [int_values(table.column(c), -1).astype(np.int64) for c in RANGE_COLUMNS]
            if set(RANGE_COLUMNS) <= have
            else None
        )
        codes = self.fragment_code[mine]
        for code in unique(codes).tolist():
            rows = mine[codes == code] - base
            file = self.root / self.names[code]
            check = ReadCheck(
                self.root,
                str(file),
                local["row_group_id"][rows].astype(np.int64),
                local["row_index_in_group"][rows].astype(np.int64),
                local["chunk_id"][rows].astype(np.int64),
                dtypes[rows],
                np.full(len(rows), part, dtype=np.int32),
                names,
                local,
                ids,
                rows,
            )
            self.checks.setdefault(code, GroupedChecks(str(file))).add(check)
            self._add_pages(code, rows, local, ranges, base)

    def _add_pages(
        self, code: int, rows: np.ndarray, local: dict[str, np.ndarray], ranges: list[np.ndarray] | None, base: int
    ) -> None:
        """Page ranges of rows ``rows`` of chunk file ``code`` (read through its footer when they are not usable)."""
        if code in self.unpaged:
            return
        name = self.names[code]
        listed, codec = listed_codec(self.root, self.manifest, name)
        pixels = np.ones(len(rows), dtype=np.int64)
        for a in "tczyx":
            pixels *= local[f"shape_{a}"][rows].astype(np.int64)
        pages = self.pages.get(code)
        if pages is None and listed:
            pages = GroupedPages(self.root / name, ranged_rows_bound(self.root / name))
        sub = (
            sub_pages(
                local["row_group_id"][rows].astype(np.int64),
                local["row_index_in_group"][rows].astype(np.int64),
                [r[rows] for r in ranges],
                pixels,
                base + rows,
            )
            if listed and ranges is not None and pages is not None
            else None
        )
        if sub is None or pages is None:  # the footer decides (a file another tool rewrote, an older layout)
            self.unpaged.add(code)
            self.pages.pop(code, None)
            return
        pages.add(sub, codec, lambda row: f"chunk {int(self.columns['chunk_id'][row])} of image {self.image_id(row)!r}")
        self.pages[code] = pages
