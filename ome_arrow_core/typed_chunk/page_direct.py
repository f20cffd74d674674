"""Whole chunks read straight into their outputs: one ``os.preadv`` per run of pages, no staging copy.

A batch of whole images (a DataLoader's batch) selects every chunk whole, and each chunk's
pixels fill one contiguous stretch of its image's output. For such a chunk of a local,
uncompressed, audited ranged chunks file, :func:`place_direct` scatters the page's bytes with
one ``preadv``: the page's head (and the bytes between neighbouring pages: the next row
group's other columns) into a small scratch buffer, the value itself into the output. Each
head is then checked to be the usual page of one defined PLAIN value filling the page, and
each chunk's checksum is computed over the output it was read into; a chunk whose head is
unusual, or a run cut short, is handed back for :func:`~.page_stream.place_pages` to read
again (it reads unusual pages and names the damage). A checksum mismatch raises, as there.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from ..boundary import reading
from ..buffers import SCRATCH_BYTES
from ..checksums import mismatch
from .grouped_reads import ranged_pieces
from .page_reads import GAP_BYTES, PageFragment
from .page_values import MAX_IOVECS, USUAL_VALUE_AT, one_value_head

if TYPE_CHECKING:
    from .chunk_reads import Placement
    from .opened import OpenedDataset

__all__ = ["place_direct", "direct_target", "audit_heads", "HEADS_ALONE_BYTES"]

#: Pixel bytes one ``preadv`` reads at most: each value is still in cache when its checksum is computed.
RUN_BYTES: Final[int] = SCRATCH_BYTES
#: A first read of pages this large (or larger) audits their row groups from the bytes before the pages, then
#: reads the pixels straight into the outputs; smaller pages are read and audited in one pass.
HEADS_ALONE_BYTES: Final[int] = 16 << 10


def audit_heads(opened: OpenedDataset, code: int, groups: np.ndarray) -> bool:
    """Compare the rows of row groups ``groups`` (ascending, distinct) of chunks file ``code`` with the index from
    the bytes before their pages alone (:meth:`~.page_reads.PageFragment.heads`), when it is a local, uncompressed
    file read by page ranges whose pages are at least :data:`HEADS_ALONE_BYTES`: True when done (its pixels are then
    read as any audited rows', straight into the outputs); False when not such a file (a read audits its rows as
    it reads them)."""
    frag = opened.fragment(code)
    pieces = ranged_pieces(frag, groups)
    if pieces is None or not all(_heads_alone(f, groups[a:b] - lo) for f, lo, a, b in pieces):
        return False
    check = opened.read_check(code)
    for f, lo, a, b in pieces:
        mine = groups[a:b]
        with opened.lock:
            table = f.heads(mine - lo)
        check.check(mine, frag.group_rows, np.arange(len(mine), dtype=np.int64), table)
    return True


def _heads_alone(frag: PageFragment, groups: np.ndarray) -> bool:
    """Whether row groups ``groups`` of ``frag`` are audited from their heads alone (see :func:`audit_heads`)."""
    if frag.codec is not None or frag.remote is not None or not len(groups):
        return False
    if int(groups[0]) < 0 or int(groups[-1]) >= len(frag.compressed):  # out of range: a read says so
        return False
    return int(frag.compressed[groups].min()) >= HEADS_ALONE_BYTES


def direct_target(p: Placement) -> memoryview | None:
    """The bytes of ``p``'s output that its whole chunk fills, in the chunk's own order, or None when the chunk
    is not selected whole or its pixels do not fill one contiguous stretch of the output."""
    proj = p.projection
    if not proj.is_complete_chunk or proj.fancy or not _may_fill(p):
        return None
    shape = proj.chunk_shape
    if shape[1] > 1 and shape[2] > 1:  # TCZYX -> TZCYX reorders the chunk's pixels
        return None
    dest = p.out[proj.out_selection]
    if not dest.flags.c_contiguous or not dest.flags.writeable or dest.dtype != p.dtype or not dest.size:
        return None
    return dest.reshape(-1).view(np.uint8).data


def _may_fill(p: Placement) -> bool:
    """False when ``p``'s chunk cannot fill one contiguous stretch of its output wherever it lies: narrower than
    the output along x and longer than 1 along another axis (checked before any view of the output is made)."""
    shape = p.projection.chunk_shape
    return shape[4] == p.out.shape[4] or shape[0] == shape[1] == shape[2] == shape[3] == 1


def place_direct(
    opened: OpenedDataset,
    frag: PageFragment,
    todo: Sequence[Placement],
    groups: Sequence[int],
    sums: Any,
    checked: set[int] | None,
) -> list[int]:
    """Read the chunks of ``todo`` (placement ``i`` in row group ``groups[i]``, ascending, of ``frag``) that
    :func:`direct_target` accepts straight into their outputs; returns the positions in ``todo`` of the others
    (ascending), which the caller reads as :func:`~.page_stream.place_pages` does.

    With ``sums`` every chunk read here has its checksum compared (``checked`` collects its row)."""
    if frag.codec is not None or frag.remote is not None or not any(map(_may_fill, todo)):  # e.g. tiles of a plane
        return list(range(len(todo)))
    offsets, sizes = frag.offset, frag.compressed
    rest: list[int] = []
    run: list[tuple[int, int, int, int, memoryview]] = []  # (position, row, page offset, page bytes, target)
    fd = frag.fileno()
    with reading(frag.path, None, "reading chunk pages"):
        for i, (p, g) in enumerate(zip(todo, groups)):
            target = direct_target(p)
            o, n = int(offsets[g]), int(sizes[g])
            if target is None or o < 0 or n != USUAL_VALUE_AT + len(target):
                rest.append(i)
                continue
            if run and (
                o - (run[-1][2] + run[-1][3]) not in range(GAP_BYTES + 1)
                or 2 * len(run) + 1 >= MAX_IOVECS
                or o + n - run[0][2] > RUN_BYTES
            ):
                rest += _read_run(opened, fd, run, sums, checked)
                run = []
            run.append((i, p.row, o, n, target))
        if run:
            rest += _read_run(opened, fd, run, sums, checked)
    rest.sort()
    return rest


def _read_run(
    opened: OpenedDataset,
    fd: int,
    run: list[tuple[int, int, int, int, memoryview]],
    sums: Any,
    checked: set[int] | None,
) -> list[int]:
    """One ``preadv`` of a run of pages (ascending, apart by at most GAP_BYTES): heads and gaps to scratch, values to
    their targets; each head checked and each value's checksum compared. Returns the positions to read again."""
    heads = [0]  # where each page's head starts in the scratch buffer (after the gap before it)
    for (_, _, o, n, _), (_, _, o2, _, _) in itertools.pairwise(run):
        heads.append(heads[-1] + USUAL_VALUE_AT + (o2 - o - n))
    view = memoryview(bytearray(heads[-1] + USUAL_VALUE_AT))
    iov: list[memoryview] = []
    lo = 0
    for k, entry in enumerate(run):
        iov.append(view[lo : heads[k] + USUAL_VALUE_AT])
        iov.append(entry[4])
        lo = heads[k] + USUAL_VALUE_AT
    start, stop = run[0][2], run[-1][2] + run[-1][3]
    k = 0
    try:
        if os.preadv(fd, iov, start) != stop - start:  # the file ends early: place_pages reads again and says where
            _wipe([entry[4] for entry in run])
            return [i for i, *_ in run]
        again: list[int] = []
        for k, (i, row, _, n, target) in enumerate(run):
            if not one_value_head(view, heads[k], n):  # an unusual (or damaged) page: read and judged by place_pages
                _wipe([target])
                again.append(i)
                continue
            if sums is not None:
                pair = sums.compare(row, target, 0, len(target))
                if pair is not None and pair[0] != pair[1]:
                    raise mismatch(*opened.where(row), *pair)
                if checked is not None:
                    checked.add(row)
    except BaseException:
        _wipe([entry[4] for entry in run[k:]])  # no byte that failed or missed its check is left in an output
        raise
    return again


def _wipe(targets: list[memoryview]) -> None:
    """Zero ``targets`` (outputs read into but not checked: the caller's buffers keep no unchecked byte)."""
    for target in targets:
        np.frombuffer(target, np.uint8)[:] = 0
