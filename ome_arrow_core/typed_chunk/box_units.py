"""The units of a box plan: chunks read by one ``os.preadv``, then checked and copied into the output one by one.

A :class:`~.box_plans.BoxPlan` lists its chunks (items) by file offset. Items of one source (chunk shape and
selection) and page size, neighbours in the file (at most :data:`GAP_BYTES` apart) and side by side along x in
the output form a run; a run is split evenly into units that fit a thread's scratch buffer. A unit's pages are
read into slots of the scratch buffer (a multiple of 64 bytes apart, each value 64-byte aligned), the bytes
between pages into its last GAP_BYTES; each slot is one view of the scratch buffer (BoxPlan.groups), copied into
its chunk's output region on its own while it is cached: one copy of the unit's whole region (a slot axis before
x, the output written row after row) took 1.25-1.28x the CPU of that (a 2048x2048 uint16 plane, the whole 256 MiB
image; benchmarks/big_image_reads.py).
"""

from __future__ import annotations

from typing import Final

from ..buffers import ALIGNMENT, SCRATCH_BYTES
from ..frozen_types import FrozenTuple
from .page_values import USUAL_VALUE_AT

__all__ = ["GAP_BYTES", "PAGE_AT", "Unit", "output_offset", "output_offsets", "plan_units"]

#: Where a unit's first page is read to in the scratch buffer: its usual value start lands 64-byte aligned (as
#: page_stream); the unit's other pages follow at multiples of its slot size (a multiple of 64).
PAGE_AT: Final[int] = -USUAL_VALUE_AT % ALIGNMENT
#: Bytes between two pages of a unit at most (the other columns of a row group: ~1 KiB); they are read into the
#: last GAP_BYTES of the scratch buffer and dropped. Pages further apart start a new unit.
GAP_BYTES: Final[int] = 8 << 10


class Unit(FrozenTuple):
    """Chunks (items) of a plan read by one ``os.preadv`` from ``first`` and copied into the output at once."""

    #: The file offset the read starts at (the first item's page).
    first: int
    #: The read's iovecs: (place in the scratch buffer, bytes) for each page, (-1, bytes) for a gap.
    iovs: tuple[tuple[int, int], ...]
    #: Per item: (item, page bytes, index row, row group, bytes of the read it needs, its page's place).
    checks: tuple[tuple[int, int, int, int, int, int], ...]
    #: The output region of the unit (TZCYX slices) and, for several items, its shape with x split into (items,
    #: chunk width).
    dst: tuple[slice, ...]
    shape: tuple[int, ...]
    #: The unit's source view: one of BoxPlan.groups for several items, else one of BoxPlan.sources.
    group: int
    source: int
    #: Where in a C-contiguous output the pixels of the unit's one item lie in a row (bytes), so they may be read
    #: there straight (its page head into the scratch buffer); -1 when they do not.
    into: int


