"""Chunk geometry: splitting TZCYX images into chunks and mapping selections onto them."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any, Final

import numpy as np

from .arguments import whole_numbers
from .errors import SelectionError
from .frozen_types import FrozenTuple, frozen
from .selection import AxisIndex, Selection

__all__ = [
    "ChunkTable",
    "ChunkProjection",
    "box_projections",
    "grid_box_projections",
    "normalize_chunk_shape",
    "DEFAULT_TILE",
    "cached_plan",
    "PLANS",
    "PLAN_CHUNKS",
]

#: Default Y/X chunk edge for large planes (measured: see docs/format.md, Chunking).
DEFAULT_TILE = 256


def normalize_chunk_shape(
    chunk_shape: Sequence[int] | None, sizes: Mapping[str, int]
) -> tuple[int, int, int, int, int]:
    """A TCZYX chunk shape from (y, x), (z, y, x) or (t, c, z, y, x); clipped to the image.

    The default is one plane per chunk up to 256x256, tiles of 256x256 beyond.
    """
    if chunk_shape is None:
        shape: list[int] = [1, 1, 1, min(sizes["Y"], DEFAULT_TILE), min(sizes["X"], DEFAULT_TILE)]
    else:
        vals = whole_numbers(chunk_shape, "chunk_shape")
        if len(vals) not in (2, 3, 5) or any(v < 1 for v in vals):
            raise SelectionError(
                f"chunk_shape must be (y, x), (z, y, x) or (t, c, z, y, x) of positive ints, got {tuple(vals)}"
            )
        shape = [1] * (5 - len(vals)) + vals
    full = [sizes[a] for a in "TCZYX"]
    return tuple(min(s, n) for s, n in zip(shape, full))  # type: ignore[return-value]


def _overlap(sel: AxisIndex, start: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions in the selection, and offsets inside the chunk, of selected indices in the chunk."""
    idx = np.asarray(sel if not isinstance(sel, range) else np.arange(sel.start, sel.stop, sel.step))
    hit = np.nonzero((idx >= start) & (idx < start + size))[0]
    return hit, idx[hit] - start


