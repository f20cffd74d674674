"""The index of an aligned dataset (see :mod:`.aligned_layout`), loaded a row group at a time as images need it.

Opening one image reads one row group of the images table and one of the index, whatever the number of images:
:class:`AlignedIndex` loads index row groups into index-length arrays (:class:`~.lazy_rows.LazyColumns`: pages
never written are never resident) and keeps the most recently used :data:`GROUPS_KEPT` of them; an older group is
dropped (its pages released, its read checks withdrawn) unless a read still holds rows of it: the rows
:meth:`AlignedIndex.rows_of` returns pin their group for as long as they (or views of them) live. A dropped group
is read again, with every check, when an image needs it.

The layout is only ever trusted for what it is read for: a row group holding another group's images leaves an
image without its chunks (refused by the coverage check), a fragment_path the manifest does not list is refused,
chunk ids must be unique within a group, and reads check each chunk row against the index (:mod:`.readcheck`).
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn

import numpy as np
import pyarrow as pa

from .. import parquet_lite as pq
from ..arrow_numpy import int_values, valid_mask
from ..boundary import reading, require_member
from ..errors import DamagedFileError
from .aligned_layout import ALIGNED, INDEX_GROUPS_KEY, aligned_starts, write_aligned_index
from .checks import check_unique
from .footers import footer, footers_of
from .group_sums import TableGuard
from .grouped_reads import GroupedChecks, GroupedPages
from .image_groups import ImageRows
from .lazy_rows import LazyColumns, lazy_zeros
from .page_index import RANGE_COLUMNS
from .tables import Part

if TYPE_CHECKING:  # imported by the first group loaded (_load): an image read by its pixel locator loads none
    from .group_rows import GroupRows

__all__ = [
    "INDEX_GROUPS_KEY",
    "ALIGNED",
    "GROUPS_KEPT",
    "lazy_zeros",
    "write_aligned_index",
    "aligned_starts",
    "AlignedIndex",
]

#: Index row groups kept loaded (the most recently used, and any a read still holds rows of; ~0.2 MiB each for a
#: plate's 1,024 images: a plate of up to 131,072 images keeps its whole index, ~26 MiB at most beyond).
GROUPS_KEPT: Final[int] = 128
#: Integer index columns kept as arrays (by index row), and their types.
_INTS: Final[dict[str, Any]] = {
    "chunk_id": np.int64,
    "row_group_id": np.int32,
    "row_index_in_group": np.int32,
    **{a: np.int32 for a in "tczyx"},
    **{f"shape_{a}": np.int32 for a in "tczyx"},
}
#: Handed-out row arrays remembered per group before the dead ones are forgotten.
_PRUNE_AT: Final[int] = 32


class _Loaded:
    """One loaded index row group: its index rows ``start..stop-1``, what it added, and who still holds its rows.

    A plain class (a dataclass compiles its generated methods when its module loads, in every process)."""

    __slots__ = ("checks", "holders", "ids", "prune_at", "rows", "start", "stop")

    def __init__(self, start: int, stop: int, rows: GroupRows, ids: pa.Array) -> None:
        self.start, self.stop, self.rows, self.ids = start, stop, rows, ids
        self.checks: list[tuple[int, Any]] = []
        self.holders: list[weakref.ref[np.ndarray]] = []
        #: Holders kept before the dead ones are forgotten: twice those alive at the last pruning (at least
        #: :data:`_PRUNE_AT`), so a batch that holds many rows at once prunes a few times, not once per image.
        self.prune_at = _PRUNE_AT

    def hold(self, rows: np.ndarray) -> None:
        if len(self.holders) >= self.prune_at:
            self.holders = [r for r in self.holders if r() is not None]
            self.prune_at = max(_PRUNE_AT, 2 * len(self.holders))
        self.holders.append(weakref.ref(rows))

    @property
    def held(self) -> bool:
        """True while rows handed out of this group are alive."""
        return any(r() is not None for r in self.holders)


class AlignedIndex:
    """The index tables of a dataset whose index is aligned, loaded a row group at a time as images need it.

    Index rows are numbered across parts (the base, then each append's), as when the index is read whole:
    ``columns`` and ``fragment_code`` hold every loaded row's values (and zeros, or stale values, elsewhere: only
    rows of groups held are to be read).
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
        self._arrays = LazyColumns(
            total, {**_INTS, "fragment_code": np.int32, "checksum": np.uint64, "has_checksum": np.bool_}
        )
        arrays = self._arrays.arrays
        self.columns: dict[str, np.ndarray] = {n: arrays[n] for n in _INTS}
        self.fragment_code = arrays["fragment_code"]
        self.checksum = arrays["checksum"]
        self.has_checksum = arrays["has_checksum"]
        self.pages: dict[int, GroupedPages] = {}
        self.checks: dict[int, GroupedChecks] = {}
        self.unpaged: set[int] = set()
        self._loaded: OrderedDict[tuple[int, int], _Loaded] = OrderedDict()
        self._paged: set[tuple[int, int]] = set()  # groups whose page ranges were added (kept when dropped)
        self._failed: dict[tuple[int, int], DamagedFileError] = {}
        self._files: dict[int, pq.ParquetFile] = {}
        self._listed: dict[int, tuple[bool, str | None]] = {}
        #: Each part's index table read a row group at a time without parsing its footer whole (None: parsed).
        self._by_group = footers_of(root, [p.index for p in self.parts], guard)
        self._lock = lock or threading.Lock()

    @property
    def loaded(self) -> int:
        """Index row groups loaded now."""
        return len(self._loaded)

    def part_of_row(self, row: int) -> int:
        """The part of index row ``row``."""
        return int(np.searchsorted(self.part_first, row, side="right")) - 1

    def image_id(self, row: int) -> str:
        """The image_id of loaded index row ``row`` ("?" when its group is not loaded)."""
        part = self.part_of_row(row)
        local = row - int(self.part_first[part])
        g = int(np.searchsorted(self.starts[part], local, side="right")) - 1
        found = self._loaded.get((part, g))
        return "?" if found is None else str(found.ids[local - int(self.starts[part][g])].as_py())

    def rows_of(self, pos: int) -> np.ndarray:
        """The index rows of image row ``pos`` (its index row group loaded first; none if it has none there).

        The array returned holds the group loaded: its rows' values stay in :attr:`columns` while it (or a view
        of it) lives."""
        return self.rows_many([pos])[0]

    def rows_many(self, positions: Sequence[int]) -> list[np.ndarray]:
        """:meth:`rows_of` of each of ``positions`` (a batch's images: located together, under one lock).

        Neighbouring positions of one row group (a batch's usual run) share one lookup and one array of their rows,
        which each image's rows are a view of (so each holds the group)."""
        out: list[np.ndarray] = []
        missing: tuple[int, int, int] | None = None  # an image without chunks: named outside the lock
        with self._lock:
            parts, groups, within = self.images.locate_many(positions)
            n = len(parts)
            i = 0
            while i < n:
                part, g = parts[i], groups[i]
                j = i + 1
                while j < n and groups[j] == g and parts[j] == part:
                    j += 1
                found = self._group_loaded(part, g)
                # its own array: each image's rows are views of it, so each holds it, and so the group
                rows, counts = found.rows.rows_of_many(within[i:j])
                found.hold(rows)
                if len(self._loaded) > GROUPS_KEPT:
                    self._drop_unheld()
                at = 0
                for k, count in enumerate(counts):
                    if not count and missing is None:
                        missing = (positions[i + k], part, g)
                    out.append(rows[at : at + count])
                    at += count
                i = j
        if missing is not None:
            self._no_chunks(*missing)
        return out

    def _group_loaded(self, part: int, g: int) -> _Loaded:
        """Row group ``g`` of ``part``, loaded now if it is not (call with the lock held)."""
        found = self._loaded.get((part, g))
        if found is None:
            failed = self._failed.get((part, g))
            if failed is not None:  # a damaged group stays damaged (its checks may be half added)
                raise failed
            try:
                found = self._loaded[(part, g)] = self._load(part, g)
            except DamagedFileError as exc:
                self._failed[(part, g)] = exc
                raise
        else:
            self._loaded.move_to_end((part, g))
        return found

    def _no_chunks(self, pos: int, part: int, g: int) -> NoReturn:
        """Raise DamagedFileError: image row ``pos`` has no chunks in its index row group ``g`` of ``part``."""
        image = str(self.images.row(pos)["image_id"])
        raise DamagedFileError(
            f"image {image!r} of {self.root} has no chunks in its index row group ({self.parts[part].index}, "
            f"row group {g}, as images row group {g} of {self.parts[part].images}); the index is damaged"
        )

    def covered(self, pos: int) -> bool:
        """True when image row ``pos`` (its group loaded) is one chunk covering the whole image."""
        part, g, k = self.images.locate(pos)
        found = self._loaded.get((part, g))
        return found is not None and bool(found.rows.whole[k])

    def _drop_unheld(self) -> None:
        """Drop the least recently used groups no read holds, down to :data:`GROUPS_KEPT` (lock held)."""
        for key in list(self._loaded):
            if len(self._loaded) <= GROUPS_KEPT:
                return
            found = self._loaded[key]
            if found.held:
                continue
            del self._loaded[key]
            for code, check in found.checks:
                self.checks[code].remove(check)
            self._arrays.release(found.start, found.stop, self._held_rows())

    def _held_rows(self) -> np.ndarray:
        """The [start, stop) index rows of each loaded group, an (k, 2) array (lock held)."""
        loaded = self._loaded.values()
        held = np.empty((len(loaded), 2), dtype=np.int64)
        held[:, 0] = np.fromiter((f.start for f in loaded), dtype=np.int64, count=len(loaded))
        held[:, 1] = np.fromiter((f.stop for f in loaded), dtype=np.int64, count=len(loaded))
        return held

    def _file(self, part: int) -> pq.ParquetFile:
        pf = self._files.get(part)
        if pf is None:
            name = self.parts[part].index
            pf = self._files[part] = pq.ParquetFile(
                require_member(self.root, name),
                metadata=footer(self.root, name),  # parsed once (and checked) at open
                read_dictionary=["image_id", "fragment_path"],
                **pq.LOCAL_READS,
            )
        return pf

    def _read(self, part: int, g: int) -> tuple[pa.Table, set[str]]:
        """Index row group ``g`` of ``part`` (its bytes checked first), and the columns its table has."""
        name = self.parts[part].index
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
        return table, have

    def _load(self, part: int, g: int) -> _Loaded:
        """Read index row group ``g`` of ``part`` into the arrays; the rows of each image of images row group ``g``."""
        from .aligned_checks import GroupChecks, chunk_codes, row_dtypes  # a group's: see the imports above
        from .group_rows import GroupRows, image_owners

        name = self.parts[part].index
        start, stop = int(self.starts[part][g]), int(self.starts[part][g + 1])
        table, have = self._read(part, g)
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
        self.fragment_code[at] = chunk_codes(self.root, name, self.names, table, have)
        ids = table.column("image_id").combine_chunks()
        batch = self.images.image_batch(part, g)  # its ids, dtypes and sizes: no other column decoded
        names = batch.schema.names
        owner = image_owners(
            ids, batch.column(names.index("image_id")), f"{self.root} [{self.parts[part].images}, row group {g}]"
        )
        rows = GroupRows(base, owner, batch.num_rows)
        sizes = np.stack([int_values(batch.column(names.index(f"size_{a}")), -1) for a in "tczyx"], axis=1)
        rows.mark_whole(self.columns, sizes.astype(np.int64))
        mine = base + np.nonzero(owner >= 0)[0]
        check_unique(self.columns["chunk_id"][mine], f"{self.root} [{name}, row group {g}]", "chunk_id")
        plain = (
            ids.dictionary_decode() if pa.types.is_dictionary(ids.type) else ids
        )  # to_pylist of a dictionary array is slow
        found = _Loaded(base, base + table.num_rows, rows, ids)
        group = GroupChecks(self, part, base, mine, plain, row_dtypes(batch, owner), table, have)
        found.checks = group.add_checks(add_pages=(part, g) not in self._paged)
        if group.paged:
            self._paged.add((part, g))
        return found

    def listed(self, code: int) -> tuple[bool, str | None]:
        """:func:`~.page_index.listed_codec` of chunk file ``code`` (asked once: the opened files do not change)."""
        hit = self._listed.get(code)
        if hit is None:
            from .page_index import listed_codec

            hit = self._listed[code] = listed_codec(self.root, self.manifest, self.names[code])
        return hit