def plan_units(
    items: list[tuple[int, int, int, int, tuple[slice, ...], int]],
    groups: list[tuple[int, int, int]],
    into: list[int],
) -> list[Unit]:
    """The units of ``items`` (by file offset): runs of items of one source and page size that are neighbours in
    the file (at most GAP_BYTES apart) and side by side along x in the output, split evenly into units that fit
    the scratch buffer; an item whose pixels may be read straight into the output (``into[k]``: where, or -1)
    is a unit of its own. ``groups`` gets each distinct (source, items, slot) of units of several items."""
    units: list[Unit] = []
    a = 0
    while a < len(items):
        n, dst, s = items[a][1], items[a][4], items[a][5]
        b = a + 1
        while b < len(items) and into[a] < 0 and into[b] < 0:
            q = items[b - 1]
            o2, n2, _, _, dst2, s2 = items[b]
            gap = o2 - q[0] - q[1]
            if s2 != s or n2 != n or not 0 <= gap <= GAP_BYTES or dst2[:4] != dst[:4] or dst2[4].start != q[4][4].stop:
                break
            b += 1
        slot = -(-(PAGE_AT + n) // ALIGNMENT) * ALIGNMENT
        most = max(1, (SCRATCH_BYTES - GAP_BYTES) // slot)
        parts = -(-(b - a) // most)
        for p in range(parts):
            lo, hi = a + (b - a) * p // parts, a + (b - a) * (p + 1) // parts
            units.append(_unit(items, lo, hi, slot, groups, into[lo] if hi - lo == 1 else -1))
        a = b
    return units


def _unit(
    items: list[tuple[int, int, int, int, tuple[slice, ...], int]],
    a: int,
    b: int,
    slot: int,
    groups: list[tuple[int, int, int]],
    into: int,
) -> Unit:
    """Items ``a..b-1`` (a run: see :func:`plan_units`) as one unit; a new group is added to ``groups`` if need be."""
    first, head, last = items[a][0], items[a][4], items[b - 1][4]
    iovs: list[tuple[int, int]] = []
    checks = []
    for k in range(a, b):
        o, n, row, g, _, _ = items[k]
        gap = o - items[k - 1][0] - items[k - 1][1] if k > a else 0
        if gap:
            iovs.append((-1, gap))
        at = PAGE_AT + (k - a) * slot
        iovs.append((at, n))
        checks.append((k, n, row, g, o + n - first, at))
    if b - a == 1:
        return Unit(first, tuple(iovs), tuple(checks), head, (), -1, items[a][5], into)
    key = (items[a][5], b - a, slot)
    if key not in groups:
        groups.append(key)
    dst = (*head[:4], slice(head[4].start, last[4].stop))
    shape = (*(d.stop - d.start for d in head[:4]), b - a, head[4].stop - head[4].start)
    return Unit(first, tuple(iovs), tuple(checks), dst, shape, groups.index(key), items[a][5], -1)


def output_offset(
    dst: tuple[slice, ...], chunk: tuple[int, ...], cut: tuple[slice, ...], shape: tuple[int, ...], itemsize: int
) -> int:
    """Where (bytes) a chunk of TCZYX shape ``chunk``, read whole (``cut``), lands in a C-contiguous TZCYX output
    of ``shape`` at ``dst`` when its bytes lie there in a row in the order of its page, else -1: the chunk holds one
    channel or one plane (so TCZYX and TZCYX order its pixels alike) and ``dst`` spans every axis after its first
    one longer than 1."""
    return _in_a_row(dst, shape, itemsize) if _read_whole(chunk, cut) and len(dst) == 5 else -1


def output_offsets(
    items: list[tuple[int, int, int, int, tuple[slice, ...], int]],
    sources: list[tuple[tuple[int, ...], tuple[slice, ...]]],
    shape: tuple[int, ...],
    itemsize: int,
) -> list[int]:
    """:func:`output_offset` of each of ``items`` (output slices ``items[k][4]``, source ``sources[items[k][5]]``),
    what depends on the source alone worked out once per source: a source read whole may lie in a row only when
    its chunks span the output's x or are one pixel long on every other axis (an item's region is its source's
    cut, placed)."""
    whole = [_read_whole(chunk, cut) and _may_lie_in_a_row(cut, shape) for chunk, cut in sources]
    if not any(whole):
        return [-1] * len(items)
    return [_in_a_row(it[4], shape, itemsize) if whole[it[5]] and len(it[4]) == 5 else -1 for it in items]


def _may_lie_in_a_row(cut: tuple[slice, ...], shape: tuple[int, ...]) -> bool:
    """False when no region of TCZYX cut ``cut`` in a TZCYX output of ``shape`` can lie in a row (see
    :func:`_in_a_row`): narrower than the output along x and longer than 1 along another axis."""
    if cut[4].stop - cut[4].start == shape[4]:
        return True
    return all(c.stop - c.start == 1 for c in cut[:4])


def _read_whole(chunk: tuple[int, ...], cut: tuple[slice, ...]) -> bool:
    """Whether ``cut`` reads all of a chunk of TCZYX shape ``chunk`` that holds one channel or one plane."""
    if len(cut) != 5 or (chunk[1] != 1 and chunk[2] != 1):
        return False
    return all(c.start == 0 and c.stop == n and c.step in (None, 1) for c, n in zip(cut, chunk))


def _in_a_row(dst: tuple[slice, ...], shape: tuple[int, ...], itemsize: int) -> int:
    """Where (bytes) region ``dst`` (TZCYX slices) of a C-contiguous output of ``shape`` starts when its bytes lie
    in a row (it spans every axis after its first one longer than 1), else -1."""
    first = 4
    for i in range(4):
        if dst[i].stop - dst[i].start > 1:
            first = i
            break
    for i in range(first + 1, 5):
        if dst[i].start != 0 or dst[i].stop != shape[i]:
            return -1
    at, stride = 0, itemsize
    for i in range(4, -1, -1):
        at += dst[i].start * stride
        stride *= shape[i]
    return at