@frozen
class ChunkTable:
    """Origins and shapes of an image's chunks, TCZYX, one row per chunk (int64 arrays)."""

    origin: np.ndarray  # (n, 5)
    shape: np.ndarray  # (n, 5)

    @classmethod
    def regular(cls, sizes: Mapping[str, int], chunk: tuple[int, int, int, int, int]) -> ChunkTable:
        """The regular grid of ``chunk`` over an image, ordered t, c, z, y, x."""
        full = [sizes[a] for a in "TCZYX"]
        axes = [np.arange(0, n, c) for n, c in zip(full, chunk)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 5)
        shape = np.minimum(np.asarray(chunk), np.asarray(full) - grid)
        return cls(grid.astype(np.int64), shape.astype(np.int64))

    def __len__(self) -> int:
        return int(self.origin.shape[0])

    def intersecting(self, sel: Selection) -> np.ndarray:
        """Row numbers of chunks that hold at least one selected pixel."""
        mask = np.ones(len(self), dtype=bool)
        for k, ax in enumerate("TCZYX"):
            s = sel.axis(ax)
            lo, hi = self.origin[:, k], self.origin[:, k] + self.shape[:, k]
            if isinstance(s, range) and s.step == 1:
                mask &= (lo < s.stop) & (hi > s.start)
            else:
                idx = np.asarray(list(s))
                mask &= ((idx[None, :] >= lo[:, None]) & (idx[None, :] < hi[:, None])).any(axis=1)
        return np.nonzero(mask)[0]

    @cached_property
    def _ordered_grid(self) -> tuple[list[int], list[int], np.ndarray] | None:
        """(edge, extent, cells) as Python ints when :attr:`grid` exists and its rows ascend in C order of the
        cells (as every regular grid we write does), so any box of cells lists its rows in row order."""
        grid = self.grid
        if grid is None:
            return None
        edge, cells = grid
        if len(self) > 1 and (np.diff(cells.ravel()) <= 0).any():
            return None
        full = (self.origin + self.shape).max(axis=0)
        return [int(v) for v in edge], [int(v) for v in full], cells

    @cached_property
    def grid(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(chunk edge per TCZYX axis, the row of each grid cell) when the chunks tile their extent as one regular
        grid (each cell once, edge chunks clipped), else None; computed once per table."""
        if not len(self):
            return None
        edge = self.shape.max(axis=0)
        full = (self.origin + self.shape).max(axis=0)
        counts = -(-full // edge)
        if (
            int(np.prod(counts)) != len(self)
            or (self.origin % edge).any()
            or (self.shape != np.minimum(edge, full - self.origin)).any()
        ):
            return None
        at = np.ravel_multi_index(tuple((self.origin // edge).T), tuple(counts.tolist()))
        if (at == np.arange(len(self))).all():  # rows in C order of their cells (what we write): no scatter
            return edge, np.arange(len(self), dtype=np.int64).reshape(tuple(counts.tolist()))
        cells = np.full(tuple(counts.tolist()), -1, dtype=np.int64)
        cells.ravel()[at] = np.arange(len(self))
        return (edge, cells) if (cells >= 0).all() else None

    @cached_property
    def _dense_grid(self) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
        """(edge, extent) when :attr:`grid` numbers its cells 0, 1, ... in C order (what every image we write has):
        then a box's projections depend on these and the box alone, and are shared (see :func:`cached_plan`)."""
        ordered = self._ordered_grid
        if ordered is None:
            return None
        edge, full, cells = ordered
        if int(cells.ravel()[0]) != 0 or int(cells.ravel()[-1]) != len(self) - 1:  # ascending: so 0..n-1
            return None
        return tuple(edge), tuple(full)

    def projections(self, sel: Selection) -> list[ChunkProjection]:
        """Where each chunk holding selected pixels meets ``sel``, in row order (zarr's chunk projections)."""
        axes = [sel.t, sel.c, sel.z, sel.y, sel.x]
        box, empty = True, False
        for a in axes:  # a loop, not all(...): every read of a box asks
            if type(a) is not range or a.step != 1:
                box = False
                break
            empty = empty or a.stop <= a.start
        if box:  # a box: slices, for all rows at once
            ordered = self._ordered_grid
            if ordered is not None and not empty:
                dense = self._dense_grid
                if dense is not None:
                    return cached_plan(dense, axes, ordered)  # type: ignore[arg-type]
                return grid_box_projections(*ordered, axes)  # type: ignore[arg-type]
            start = np.array([[a.start for a in axes]], dtype=np.int64)  # type: ignore[union-attr]
            stop = np.array([[a.stop for a in axes]], dtype=np.int64)  # type: ignore[union-attr]
            grid = self.grid
            if grid is None or (stop <= start).any():
                return box_projections(self.origin, self.shape, start, stop)
            edge, cells = grid  # only the cells the box covers
            rows = np.sort(
                cells[
                    tuple(
                        slice(a, b) for a, b in zip((start[0] // edge).tolist(), ((stop[0] - 1) // edge + 1).tolist())
                    )
                ].ravel()
            )
            return box_projections(self.origin[rows], self.shape[rows], start, stop, rows)
        return [self._projection(int(r), axes) for r in self.intersecting(sel)]

    def whole_chunks(self, sels: Sequence[Selection]) -> tuple[list[int], list[tuple[int, ...]]] | None:
        """(row, TCZYX shape) of the chunk each of ``sels`` is, whole and in order (what :meth:`projections` says
        with one complete projection), worked out on the grid's numbers alone (and remembered by box); None when
        the chunks are not an ordered grid or a selection is not one whole chunk."""
        known = self._whole_boxes
        rows: list[int] = []
        shapes: list[tuple[int, ...]] = []
        for sel in sels:
            box = (sel.t, sel.c, sel.z, sel.y, sel.x)
            hit = known.get(box)
            if hit is None:
                hit = self._whole_box(box)
                if hit is None:
                    return None
                if len(known) >= WHOLE_BOXES:
                    known.clear()
                known[box] = hit
            rows.append(hit[0])
            shapes.append(hit[1])
        return rows, shapes

    @cached_property
    def _whole_boxes(self) -> dict[tuple[AxisIndex, ...], tuple[int, tuple[int, ...]]]:
        """The boxes (TCZYX ranges) :meth:`whole_chunks` found to be whole chunks lately, with (row, shape)."""
        return {}

    def _whole_box(self, box: tuple[AxisIndex, ...]) -> tuple[int, tuple[int, ...]] | None:
        """(row, TCZYX shape) of the chunk that TCZYX indices ``box`` select whole and in order, else None."""
        ordered = self._ordered_grid
        if ordered is None:
            return None
        edge, full, cells = ordered
        at = []
        for a, e, n in zip(box, edge, full):
            if type(a) is not range or a.step != 1 or not 0 <= a.start < n or a.start % e:
                return None
            if a.stop != min(a.start + e, n):
                return None
            at.append(a.start // e)
        return int(cells[tuple(at)]), tuple(len(a) for a in box)

    def _projection(self, row: int, axes: list[AxisIndex]) -> ChunkProjection:
        """The projection of chunk ``row`` on a selection with index lists (``axes``, TCZYX)."""
        src: list[slice | np.ndarray] = []
        dst: list[slice | np.ndarray] = []
        complete = True
        for k, a in enumerate(axes):
            start, size = int(self.origin[row, k]), int(self.shape[row, k])
            pos, off = _overlap(a, start, size)
            src.append(slice(int(off[0]), int(off[-1]) + 1) if _is_run(off) else off)
            dst.append(slice(int(pos[0]), int(pos[-1]) + 1) if _is_run(pos) else pos)
            complete &= len(off) == size and _is_run(off)
        return ChunkProjection(
            row,
            tuple(src),
            tuple(dst[k] for k in _TZCYX),
            complete,
            tuple(int(v) for v in self.shape[row]),  # type: ignore[arg-type]
            not all(isinstance(i, slice) for i in (*src, *dst)),
        )


class ChunkProjection(FrozenTuple):
    """Where one chunk meets a selection (zarr's ``ChunkProjection``, with our axis orders).

    ``chunk_selection`` picks the selected pixels of the chunk's TCZYX block and
    ``out_selection`` says where they go in the selection's TZCYX output: per axis a slice,
    or an index array for an index list. ``is_complete_chunk``: the whole chunk is selected,
    in its order. ``row``: the chunk's row in the table (or arrays) it was projected from.
    """

    row: int
    chunk_selection: tuple[slice | np.ndarray, ...]
    out_selection: tuple[slice | np.ndarray, ...]
    is_complete_chunk: bool
    #: The chunk's shape (TCZYX).
    chunk_shape: tuple[int, int, int, int, int]
    #: Some axis takes an index array (not only slices).
    fancy: bool = False

    def copy(self, block: np.ndarray, out: np.ndarray) -> None:
        """Copy the selected pixels of ``block`` (the chunk, TCZYX) into ``out`` (the selection's TZCYX output)."""
        src = block
        if not self.fancy:
            out[self.out_selection] = src[self.chunk_selection].transpose(0, 2, 1, 3, 4)  # TCZYX -> TZCYX
            return
        for k, s in enumerate(self.chunk_selection):  # one axis at a time: index arrays do not broadcast together
            src = src[(slice(None),) * k + (s,)]
        src = src.transpose(0, 2, 1, 3, 4)
        if all(isinstance(s, slice) for s in self.out_selection):
            out[self.out_selection] = src
        else:
            out[np.ix_(*[np.arange(s.start, s.stop) if isinstance(s, slice) else s for s in self.out_selection])] = src


#: TZCYX output axes as positions in TCZYX.
_TZCYX = (0, 2, 1, 3, 4)


def box_projections(
    origin: np.ndarray, shape: np.ndarray, start: np.ndarray, stop: np.ndarray, rows: np.ndarray | None = None
) -> list[ChunkProjection]:
    """The projections of chunks (``origin``, ``shape``: (n, 5) TCZYX) onto boxes ``[start, stop)`` (TCZYX; one
    row per chunk, or one row for all), computed for all chunks at once; chunks outside their box are left out.

    Each box is a selection of step-1 ranges, the box's own origin the output's origin. A
    projection's ``row`` is the chunk's position in ``origin``, or ``rows`` of it when given.
    """
    end = origin + shape
    lo, hi = np.maximum(origin, start), np.minimum(end, stop)
    hit = np.flatnonzero((lo < hi).all(axis=1))
    if len(hit) < len(origin):
        origin, end, lo, hi = origin[hit], end[hit], lo[hit], hi[hit]
    if len(start) > 1:
        start = start[hit]
    src_lo, src_hi = (lo - origin).tolist(), (hi - origin).tolist()
    dst_lo, dst_hi = (lo - start).tolist(), (hi - start).tolist()
    complete = ((lo == origin) & (hi == end)).all(axis=1).tolist()
    ids = (hit if rows is None else rows[hit]).tolist()
    return [
        ChunkProjection(
            r,
            (slice(a[0], b[0]), slice(a[1], b[1]), slice(a[2], b[2]), slice(a[3], b[3]), slice(a[4], b[4])),
            (slice(c[0], d[0]), slice(c[2], d[2]), slice(c[1], d[1]), slice(c[3], d[3]), slice(c[4], d[4])),
            done,
            (n[0], n[1], n[2], n[3], n[4]),
        )
        for r, a, b, c, d, done, n in zip(ids, src_lo, src_hi, dst_lo, dst_hi, complete, (end - origin).tolist())
    ]


def grid_box_projections(
    edge: list[int], full: list[int], cells: np.ndarray, box: Sequence[range]
) -> list[ChunkProjection]:
    """The projections of the chunks of a regular grid (chunk ``edge`` and image ``full`` per TCZYX axis, ``cells``
    the row of each grid cell, ascending in C order) onto ``box`` (non-empty step-1 ranges, TCZYX), in row order.

    Per axis, each chunk's overlap is worked out once in plain Python; a projection is one combination of them
    (what :func:`box_projections` computes with arrays, without their per-call cost on small selections).
    """
    per_axis: list[list[tuple[slice, slice, bool, int]]] = []
    cut: list[slice] = []
    for e, n, r in zip(edge, full, box):
        lo_cell, hi_cell = r.start // e, (r.stop - 1) // e + 1
        cut.append(slice(lo_cell, hi_cell))
        if hi_cell - lo_cell == 1:  # the common case: the box lies in one chunk along this axis
            o = lo_cell * e
            end = min(o + e, n)
            a, b = r.start, r.stop
            per_axis.append([(slice(a - o, b - o), slice(0, b - a), a == o and b == end, end - o)])
            continue
        spans = []
        for o in range(lo_cell * e, hi_cell * e, e):
            end = min(o + e, n)
            lo, hi = max(o, r.start), min(end, r.stop)
            spans.append((slice(lo - o, hi - o), slice(lo - r.start, hi - r.start), lo == o and hi == end, end - o))
        per_axis.append(spans)
    rows = cells[tuple(cut)].ravel().tolist()
    return [
        ChunkProjection(
            row,
            (t[0], c[0], z[0], y[0], x[0]),
            (t[1], z[1], c[1], y[1], x[1]),
            t[2] and c[2] and z[2] and y[2] and x[2],
            (t[3], c[3], z[3], y[3], x[3]),
        )
        for row, (t, c, z, y, x) in zip(rows, itertools.product(*per_axis))
    ]


#: Boxes each table remembers being whole chunks (or not: those are worked out again), ~0.5 KiB each.
WHOLE_BOXES: Final[int] = 4096
#: Box plans kept (each at most PLAN_CHUNKS projections, ~450 bytes each: at most ~7 MiB), shared by every image
#: of the same grid.
PLANS: Final[int] = 1024
PLAN_CHUNKS: Final[int] = 16
_plans: dict[tuple[Any, ...], tuple[ChunkProjection, ...]] = {}
_plans_lock = threading.Lock()


def cached_plan(
    dense: tuple[tuple[int, ...], tuple[int, ...]],
    box: Sequence[range],
    ordered: tuple[list[int], list[int], np.ndarray],
) -> list[ChunkProjection]:
    """:func:`grid_box_projections` of ``box`` on a grid whose cells are numbered 0, 1, ... in C order (``dense``:
    its edge and extent; ``ordered``: what ``ChunkTable._ordered_grid`` holds), remembered for the next read of the
    same box on a grid of the same shape: the last :data:`PLANS` boxes of up to :data:`PLAN_CHUNKS` chunks."""
    t, c, z, y, x = box
    key = (dense, t.start, t.stop, c.start, c.stop, z.start, z.stop, y.start, y.stop, x.start, x.stop)
    hit = _plans.get(key)
    if hit is not None:
        return list(hit)
    made = grid_box_projections(*ordered, box)
    if len(made) <= PLAN_CHUNKS:
        with _plans_lock:
            while len(_plans) >= PLANS:
                _plans.pop(next(iter(_plans)))  # the oldest
            _plans[key] = tuple(made)
    return made


def _is_run(a: np.ndarray) -> bool:
    """True for consecutive ascending indices (so a slice can stand for them)."""
    return len(a) > 0 and bool(np.all(np.diff(a) == 1))
