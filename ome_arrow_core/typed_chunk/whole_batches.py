"""A batch of whole chunks read straight into their images' outputs, planned with numpy.

A batch of whole images (a DataLoader's, a Ray read task's) whose chunks each fill one contiguous stretch of
their image's output (the usual layout: a chunk per image plane) needs none of the per-chunk objects of the
general path (placements, :func:`~.chunk_reads.read_placements`): :func:`whole_plan` finds each chunk's bytes
in its output with numpy, and :func:`read_whole` finds its page in the file the same way, reads runs of
neighbouring pages with one ``os.preadv`` each (heads and the bytes between pages to scratch, values straight
into the outputs), then checks, before the next run, every head (one defined PLAIN value filling its page: the
check of :func:`~.page_values.one_value_head`, vectorized) and every chunk's checksum (one hasher call on the
output's bytes). The checks are those of :func:`~.page_direct.place_direct`; the rows' audit, the index's
bounds and the ledger are the caller's, as for the general path.

Anything else goes to the general path: a selection that cuts a chunk, outputs that are not C-contiguous
arrays of the image's dtype, compressed or remote chunk files, rows neither audited nor auditable from their
heads, and (after this path read them: the outputs are then zeroed) an unusual page or a file that ends early,
which the general path reads again and names.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, NamedTuple

import numpy as np

from ..boundary import reading
from ..checksums import mismatch
from ..dtypes import in_stored_order
from ..uniques import unique
from .grouped_reads import GroupedPages, ranged_pieces
from .page_direct import RUN_BYTES, audit_heads
from .page_reads import GAP_BYTES, PageFragment
from .page_values import MAX_IOVECS, ONE_VALUE_HEADS, USUAL_VALUE_AT

if TYPE_CHECKING:
    from .opened import OpenedDataset

__all__ = ["WholePlan", "whole_plan", "read_whole"]

#: TCZYX columns in TZCYX order (the outputs' axes).
_TZCYX = [0, 2, 1, 3, 4]
#: Batch geometries kept (see :func:`_geometry`); all are dropped when there are more.
GEOMETRIES_KEPT: Final = 8
#: ... each of at most this many chunks (a key is ~90 bytes a chunk; a larger batch is planned anew each time).
GEOMETRY_CHUNKS: Final = 4096
_GEOMETRIES: dict[tuple[object, ...], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None] = {}
#: The first six bytes of the usual page of one defined value (definition levels: one run of one 1).
_HEADS: Final = np.frombuffer(b"".join(sorted(ONE_VALUE_HEADS)), np.uint8).reshape(len(ONE_VALUE_HEADS), 6)


class WholePlan(NamedTuple):
    """Chunks read whole into their images' outputs, in file order: index row, chunk file code, row group, image
    (a position in ``outs``), byte offset in that image's output and bytes; ``outs``: the images' outputs."""

    rows: np.ndarray
    codes: np.ndarray
    groups: np.ndarray
    image: np.ndarray
    at: np.ndarray
    nbytes: np.ndarray
    outs: Sequence[np.ndarray]


def whole_plan(
    opened: OpenedDataset,
    rows: np.ndarray,
    owner: np.ndarray,
    origin: np.ndarray,
    shape: np.ndarray,
    starts: np.ndarray,
    stops: np.ndarray,
    outs: Sequence[np.ndarray],
    dtypes: Sequence[np.dtype],
) -> WholePlan | None:
    """The plan of reading chunks ``rows`` (of image ``owner[i]``; TCZYX ``origin`` and ``shape`` each) into the
    boxes ``starts[k]:stops[k]`` (TCZYX) of images ``k``, whose outputs are ``outs[k]`` (TZCYX, the box's shape);
    None unless every chunk lies wholly inside its box (kept) or wholly outside it (left out), and each kept one
    fills one contiguous stretch of its output in its own byte order, outputs C-contiguous arrays of the image's
    dtype (stored little-endian, so this machine's order)."""
    if (
        opened.fragment_code is None
        or not len(rows)
        or not _raw_pages(opened.fragment(int(opened.fragment_code[rows[0]])))
    ):
        return None  # (a compressed or remote file, or another format: known before any plan is made)
    for out, dt in zip(outs, dtypes):
        if out.dtype != dt or not dt.isnative or not in_stored_order(dt) or not out.size:
            return None
        if not (out.flags.c_contiguous and out.flags.writeable):
            return None
    items = np.array([dt.itemsize for dt in dtypes], dtype=np.int64)
    geometry = _geometry(owner, origin, shape, starts, stops, items)
    if geometry is None:
        return None
    keep, image, at, nbytes = geometry
    chunk_rows = rows[keep]
    codes = opened.fragment_code[chunk_rows].astype(np.int64)
    groups = opened.columns["row_group_id"][chunk_rows].astype(np.int64)
    order = np.lexsort((groups, codes))  # file order
    return WholePlan(chunk_rows[order], codes[order], groups[order], image[order], at[order], nbytes[order], outs)


def _geometry(
    owner: np.ndarray, origin: np.ndarray, shape: np.ndarray, starts: np.ndarray, stops: np.ndarray, items: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Which chunks a plan keeps, their images, and where and how many bytes each fills in its image's output (``items``:
    each image's item size); None as for :func:`whole_plan`. A batch of like images has the geometry of the last
    one: it is kept (read-only) for the next, keyed by every input's bytes."""
    if len(owner) > GEOMETRY_CHUNKS:
        return _new_geometry(owner, origin, shape, starts, stops, items)
    arrays = [np.ascontiguousarray(a, dtype=np.int64) for a in (owner, origin, shape, starts, stops, items)]
    key = (origin.shape, starts.shape, b"".join(a.tobytes() for a in arrays))
    try:
        return _GEOMETRIES[key]
    except KeyError:
        pass
    found = _new_geometry(owner, origin, shape, starts, stops, items)
    if found is not None:
        for a in found:
            a.setflags(write=False)
    if len(_GEOMETRIES) >= GEOMETRIES_KEPT:
        _GEOMETRIES.clear()
    _GEOMETRIES[key] = found
    return found


def _new_geometry(
    owner: np.ndarray, origin: np.ndarray, shape: np.ndarray, starts: np.ndarray, stops: np.ndarray, items: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """:func:`_geometry`, computed."""
    start, stop = starts[owner], stops[owner]
    end = origin + shape
    inside = (origin >= start).all(axis=1) & (end <= stop).all(axis=1)
    if not inside.all() and not (inside | ((end <= start) | (origin >= stop)).any(axis=1)).all():
        return None  # a chunk the box cuts
    keep = np.nonzero(inside)[0]
    if not len(keep):
        return None
    box = (stop - start)[keep][:, _TZCYX]
    size = shape[keep][:, _TZCYX]
    if ((size[:, 1] > 1) & (size[:, 2] > 1)).any():  # Z and C both: TCZYX -> TZCYX reorders its pixels
        return None
    # contiguous in its output: some axis j with every axis before it of one pixel and every axis after it whole
    ones = np.logical_and.accumulate(np.concatenate([np.ones((len(keep), 1), bool), size[:, :-1] == 1], axis=1), 1)
    whole = np.logical_and.accumulate((size == box)[:, ::-1], axis=1)[:, ::-1]
    after = np.concatenate([whole[:, 1:], np.ones((len(keep), 1), bool)], axis=1)
    if not (ones & after).any(axis=1).all():
        return None
    strides = np.concatenate([np.cumprod(box[:, :0:-1], axis=1)[:, ::-1], np.ones((len(keep), 1), np.int64)], 1)
    image = owner[keep]
    per = items[image]
    at = ((origin[keep] - start[keep])[:, _TZCYX] * strides).sum(axis=1) * per
    nbytes = size.prod(axis=1) * per
    return keep, image, at, nbytes


def read_whole(opened: OpenedDataset, plan: WholePlan, verify: bool) -> bool:
    """Read ``plan``'s chunks into their outputs, every head and (``verify``) checksum checked; False (outputs
    zeroed) when the general path must read them instead (see the module's docstring). A checksum that differs
    raises ChecksumError (outputs zeroed)."""
    n = len(plan.rows)
    offs = np.empty(n, dtype=np.int64)
    sizes = np.empty(n, dtype=np.int64)
    fds = np.empty(n, dtype=np.int64)
    paths: dict[int, str] = {}
    held: list[object] = []  # the fragments read: their descriptors stay open until this returns
    cuts = [0, *(np.nonzero(np.diff(plan.codes))[0] + 1).tolist(), n]
    for a, b in itertools.pairwise(cuts):
        code, groups = int(plan.codes[a]), plan.groups[a:b]
        distinct = unique(groups)
        if opened.read_check(code).unaudited(distinct) and not audit_heads(opened, code, distinct):
            return False  # small pages not audited yet: the general path audits them as it reads
        pieces = ranged_pieces(opened.fragment(code), groups)
        if pieces is None:
            return False
        for frag, lo, c, d in pieces:
            if frag.codec is not None or frag.remote is not None:
                return False
            local = groups[c:d] - lo
            if int(local[0]) < 0 or int(local[-1]) >= len(frag.offset):
                return False
            offs[a + c : a + d], sizes[a + c : a + d] = frag.offset[local], frag.compressed[local]
            fds[a + c : a + d] = fd = frag.fileno()
            paths[fd] = str(frag.path)
            held.append(frag)
    if (offs < 0).any() or (sizes != plan.nbytes + USUAL_VALUE_AT).any():
        return False
    sums = opened.sums if verify else None
    hasher = sums.hasher if sums is not None else None
    stored: list[int] = []
    present: list[bool] = []
    if hasher is not None:
        assert sums is not None and sums.values is not None and sums.present is not None
        stored, present = sums.values[plan.rows].tolist(), sums.present[plan.rows].tolist()
    # runs of pages one preadv reads: same file, apart by 0..GAP_BYTES, at most RUN_BYTES and MAX_IOVECS buffers
    gap = np.empty(n, dtype=np.int64)
    gap[0] = -1
    gap[1:] = offs[1:] - offs[:-1] - sizes[:-1]
    hard = (gap < 0) | (gap > GAP_BYTES)
    hard[1:] |= fds[1:] != fds[:-1]
    starts = _runs(hard.tolist(), (offs + sizes).tolist(), offs.tolist())
    gap[starts[:-1]] = 0
    seg = gap + USUAL_VALUE_AT  # scratch bytes before each value: the gap, then the page's head
    seg_end = np.cumsum(seg)
    head_at = (seg_end - USUAL_VALUE_AT)[:, None] + np.arange(USUAL_VALUE_AT)
    scratch = np.empty(int(seg_end[-1]), dtype=np.uint8)
    sv = scratch.data
    mvs = [out.reshape(-1).view(np.uint8).data for out in plan.outs]
    at, nb, image = plan.at.tolist(), plan.nbytes.tolist(), plan.image.tolist()
    targets = [mvs[k][a : a + b] for k, a, b in zip(image, at, nb)]
    lo_seg = (seg_end - seg).tolist()
    hi_seg = seg_end.tolist()
    offs_l, ends = offs.tolist(), (offs + sizes).tolist()
    fd_l = fds.tolist()
    expect = plan.nbytes.astype("<u4").view(np.uint8).reshape(-1, 4)
    bad = -1  # the first chunk whose checksum differs
    ok = False
    try:
        for a, b in itertools.pairwise(starts):
            iov: list[memoryview] = []
            for k in range(a, b):
                iov.append(sv[lo_seg[k] : hi_seg[k]])
                iov.append(targets[k])
            with reading(paths[fd_l[a]], None, "reading chunk pages"):
                got = os.preadv(fd_l[a], iov, offs_l[a])
            if got != ends[b - 1] - offs_l[a]:
                return False  # the file ends early: the general path reads again and says where
            if hasher is not None and bad < 0:  # while the run's bytes are in cache
                for k in range(a, b):
                    if present[k] and hasher(targets[k]) != stored[k]:
                        bad = k
                        break
        # every head (once for the batch; an unusual page is not a checksum's to judge)
        heads = scratch[head_at]
        first = heads[:, :6]
        if not ((first[:, None, :] == _HEADS[None]).all(axis=2).any(axis=1).all() and (heads[:, 6:] == expect).all()):
            return False  # an unusual (or damaged) page: read and judged by the general path
        if bad >= 0:
            assert hasher is not None
            raise mismatch(*opened.where(int(plan.rows[bad])), stored[bad], hasher(targets[bad]))
        ok = True
    finally:
        if not ok:  # no unchecked byte is left in an output
            for t in targets:
                np.frombuffer(t, np.uint8)[:] = 0
    return True


def _raw_pages(frag: object) -> bool:
    """Whether ``frag`` is a local chunks file read by page ranges whose pages are stored uncompressed."""
    if isinstance(frag, PageFragment):
        return frag.codec is None and frag.remote is None
    return isinstance(frag, GroupedPages) and frag.raw


def _runs(hard: list[bool], ends: list[int], offs: list[int]) -> list[int]:
    """Start positions of the runs (and the end): a new run at each ``hard`` break, past RUN_BYTES or MAX_IOVECS."""
    out = [0]
    first = offs[0]
    for k in range(1, len(hard)):
        if hard[k] or ends[k] - first > RUN_BYTES or k - out[-1] >= MAX_IOVECS // 2 - 1:
            out.append(k)
            first = offs[k]
    out.append(len(hard))
    return out
