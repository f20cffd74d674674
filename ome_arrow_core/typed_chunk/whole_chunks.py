"""Many whole chunks read together, each into a buffer of its own (the tiles of a stream that are whole chunks).

:func:`~.chunk_reads.one_block` reads one whole chunk with one positioned read; a stream of tiles that are
whole chunks reads a group of them at a time. :func:`whole_blocks` fetches them with one ``os.preadv`` per run
of neighbouring pages (:func:`~.page_values.page_values_apart`), or where the C kernel can with one call of its
``read_each`` (:func:`~.whole_native.read_apart`), each page into its own buffer, so a tile kept by its consumer
holds only its own chunk and no later read writes into it. Every chunk is checked as ``one_block`` checks it: one
defined PLAIN value filling its page, its length, its checksum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..checksums import mismatch
from ..chunks import ChunkProjection
from ..dtypes import in_stored_order
from ..errors import DamagedFileError
from ..frozen_types import FrozenTuple
from .box_plans import BoxPlan
from .chunk_reads import checked_block
from .grouped_reads import one_file_groups, ranged_pieces
from .opened import OpenedDataset
from .page_reads import PageFragment
from .page_values import page_values_apart
from .whole_native import WholeItem, read_apart

__all__ = ["WholeChunk", "chunks_of", "whole_blocks", "whole_blocks_into", "whole_chunk"]

#: TCZYX axes in TZCYX order (a chunk as a selection's pixels).
_TZCYX = (0, 2, 1, 3, 4)


def whole_blocks(
    opened: OpenedDataset,
    rows: Sequence[int],
    shapes: Sequence[tuple[int, ...]],
    dtype: np.dtype,
    verify: bool,
) -> list[np.ndarray] | None:
    """The chunks of index rows ``rows`` (distinct; chunk ``i`` of ``shapes[i]``, TCZYX) as read-only TZCYX
    arrays, each a view of a buffer of its own, read together; None when they are not all in one page-ranged
    chunks file audited already (read them one by one then: a read through the footer audits them)."""
    if not rows:
        return []
    found = _pieces(opened, rows)
    if found is None:
        return None
    order, ascending, pieces = found
    sums = opened.sums if verify else None
    hasher = sums.hasher if sums is not None else None
    stored: list[int] = []
    present: list[bool] = []
    if hasher is not None:  # (each row's stored checksum, read now: rows filled in later are checked too)
        assert sums is not None and sums.values is not None and sums.present is not None
        at = np.asarray(rows, dtype=np.int64)
        stored, present = sums.values[at].tolist(), sums.present[at].tolist()
    swap = not in_stored_order(dtype)
    views = {shape: _view_of(shape, dtype) for shape in set(shapes)}
    need_of = [views[shape][2] for shape in shapes]
    out: list[np.ndarray] = [np.empty(0)] * len(rows)
    for frag, lo, a, b in pieces:
        idx = order[a:b].tolist()
        if not swap:  # the kernel reads and checks each where it can (whole_native.read_apart)
            read = read_apart(
                opened, frag, ascending[a:b] - lo, [rows[i] for i in idx], [need_of[i] for i in idx], verify
            )
            if read is not None:
                for buf, i in zip(read, idx):
                    tzcyx, strides, _ = views[shapes[i]]
                    arr = np.ndarray(tzcyx, dtype, buf, 0, strides)
                    arr.flags.writeable = False
                    out[i] = arr
                continue
        values = page_values_apart(frag, ascending[a:b] - lo)
        buffers, starts, lengths = values
        for k, i in enumerate(idx):
            row, shape = rows[i], shapes[i]
            tzcyx, strides, need = views[shape]
            data, begin = buffers[k], starts[k]
            if lengths[k] != need:
                raise DamagedFileError(
                    f"chunk {int(opened.columns['chunk_id'][row])} of {opened.path} holds {lengths[k]} "
                    f"bytes; its shape {tuple(shape)} needs {need}"
                )
            if swap:  # (in this machine's order on the way out, as one_block gives it)
                block = checked_block(opened, row, data, begin, need, dtype, shape, sums, None)
                out[i] = block.transpose(_TZCYX)
                continue
            if hasher is not None and present[i]:
                got = hasher(memoryview(data)[begin : begin + need])
                if got != stored[i]:
                    raise mismatch(*opened.where(int(row)), stored[i], got)
            arr = np.ndarray(tzcyx, dtype, data, begin, strides)
            arr.flags.writeable = False
            out[i] = arr
    return out


def whole_blocks_into(
    opened: OpenedDataset,
    rows: Sequence[int],
    shapes: Sequence[tuple[int, ...]],
    dtype: np.dtype,
    outs: Sequence[np.ndarray],
    verify: bool,
) -> bool:
    """Read the chunks of index rows ``rows`` (distinct; chunk ``i`` of ``shapes[i]``, TCZYX, of ``dtype``) straight
    into ``outs`` (slices of a stack's buffer) with the kernel's ``read_each``, every check of :func:`whole_blocks`
    made (a chunk that fails one raises); False, ``outs`` partly written or not, where an out is not writable,
    C-contiguous, of its chunk's shape and ``dtype`` in stored order, or :func:`whole_blocks` would not read them
    together, or the kernel cannot read them all."""
    if not rows:
        return True
    for o, shape in zip(outs, shapes, strict=True):
        if o.shape != shape or o.dtype != dtype or not (o.flags.c_contiguous and o.flags.writeable):
            return False
    if not in_stored_order(dtype):
        return False
    found = _pieces(opened, rows)
    if found is None:
        return False
    order, ascending, pieces = found
    for frag, lo, a, b in pieces:
        idx = order[a:b].tolist()
        into = [outs[i] for i in idx]
        need = [o.nbytes for o in into]
        if read_apart(opened, frag, ascending[a:b] - lo, [rows[i] for i in idx], need, verify, into) is None:
            return False
    return True


def _pieces(
    opened: OpenedDataset, rows: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, list[tuple[PageFragment, int, int, int]]] | None:
    """(the order that sorts ``rows``'s row groups, those row groups ascending, their page-ranged pieces) when the
    chunks of index rows ``rows`` lie in one page-ranged chunks file, audited already, one a row group; else None."""
    found = one_file_groups(opened, rows)
    if found is None:
        return None
    code, order, ascending = found
    if (ascending[1:] <= ascending[:-1]).any() or opened.read_check(code).unaudited(ascending):
        return None  # two chunks in one row group (not page-ranged), or not audited yet
    pieces = ranged_pieces(opened.fragment(code), ascending)
    return None if pieces is None else (order, ascending, pieces)


def _view_of(shape: tuple[int, ...], dtype: np.dtype) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """(TZCYX shape, its strides, bytes) of the C-order TCZYX block of ``shape`` viewed as a selection's pixels."""
    c_strides = [dtype.itemsize * math.prod(shape[k + 1 :]) for k in range(len(shape))]
    return (
        tuple(shape[k] for k in _TZCYX),
        tuple(c_strides[k] for k in _TZCYX),
        math.prod(shape) * dtype.itemsize,
    )


class WholeChunk(FrozenTuple):
    """The plan of a box that is one whole audited chunk: its page-ranged file and row group there, its index row
    and shape (read with one positioned read, every check made, into a buffer the result is a view of), and its
    item for the C kernel (:mod:`.whole_native`; None where it cannot read it)."""

    piece: tuple[PageFragment, int]
    row: int
    shape: tuple[int, ...]
    native: WholeItem | None = None


def chunks_of(plan: BoxPlan | WholeChunk) -> int:
    """Chunks a kept plan lists."""
    return len(plan.items) if isinstance(plan, BoxPlan) else 1


def whole_chunk(projections: list[ChunkProjection]) -> bool:
    """Whether a selection with ``projections`` is one whole chunk (read into its own buffer, no copy)."""
    return len(projections) == 1 and projections[0].is_complete_chunk
