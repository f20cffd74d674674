"""OMEArrowDataset: many images (scan, filter, random access, batched reads).

A dataset is one image per row of a table plus any metadata columns (plate, well, site,
labels...). Three storages are read:

- a typed-chunk dataset directory (what :func:`write_dataset` writes): ``images.parquet``
  (then each append's ``images-NNNNN.parquet``) is the table, pixels are chunk rows found
  through ``index.parquet`` (and each append's ``index-NNNNN.parquet``);
- a Parquet file with an OME-Arrow struct column, one image per row (CytoDataFrame-style):
  the other columns are the table; opening an image reads the row group holding it;
- single-image files any reader plugin opens (``.vortex``, ``.ome.tiff``...): the table
  has ``image_id`` (the file name) and ``path``.

A directory of any of these (Parquet files, dataset directories, image files) is one
dataset, in file-name order.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

# Opening a plate hashes its tables' footers (XXH3-64): loaded with the dataset class, so that opening a plate and
# reading its first image pays no import (~1-2 ms). (.reads loads the compute kernels so, for the same reason.)
import xxhash  # noqa: F401

from ..arguments import check_index, seed_generator
from ..arrow_numpy import int_array
from ..boundary import blaming, reading
from ..display import DatasetThumbnails
from ..errors import ArgumentError, SelectionTypeError, StorageError
from ..image import OMEArrow
from ..registry import Registry
from ..typed_chunk import (
    IMAGES_SCHEMA,
    LOCATOR_COLUMNS,
    dataset_path,
    open_files,
)
from .filter_nulls import FILTER_ERRORS, filtered, refused_filter
from .image_location import ImageLocation
from .positions import Positions, checked_indices
from .reads import DatasetReads
from .scan import ROW_COLUMN, FilterLike, Member, as_filter, kept_rows, member_count, members_of, uniform_member
from .tables import MemberTables, joined_tables

__all__ = ["OMEArrowDataset"]

_T = TypeVar("_T")


class OMEArrowDataset(DatasetReads, DatasetThumbnails, Sequence[OMEArrow]):
    """Many images, one per row of a metadata table; each opened lazily on access.

    ``ds[i]`` is a lazy :class:`OMEArrow` (only that image's rows are read, found through
    an index), ``ds.table`` the metadata (no pixels), ``ds.tensor_views(...)`` one
    selection applied to every image and ``ds.read(indices, ...)`` a stacked batch read in
    one pass over the files. The object holds no open files, so it pickles to worker
    processes, each of which opens its own.
    """

    def __init__(
        self,
        parts: Sequence[Member],
        table: pa.Table,
        part_of: np.ndarray,
        rows: np.ndarray,
        *,
        registry: Registry | None = None,
        row_groups: tuple[int, int] = (0, 0),
        verify: bool | None = None,
    ) -> None:
        self._setup(parts, table, Positions.explicit(part_of, rows), registry, row_groups, verify)

    def _setup(
        self,
        parts: Sequence[Member],
        table: pa.Table | None,
        positions: Positions,
        registry: Registry | None,
        row_groups: tuple[int, int],
        verify: bool | None,
    ) -> None:
        self._parts = list(parts)
        self._verify = verify
        self._table = table
        self._positions = positions
        #: The whole table of the members, read on first use (datasets opened without reading it).
        self._base: MemberTables | None = None
        self._registry = registry
        self._uniform: set[int] | None = None
        self._shared_metas = {}
        #: (row groups read, row groups in the files) when the table was scanned with a filter.
        self.row_groups_scanned = row_groups

    def _derived(self, positions: Positions, table: pa.Table | None) -> OMEArrowDataset:
        """A dataset of the same members with other ``positions`` (its ``table`` when known)."""
        out = OMEArrowDataset.__new__(OMEArrowDataset)
        out.__dict__.update(self.__dict__)
        out._positions, out._table, out._uniform = positions, table, self._uniform
        out._shared_metas = {}  # its own: it may find a member uniform that this dataset does not
        out.row_groups_scanned = self.row_groups_scanned
        return out

    @classmethod
    def scan(
        cls,
        path: str | os.PathLike[str],
        *,
        filter: FilterLike = None,
        column: str | None = None,
        registry: Registry | None = None,
        verify: bool | None = None,
        filesystem: Any = None,
    ) -> OMEArrowDataset:
        """Open a dataset: read its metadata table (the rows ``filter`` keeps), no pixels.

        ``filter`` is a pyarrow expression (``pc.field("well") == "A01"``) or a mapping
        (``{"well": "A01"}``); it is pushed down to the row groups of the table's Parquet file.
        ``column`` picks the OME-Arrow column of Parquet and Vortex tables that have several.
        ``verify=False`` skips the checksum check of every pixel read (None: check unless the
        environment sets ``OME_ARROW_CORE_VERIFY=0``).

        A dataset directory opened without a filter reads only its tables' footers (after
        checking the footers' digests; each row group is checked when first read): :attr:`table` is read on first use, and ``ds[i]`` finds
        image ``i`` without it, so opening costs the same for a thousand images as for a million.

        ``path`` may be a URI (``s3://bucket/plate.ome.parquet``, ``https://...``, ``file://...``) of a dataset
        directory, or a path inside ``filesystem`` (pyarrow or fsspec): its tables are fetched once, its pixels
        by ranged reads (see docs/clusters.md).
        """
        if not isinstance(path, (str, os.PathLike)) or not isinstance(os.fspath(path), str):
            raise ArgumentError(
                f"OMEArrowDataset.scan takes a path (str or os.PathLike) or a URI of a dataset, got "
                f"{type(path).__name__} {path!r:.80}; pass e.g. 'plate.ome.parquet' or pathlib.Path('images/')"
            )
        path = dataset_path(path, filesystem)
        expr = as_filter(filter)
        parts = members_of(Path(path), column, registry)  # plugins are loaded only if a member needs them
        if expr is None and len(parts) == 1 and parts[0].kind == "chunks":
            count = member_count(parts[0], verify)
            assert count is not None
            ds = cls.__new__(cls)  # no table yet (pa.Schema.empty_table would import pandas)
            ds._setup(parts, None, Positions.members([count[0]]), registry, (count[1], count[1]), verify)
            ds._base = MemberTables(parts, verify, path)
            return ds
        table, part_of, rows, scanned, total = joined_tables(parts, expr, verify, path, registry)
        return cls(parts, table, part_of, rows, registry=registry, row_groups=(scanned, total), verify=verify)

    # -- the table ---------------------------------------------------------------------------
    @property
    def table(self) -> pa.Table:
        """The metadata table: one row per image, no pixels (read on first use when the scan did not)."""
        if self._table is None:
            assert self._base is not None
            full = self._base.table()
            pick = self._positions.pick
            if (len(self._positions) if pick is None else int(pick.max(initial=-1)) + 1) > full.num_rows:
                err = StorageError(
                    f"{self._parts[0].path} changed since this dataset was scanned (overwritten): its table holds "
                    f"{full.num_rows} image(s) now, fewer than the scan found; scan it again (OMEArrowDataset.scan)"
                )
                err.errno = errno.ESTALE
                raise err
            self._table = full if pick is None else full.take(int_array(pick))
        return self._table

    @property
    def _part_of(self) -> np.ndarray:
        """The member of each image (an array per image: built on use)."""
        return self._positions.arrays()[0]

    @property
    def _rows(self) -> np.ndarray:
        """The row of each image in its member (an array per image: built on use)."""
        return self._positions.arrays()[1]

    @property
    def column_names(self) -> list[str]:
        """Columns of :attr:`table`."""
        return list(self.table.column_names)

    @property
    def extra_columns(self) -> list[str]:
        """Columns other than the dataset's own (for a chunk dataset: those beyond IMAGES_SCHEMA)."""
        chunks = all(p.kind == "chunks" for p in self._parts)
        own = {*IMAGES_SCHEMA.names, *LOCATOR_COLUMNS} if chunks else {"image_id", "path"}
        if any(p.kind == "records" for p in self._parts):
            own = {"image_id", "path"} if all(p.named for p in self._parts if p.kind == "records") else set()
        return [n for n in self.table.column_names if n not in own]

    def metadata(self, i: int) -> dict[str, Any]:
        """Row ``i`` of :attr:`table` as a dict."""
        return self.table.slice(self._index(i), 1).to_pylist()[0]  # type: ignore[no-any-return]

    def __len__(self) -> int:
        return len(self._positions)

    def __repr__(self) -> str:
        kinds = sorted({p.kind for p in self._parts})
        return f"OMEArrowDataset({len(self)} images, {len(self._parts)} part(s) [{', '.join(kinds)}], columns={self.column_names})"

    def _index(self, i: int) -> int:
        return check_index(i, len(self))

    # -- images ------------------------------------------------------------------------------
    def locate(self, i: int) -> ImageLocation:
        """Where image ``i`` lives (a picklable handle; ``.open()`` gives the image)."""
        member, row = self._positions.one(self._index(i))
        part = self._parts[member]
        return ImageLocation(part.kind, part.path, row, part.column, self._verify)

    def copies(self, indices: Sequence[int] | np.ndarray | None = None) -> list[tuple[str, int, int]]:
        """``(path, device, version)`` of each member this dataset reads pixels from (``indices``: those holding
        these images), as they are now, in member order: a directory's version (a dataset directory, an OME-Zarr
        image or plate) is its inode, a file's (a table of records, an image file) a number made of its inode,
        size and modification time.

        An overwrite swaps in a new directory (another inode); an append or a compaction changes files inside a
        dataset directory and keeps it. A file written again, replaced or in place, gets another version. Compare
        two calls to tell whether images read now may be other images than those the table came from (the torch
        datasets do, every batch). One ``stat`` per member, nothing read."""
        return [_copy(self._parts[m].path) for m in self._members(indices)]

    def _members(self, indices: Sequence[int] | np.ndarray | None) -> list[int]:
        """The members holding images ``indices`` (all of them: None), in order."""
        if indices is None or len(self._parts) == 1:
            return list(range(len(self._parts)))
        picked = checked_indices(indices, len(self), "copies()")
        return np.unique(self._positions.many(picked)[0]).tolist()  # type: ignore[no-any-return]

    def check_copies(
        self,
        made: Sequence[tuple[str, int, int]],
        indices: Sequence[int] | np.ndarray | None = None,
        what: str = "",
        cause: BaseException | None = None,
    ) -> None:
        """Raise StorageError (errno ESTALE) when a member holding images ``indices`` is no longer the copy ``made``
        lists (:meth:`copies` when ``what``, a reader planned from this dataset's table, was made): an overwrite
        swapped in another copy, whose images may not be those the plan and its metadata rows describe (``cause``:
        the error a read of them raised, which the StorageError is raised from). One ``stat`` per member of these
        images."""
        then: dict[str, tuple[int, int]] | None = None
        for m in self._members(indices):
            path, dev, version = _copy(self._parts[m].path)
            if len(made) == len(self._parts) and made[m][0] == path:  # made by copies(): member m's entry
                was: tuple[int, int] | None = made[m][1:]
            else:
                then = then if then is not None else {p: (d, v) for p, d, v in made}
                was = then.get(path)
            if was != (dev, version):
                err = StorageError(
                    f"{path} was overwritten after {what or 'this reader'} was made from it: its "
                    "images may not be those planned (their shapes, dtypes and metadata rows), so none is returned; "
                    "scan it again and make it anew to read the new copy"
                )
                err.errno = errno.ESTALE
                raise err from cause

    def read_checked(
        self,
        made: Sequence[tuple[str, int, int]] | None,
        images: Callable[[], Sequence[int] | np.ndarray],
        what: str,
        read: Callable[[], _T],
    ) -> _T:
        """``read()`` of images ``images()`` by ``what``, a reader planned from this dataset when :meth:`copies` was
        ``made`` (None: read unchecked), then :meth:`check_copies` of them: a read that met an overwrite raises
        StorageError (ESTALE), also where the overwrite made it fail (a file of another shape: its error the cause)."""
        if made is None:
            return read()
        try:
            got = read()
        except Exception as exc:
            with contextlib.suppress(IndexError, TypeError, ValueError):  # images the read refused: its error says
                self.check_copies(made, images(), what, exc)
            raise
        self.check_copies(made, images(), what)  # after the read: one that began before an overwrite may have met it
        return got

    def open_files(self, load: bool = False) -> None:
        """Open the files of every chunk dataset of this one in this process now (footers parsed, nothing read):
        processes forked afterwards (a DataLoader's workers, new each epoch) share the checks their first reads
        pass, the footers their first batch parses, and (with ``load``) the images and index row groups of this
        dataset's images loaded now (up to what a process keeps; see :func:`~.typed_chunk.opening.open_files`),
        instead of each paying them again. They still open the files again where these changed. The torch
        datasets call this when made."""
        for m, part in enumerate(self._parts):
            if part.kind == "chunks":
                rows = self._positions.of_member(m) if load else None  # None: all of them
                with reading(part.path, None, "opening a dataset"), blaming(part.path):
                    open_files(Path(part.path), self._registry, load=load and (True if rows is None else rows))
                    if self._table is None:  # batch reads ask the images tables' footers whether all images agree
                        uniform_member(part)
        self._uniform_parts()  # which members' images share one batch plan: decided once, here, for them too
        if load:
            self._plan_ahead()  # and the metadata those plans are made from

    def __getitem__(self, i: int) -> OMEArrow:  # type: ignore[override]
        """Image ``i``, lazily: metadata now, only its own pixels when a view runs."""
        if isinstance(i, slice):
            raise SelectionTypeError("use ds.select(range(...)) for a sub-dataset; ds[i] takes one integer")
        return self.locate(i).open(self._registry)

    def __iter__(self) -> Iterator[OMEArrow]:
        for i in range(len(self)):
            yield self[i]

    def select(self, indices: Sequence[int] | np.ndarray | range) -> OMEArrowDataset:
        """The images at ``indices`` (in that order) as a dataset."""
        idx = checked_indices(indices, len(self))
        table = None if self._table is None else self._table.take(int_array(idx))
        return self._derived(self._positions.take(idx), table)

    def filter(self, filter: FilterLike) -> OMEArrowDataset:
        """The images whose metadata rows match ``filter`` (evaluated on :attr:`table`; when that was never read, on
        the columns the filter names, read alone)."""
        expr = as_filter(filter)
        if expr is None:
            return self
        if self._table is None:  # never read: the columns the filter names decide, read alone
            kept = [kept_rows(p, filter, self._verify) for p in self._parts]
            if all(k is not None for k in kept):
                return self.select(self._positions.keep([k for k in kept if k is not None]))
        marked = self.table.append_column(ROW_COLUMN, pa.array(np.arange(len(self), dtype=np.int64)))
        try:
            kept = filtered(marked, expr).column(ROW_COLUMN).to_numpy()
        except FILTER_ERRORS as exc:
            raise refused_filter(expr, "", self.column_names, exc) from exc
        return self.select(kept)

    def shuffled(self, seed: int) -> OMEArrowDataset:
        """The images in a random order drawn from ``seed`` (the same order for the same seed)."""
        return self.select(seed_generator(seed).permutation(len(self)))

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_registry"] = None  # plugins are found again in the receiving process
        state["_shared_metas"] = {}  # of this process's opened files
        if self._base is not None:
            state["_table"] = None  # read again there, only if needed: workers get a small pickle
        return state


def _copy(path: str) -> tuple[str, int, int]:
    """``(path, device, version)`` of a member as it is now (see :meth:`OMEArrowDataset.copies`)."""
    with reading(path, None, "checking the dataset"), blaming(path):
        st = os.stat(path)
    # a file is rewritten in place as often as replaced (pyarrow truncates a table, a TIFF writer its file)
    version = st.st_ino if stat.S_ISDIR(st.st_mode) else hash((st.st_ino, st.st_size, st.st_mtime_ns))
    return path, st.st_dev, version
