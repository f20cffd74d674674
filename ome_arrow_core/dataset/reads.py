"""Views and batched reads of a dataset: one selection applied to every image, many images read as one array.

:class:`DatasetReads` is the part of :class:`~.collection.OMEArrowDataset` that reads pixels of many images at
once: ``tensor_views`` (lazy, one selection for every image) and ``read`` (a stacked batch, one pass over each
chunk file for the whole batch; the images of one member that share sizes and dtype share one selection plan).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pyarrow as pa

# Reading a plate whose index is not aligned groups it by image with the compute kernels (typed_chunk.opened imports
# them there, lazily, so that reading one image needs none): loaded with the dataset class, as before, so that opening
# a plate and reading its first image pays no import.
import pyarrow.compute as pc

from ..boundary import blaming, reading
from ..casting import Casting, cast_pixels, copy_cast
from ..errors import ArgumentError, DamagedFileError, OMEArrowError, SchemaError
from ..image import OMEArrow
from ..layout import ChannelPolicy
from ..meta import ImageMeta
from ..registry import Registry
from ..selection import IndexSpec, RoiType
from ..typed_chunk import open_dataset, read_rows
from ..uniques import unique
from ..view_spec import ViewSpec
from .batch import MixedDtypes, OutArray, checked_out, different_shapes, plan_batch
from .image_location import changed_since_scan
from .positions import Positions, checked_indices
from .scan import Member, uniform_member
from .views import DatasetViews, canonical_view

if TYPE_CHECKING:
    from .collection import OMEArrowDataset

__all__ = ["DatasetReads"]


class DatasetReads:
    """``tensor_views`` and ``read`` of a dataset (mixed into :class:`~.collection.OMEArrowDataset`)."""

    _parts: list[Member]
    _positions: Positions
    _registry: Registry | None
    _verify: bool | None
    _table: pa.Table | None
    _uniform: set[int] | None
    #: member -> (the opened files it came from, metadata of one of its images) for :meth:`_meta`'s ``shared``.
    _shared_metas: dict[int, tuple[weakref.ref[Any], ImageMeta]]

    if TYPE_CHECKING:  # given by OMEArrowDataset

        def __getitem__(self, i: int) -> OMEArrow: ...

        def __len__(self) -> int: ...

    def tensor_views(
        self,
        t: IndexSpec = None,
        z: IndexSpec = None,
        c: IndexSpec = None,
        *,
        roi: Sequence[int] | None = None,
        roi3d: Sequence[int] | None = None,
        roi_nd: Sequence[int] | None = None,
        roi_type: RoiType | None = None,
        tile: Sequence[int] | None = None,
        layout: str | None = None,
        dtype: Any = None,
        channel_policy: ChannelPolicy = "error",
        casting: Casting = "checked",
        spec: ViewSpec | None = None,
    ) -> DatasetViews:
        """One selection (the arguments of :meth:`OMEArrow.tensor_view`, or ``spec=``) for every image.

        Nothing is read: items are :class:`LazyTensorView` objects, and
        :meth:`DatasetViews.read` reads many of them as one stacked array. ``dtype`` casts
        as :meth:`OMEArrow.tensor_view` does (``casting="checked"`` refuses values it
        cannot hold; ``"unsafe"`` converts as numpy does).
        """
        view = ViewSpec.of(
            spec,
            t=t,
            z=z,
            c=c,
            roi=roi,
            roi3d=roi3d,
            roi_nd=roi_nd,
            roi_type=roi_type,
            tile=tile,
            layout=layout,
            dtype=dtype,
            channel_policy=channel_policy,
            casting=casting,
        )
        return DatasetViews(cast("OMEArrowDataset", self), view)

    def read(
        self,
        indices: Sequence[int] | np.ndarray | range | None = None,
        *,
        t: IndexSpec = None,
        z: IndexSpec = None,
        c: IndexSpec = None,
        roi: Sequence[int] | None = None,
        roi3d: Sequence[int] | None = None,
        roi_nd: Sequence[int] | None = None,
        roi_type: RoiType | None = None,
        tile: Sequence[int] | None = None,
        rois: Sequence[Sequence[int] | None] | None = None,
        layout: str | None = None,
        dtype: Any = None,
        channel_policy: ChannelPolicy = "error",
        casting: Casting = "checked",
        spec: ViewSpec | None = None,
        out: OutArray = None,
    ) -> np.ndarray:
        """Pixels of images ``indices`` (default: all) stacked on a new first axis.

        Every image gets the same view (the arguments of :meth:`OMEArrow.tensor_view`, or
        ``spec=``); ``rois`` gives one crop ``(x, y, w, h)`` per index instead, within it.
        The selected shapes must agree. The dtype is kept unless ``dtype`` casts. Images
        of a chunk dataset are read together: one Parquet read per chunk file for the
        whole batch, then one copy per chunk into the result (or ``out``, a writable
        C-contiguous array of the right shape and dtype, e.g. a pinned buffer, or a function
        ``(shape, dtype) -> array`` called once, before any pixel is read, to give one).
        """
        view = ViewSpec.of(
            spec,
            t=t,
            z=z,
            c=c,
            roi=roi,
            roi3d=roi3d,
            roi_nd=roi_nd,
            roi_type=roi_type,
            tile=tile,
            layout=layout,
            dtype=dtype,
            channel_policy=channel_policy,
            casting=casting,
        )
        cast = view.cast
        try:
            arr = self._read(indices, view, rois, out if cast is None else None)
        except MixedDtypes as exc:
            if cast is None:
                raise
            return self._read_cast(indices, view, rois, out, cast, exc.dtypes)
        if cast is None:
            return arr
        if out is None:
            return arr if arr.dtype == cast else cast_pixels(arr, cast, view.casting)
        target = checked_out(out, arr.shape, cast)
        copy_cast(target, arr, view.casting)
        return target

    def _read_cast(
        self,
        indices: Sequence[int] | np.ndarray | range | None,
        view: ViewSpec,
        rois: Sequence[Sequence[int] | None] | None,
        out: OutArray,
        cast: np.dtype,
        dtypes: list[np.dtype],
    ) -> np.ndarray:
        """:meth:`read` of images stored in different ``dtypes`` (each one's, in batch order), all cast to
        ``cast``: each dtype's images read together, then cast into their places."""
        picked = checked_indices(range(len(self)) if indices is None else indices, len(self), "read()")
        target: np.ndarray | None = None
        for dt in sorted(set(dtypes), key=str):
            at = [n for n, d in enumerate(dtypes) if d == dt]
            part = self._read(picked[at], view, None if rois is None else [rois[n] for n in at], None)
            if target is None:
                target = checked_out(out, (len(dtypes), *part.shape[1:]), cast)
            elif part.shape[1:] != target.shape[1:]:
                raise different_shapes({part.shape[1:], target.shape[1:]})
            for k, n in enumerate(at):
                copy_cast(target[n], part[k], view.casting)
        assert target is not None
        return target

    def _read(
        self,
        indices: Sequence[int] | np.ndarray | range | None,
        view: ViewSpec,
        rois: Sequence[Sequence[int] | None] | None,
        out: OutArray,
    ) -> np.ndarray:
        picked = checked_indices(range(len(self)) if indices is None else indices, len(self), "read()")
        idx = picked.tolist()
        member_of, row_of = (a.tolist() for a in self._positions.many(picked))
        if not idx:
            raise ArgumentError("read() got no indices; pass at least one image")
        uniform = self._uniform_parts()
        images: dict[int, OMEArrow] = {}  # images of other storages, opened once

        def meta_of(n: int) -> ImageMeta:
            part, k = member_of[n], idx[n]
            if self._parts[part].kind == "chunks":
                # images of a uniform part share the plan's inputs (sizes, dtype; the chunk shape only for tiles)
                return self._meta(part, row_of[n], shared=part in uniform and view.tile is None)
            images[k] = self[k]
            return images[k].meta

        keys = [(p, -1) if p in uniform else (p, r) for p, r in zip(member_of, row_of)]
        plan = plan_batch(view, keys, meta_of, rois, lambda: sorted({self._parts[p].path for p in member_of}), idx)
        sels, lay = plan.selections, plan.layout
        out = checked_out(out, plan.shape, plan.dtype)
        canon = canonical_view(out, lay, batch=True)
        by_part: dict[int, list[int]] = {}
        for n, part in enumerate(member_of):
            by_part.setdefault(part, []).append(n)
        for part_i, members in by_part.items():
            where = self._parts[part_i]
            if where.kind == "chunks":
                try:
                    with reading(where.path, None, "reading pixels"), blaming(where.path):
                        read_rows(
                            Path(where.path),
                            [row_of[n] for n in members],
                            [sels[n] for n in members],
                            [canon[n] for n in members],
                            verify=self._verify,
                            registry=self._registry,
                        )
                except SchemaError as exc:
                    if isinstance(exc, DamagedFileError):
                        raise
                    stale = changed_since_scan(Path(where.path), [row_of[n] for n in members], self._registry)
                    if stale is None:
                        raise
                    raise stale from exc
            else:
                for n in members:
                    image = images.pop(idx[n], None) or self[idx[n]]
                    canon[n][...] = image.source.read(sels[n])
        return out

    def _meta(self, member: int, row: int, shared: bool = False) -> ImageMeta:
        """Metadata of image row ``row`` of chunk dataset ``member``, from its (cached) images table row.

        ``shared``: the member's images share sizes and dtype, and the caller needs only those: the metadata this
        dataset made last for another image of the member serves, while the member's files are those it came from
        (a new process, a DataLoader worker of each epoch, makes one per member instead of one per batch).
        """
        path = Path(self._parts[member].path)
        try:
            with reading(path, None, "reading image metadata"), blaming(path):
                opened = open_dataset(path, self._registry)
                if not shared:
                    return opened.meta(row)
                kept = self._shared_metas.get(member)
                if kept is not None and kept[0]() is opened:
                    return kept[1]
                meta = opened.meta(row)
                self._shared_metas[member] = (weakref.ref(opened), meta)
                return meta
        except DamagedFileError as exc:  # the row past the images: an overwrite with fewer, not damage
            stale = changed_since_scan(path, [row], self._registry)
            if stale is None:
                raise
            raise stale from exc

    def _plan_ahead(self) -> None:
        """Make now, for every uniform chunk member, the metadata its batch plans are made from (see :meth:`_meta`):
        processes forked afterwards (DataLoader workers, new each epoch) plan their first batch from it instead of
        each making it again (~3 ms of a new worker's first batch, under cProfile). It holds while the files are those it
        came from; damage it meets here is left for the reads that need it to report."""
        for m in sorted(self._uniform_parts()):
            rows = self._positions.of_member(m)  # None: all of the member's images
            path = Path(self._parts[m].path)
            try:
                with reading(path, None, "reading image metadata"), blaming(path):
                    if rows is None and not open_dataset(path, self._registry).image_count:
                        continue
                    if rows is None or len(rows):
                        self._meta(m, 0 if rows is None else int(rows[0]), shared=True)
            except OMEArrowError:
                continue

    def _uniform_parts(self) -> set[int]:
        """Chunk parts whose images all share sizes and dtype (one selection serves them all)."""
        if self._uniform is None:
            self._uniform = self._find_uniform()
        return self._uniform

    def _find_uniform(self) -> set[int]:
        if self._table is None:  # from the footers' statistics, without reading the table
            return {k for k, p in enumerate(self._parts) if p.kind == "chunks" and uniform_member(p)}
        cols = [f"size_{a}" for a in "tczyx"] + ["dtype"]
        if not set(cols) <= set(self._table.column_names):
            return set()
        out = set()
        for part in unique(self._positions.arrays()[0]).tolist():
            if self._parts[part].kind != "chunks":
                continue
            mask = pa.array(self._positions.arrays()[0] == part)
            sub = self._table.select(cols).filter(mask)
            if all(pc.count_distinct(sub.column(c)).as_py() == 1 for c in cols):
                out.add(part)
        return out
