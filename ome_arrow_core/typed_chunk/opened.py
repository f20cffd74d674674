"""An opened typed-chunk dataset: its manifest, images and index tables parsed once per process.

:func:`open_dataset` keeps a small cache keyed by the files' identity (path, inodes, sizes,
mtimes, process), so repeated scans of the same files parse them once. Chunk files open on
first use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ..arrow_numpy import int_values, valid_mask
from ..checksums import ChunkChecksums
from ..chunks import ChunkTable
from ..errors import DamagedFileError, SchemaError
from ..meta import ImageMeta
from ..registry import Registry
from ..uniques import unique_first
from .checks import check_unique
from .dataset_checks import DatasetChecks
from .fragments import Fragment, ParquetFragment, open_fragment
from .grouped_reads import GroupedChecks
from .image_groups import ImageRows
from .ledger import Ledger
from .packed_groups import PackedGroups
from .paged_fragments import index_paged_fragment
from .readcheck import ReadCheck

if TYPE_CHECKING:  # a plate's (opening._aligned imports it): a single image's read spares its modules
    from .aligned_index import AlignedIndex
    from .kept_plans import KeptPlans

__all__ = ["OpenedDataset"]


class OpenedDataset:
    """What opening a dataset parses once per process: manifest, images, index, chunk files (on first use).

    ``table`` and ``index`` are the images and index tables of every part (the base, then each
    append's), with the part of each row in ``image_part`` and ``index_part``. Per-image
    lookups (an image's row, its chunk rows) are built on first use, so finding one image
    among many costs a dictionary lookup, not a scan. A plain class (a dataclass compiles its
    generated ``__init__`` in every process: ~1 ms of a fresh process's first read).
    """

    manifest: dict[str, Any]
    #: The images tables of every part, read by the row group (opening reads their footers only).
    images: ImageRows
    index: pa.Table
    lock: threading.Lock
    #: Where chunk files in a chunk store's format (``.vortex``) find their store (None: the shared registry,
    #: loaded only then).
    registry: Registry | None
    path: Path
    image_part: np.ndarray
    index_part: np.ndarray
    fragment_names: list[str]
    fragment_code: np.ndarray | None
    files: dict[int, Fragment]
    #: How chunk files not opened yet open on first use when not as :meth:`fragment` would (a plate's, through the
    #: manifest's record of their footer; see ``opening._aligned``), by code.
    open_later: dict[int, Callable[[], Fragment]]
    index_names: list[str]
    #: The index loaded a row group at a time (an aligned index, see :mod:`.aligned_index`); None: read whole.
    aligned: AlignedIndex | None
    #: Packed chunk row groups read recently, decoded and checked (see :mod:`.packed_groups`).
    packed: PackedGroups
    #: Checks passed by any process that opened the same files (see :mod:`.ledger`); None: none shared.
    ledger: Ledger | None

    def __init__(
        self,
        manifest: dict[str, Any],
        images: ImageRows,
        index: pa.Table,
        lock: threading.Lock,
        registry: Registry | None,
        path: Path = Path("."),
        image_part: np.ndarray | None = None,
        index_part: np.ndarray | None = None,
        fragment_names: list[str] | None = None,
        fragment_code: np.ndarray | None = None,
        *,
        index_names: list[str] | None = None,
        aligned: AlignedIndex | None = None,
    ) -> None:
        self.manifest = manifest
        self.images = images
        self.index = index
        self.lock = lock
        self.registry = registry
        self.path = path
        self.image_part = np.zeros(0, dtype=np.int32) if image_part is None else image_part
        self.index_part = np.zeros(0, dtype=np.int32) if index_part is None else index_part
        self.fragment_names = ["chunks.parquet"] if fragment_names is None else fragment_names
        self.fragment_code = fragment_code
        self.index_names = ["index.parquet"] if index_names is None else index_names
        self.aligned = aligned
        self.files = {}
        self.open_later = {}
        self.packed = PackedGroups()
        self.ledger = None
        self._columns: dict[str, np.ndarray] | None = None
        self._positions: dict[str, int] | None = None
        self._groups: dict[str, np.ndarray] | None = None
        self._ids: list[str] | None = None
        self._image_keys: np.ndarray | None = None
        #: The checks that passed (each image's chunks and bytes), and each chunk file's read check.
        self.checks = DatasetChecks()
        self._row_images: np.ndarray | None = None
        self._sums: ChunkChecksums | None = None
        #: Chunks files whose pixel locators may be used (their size is the one recorded; see :mod:`.locators`).
        self.located_files: dict[str, bool] = {}
        #: The box plans each image's sources share, by image row (see :func:`.kept_plans.plans_of`).
        self.plans: dict[int, KeptPlans] = {}

    @property
    def table(self) -> pa.Table:
        """The images tables of every part as one table (read whole on first use)."""
        return self.images.table()

    @property
    def image_count(self) -> int:
        """Images of every part (from the footers)."""
        return len(self.images)

    @property
    def sums(self) -> ChunkChecksums:
        """The index's chunk checksums (built once, on first use)."""
        if self._sums is None:
            algorithm = (self.manifest.get("ome_arrow_core") or {}).get("checksum")
            if self.aligned is not None:
                a = self.aligned
                self._sums = ChunkChecksums.of_arrays(a.checksum, a.has_checksum, algorithm, str(self.path))
                return self._sums
            col = self.index.column("checksum") if "checksum" in self.index.column_names else None
            self._sums = ChunkChecksums(col, algorithm, str(self.path))
        return self._sums

    def where(self, row: int) -> tuple[str, str]:
        """(chunk file, "chunk N of image ID") of index row ``row``, for error messages."""
        assert self.fragment_code is not None
        file = self.path / self.fragment_names[int(self.fragment_code[row])]
        image = self.aligned.image_id(row) if self.aligned is not None else self.index.column("image_id")[row].as_py()
        return str(file), f"chunk {int(self.columns['chunk_id'][row])} of image {image!r} (index row {row})"

    @property
    def columns(self) -> dict[str, np.ndarray]:
        """Index columns (all but image_id and fragment_path) as numpy arrays."""
        if self.aligned is not None:
            return self.aligned.columns
        if self._columns is None:
            self._columns = {
                n: int_values(self.index.column(n))
                for n in self.index.column_names
                if n not in ("image_id", "fragment_path", "checksum")
            }
        return self._columns

    @property
    def ids(self) -> list[str]:
        """The image_id of every image row (built once, on first use)."""
        if self._ids is None:
            self._ids = [str(v) for v in self.images.column("image_id").to_pylist()]
        return self._ids

    def position(self, image_id: str) -> int:
        """Row of ``image_id`` among the images (the first, should ids repeat)."""
        if self._positions is None:
            self._positions = {v: i for i, v in reversed(list(enumerate(self.ids)))}
        try:
            return self._positions[image_id]
        except KeyError:
            shown = self.ids if len(self.ids) <= 10 else [*self.ids[:10], "..."]
            raise SchemaError(f"image_id {image_id!r} not in {self.path}; ids: {shown}") from None

    def row(self, pos: int) -> dict[str, Any]:
        """Image row ``pos`` as a dict, read with its images row group (never whole columns: a table of a
        million images costs one row group of dicts)."""
        return self.images.row(pos)

    def meta(self, pos: int) -> ImageMeta:
        """The metadata of image row ``pos`` (made once per opened dataset; see :meth:`ImageRows.meta`)."""
        return self.images.meta(pos)

    def chunk_rows(self, pos: int) -> np.ndarray:
        """Index rows holding the chunks of image row ``pos``: its part's rows with its image_id.

        A one-image dataset takes every index row; an aligned index, the image's rows of its row group.
        """
        if self.aligned is not None:
            return self.aligned.rows_of(pos)
        if self.image_count == 1:
            return np.arange(self.index.num_rows)
        self._build_groups()
        assert self._groups is not None and self._image_keys is not None
        key = int(self._image_keys[pos])
        keys = self._groups["keys"]
        at = int(np.searchsorted(keys, key))
        if key < 0 or at >= len(keys) or int(keys[at]) != key:
            return np.zeros(0, dtype=np.int64)
        starts = self._groups["starts"]
        return self._groups["order"][int(starts[at]) : int(starts[at + 1])]

    def chunk_rows_many(self, positions: Sequence[int]) -> list[np.ndarray]:
        """:meth:`chunk_rows` of each of ``positions`` (an aligned index locates a batch's images together)."""
        if self.aligned is not None:
            return self.aligned.rows_many(positions)
        return [self.chunk_rows(pos) for pos in positions]

    def chunk_table(self, rows: np.ndarray) -> ChunkTable:
        """The origins and shapes (TCZYX) of index rows ``rows``, as a chunk table (its row k is ``rows[k]``)."""
        return ChunkTable(
            np.stack([self.columns[a][rows] for a in "tczyx"], axis=1).astype(np.int64),
            np.stack([self.columns[f"shape_{a}"][rows] for a in "tczyx"], axis=1).astype(np.int64),
        )

    def _build_groups(self) -> None:
        """Index rows grouped by (part, image id), and each image row's key into those groups (built once)."""
        if self._groups is None or self._image_keys is None:
            import pyarrow.compute as pc  # a one-image or aligned dataset never groups: its import is spared

            # (part, image id) of every index row and image row as one integer key, all in numpy
            enc = self.index.column("image_id").dictionary_encode().combine_chunks()
            n = max(len(enc.dictionary), 1)
            key = self.index_part.astype(np.int64) * n + int_values(enc.indices)
            order = np.argsort(key, kind="stable")
            keys, starts = unique_first(key[order])
            codes = pc.index_in(self.images.column("image_id").cast(enc.dictionary.type), value_set=enc.dictionary)
            found = valid_mask(codes)  # not to_numpy: that imports pandas
            ids = int_values(codes, -1).astype(np.int64)
            # image ids are unique across the images tables (checked here, on the codes: no hash of strings)
            check_unique(
                ids[found],
                f"the images tables of {self.path}",
                "image_id",
                lambda code: enc.dictionary[int(code)].as_py(),
            )
            own = self.image_part.astype(np.int64) * n + np.maximum(ids, 0)
            self._image_keys = np.where(found, own, -1)
            self._groups = {"keys": keys, "starts": np.r_[starts, len(order)], "order": order}

    def verify(self, pos: int, rows: np.ndarray, table: ChunkTable | None = None) -> None:
        """Raise DamagedFileError unless chunk ``rows`` write every pixel of image row ``pos`` exactly once
        (checked once per image; see :meth:`.DatasetChecks.verify`)."""
        self.checks.verify(self, pos, rows, table)

    def bound(self, pos: int, rows: np.ndarray) -> None:
        """Raise DamagedFileError when image row ``pos`` declares more pixel bytes than its chunk ``rows``' row groups hold."""
        self.checks.bound_many(self, [pos], [rows])

    def bound_many(self, positions: Sequence[int], picked: Sequence[np.ndarray]) -> None:
        """:meth:`bound` of each of ``positions``, a batch at once (see :meth:`.DatasetChecks.bound_many`)."""
        self.checks.bound_many(self, positions, picked)

    def read_check(self, code: int) -> ReadCheck | GroupedChecks:
        """What the index says about the rows of chunk file ``code`` (built on first use)."""
        return self.checks.read_check(self, code)

    def row_images(self) -> np.ndarray:
        """The image row of each index row (-1 for rows of no image of their part: left by an interrupted write)."""
        if self._row_images is None:
            if self.image_count == 1:
                self._row_images = np.zeros(self.index.num_rows, dtype=np.int64)
                return self._row_images
            from .group_rows import keyed_owners  # an unaligned plate's

            self._build_groups()
            assert self._groups is not None and self._image_keys is not None
            groups = self._groups
            self._row_images = keyed_owners(
                groups["keys"], groups["starts"], groups["order"], self._image_keys, self.index.num_rows
            )
        return self._row_images

    def fragment(self, code: int) -> Fragment:
        """The chunks file ``fragment_names[code]``, opened once (Parquet, or a chunk store's format)."""
        if self.aligned is not None and code in self.aligned.pages:
            return self.aligned.pages[code]
        hit = self.files.get(code)
        if hit is None:
            later = self.open_later.get(code)
            hit = self.files[code] = (
                later()
                if later is not None
                else index_paged_fragment(self, code)
                or open_fragment(self.path, self.fragment_names[code], self.registry)
            )
        return hit

    def read_groups(self, code: int, groups: np.ndarray) -> tuple[pa.ChunkedArray, dict[int, int], np.ndarray]:
        """``pixel_bytes`` of row groups ``groups`` (ascending) of one fragment (one read), the first
        row of each group in the result, and the start of each Arrow chunk of the result.

        Packed groups (many chunks each: a plate's small images) that were read recently come from
        :attr:`packed`, already compared with the index; the others are read in one call."""
        frag = self.fragment(code)
        group_rows = frag.group_rows
        bad = groups[(groups < 0) | (groups >= len(group_rows))]
        if len(bad):
            unit = "row groups" if isinstance(frag, ParquetFragment) else "rows"
            raise DamagedFileError(
                f"the index of {self.path} points at {unit} {bad.tolist()[:5]} of "
                f"{self.fragment_names[code]}, which has {len(group_rows)}; the dataset is damaged"
            )
        first = np.cumsum(np.r_[0, group_rows[groups][:-1]]).astype(np.int64)
        if len(groups) and isinstance(frag, ParquetFragment) and bool((group_rows[groups] > 1).all()):
            col = self.packed.read(
                code, groups, frag.group_rows, lambda missing: self._checked_read(code, frag, missing)
            )
        else:
            col = self._checked_read(code, frag, groups)
        base = dict(zip(groups.tolist(), first.tolist()))
        starts = np.cumsum([0, *(len(c) for c in col.chunks)])
        return col, base, starts

    def _checked_read(self, code: int, frag: Fragment, groups: np.ndarray) -> pa.ChunkedArray:
        """``pixel_bytes`` of row groups ``groups`` (ascending) of chunk file ``code``, read in one call and compared
        with the index (audited in full the first time)."""
        check = self.read_check(code)
        with self.lock:
            table = frag.read(groups, audit=check.unaudited(groups))
        first = np.cumsum(np.r_[0, frag.group_rows[groups][:-1]]).astype(np.int64)
        check.check(groups, frag.group_rows, first, table)
        return table.column("pixel_bytes")
