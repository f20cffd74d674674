"""Read plans of box selections, worked out once per image and box, executed with a few Python steps per chunk.

A box (one step-1 range per axis: a full plane, a crop, the whole image) whose chunks all lie in one local,
uncompressed, page-ranged chunks file, every row of it audited already, is read again and again by the same
steps: :class:`BoxPlan` keeps them (per chunk its page's offset and size, the page head it must start with,
its index row, where its pixels land). Chunks side by side along x in the output, of one shape and neighbours
in the file, form units (:mod:`.box_units`). Executing a plan is, per unit, one ``os.preadv`` of its pages into
this thread's scratch buffer, each page's head compared with the expected one (one defined PLAIN value of the
chunk's size) and its XXH3 with the index's (read from the index on each read, never remembered), then one slice
assignment per chunk into the output: the checks of :func:`~.page_stream.place_pages`, in the same order, with
the same errors. Nothing read is kept: every read reads and checks the file's bytes again. Large boxes are read by
two threads (``os.preadv``, XXH3 and numpy's copy release the GIL) claiming blocks of units in turn, so a helper
that a busy machine starts late only takes what is left and the caller never waits for it to start; whether a core
is free for the helper is :func:`~.box_threads.spare_core`'s call. Plans of whole chunks are executed by the optional
C kernel where it is installed (:mod:`.box_native`).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, NoReturn

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..boundary import reading
from ..buffers import SCRATCH_BYTES, arrow_empty, scratch_buffer, view_buffer
from ..checksums import mismatch
from ..errors import DamagedFileError
from ..selection import Selection
from ..uniques import unique
from .box_native import NativeItems, digests, kernels, read_native
from .box_threads import helper_pool, spare_core
from .box_units import GAP_BYTES, PAGE_AT, output_offsets, plan_units
from .grouped_reads import one_file_groups, ranged_piece
from .page_reads import PageFragment
from .page_stream import streams
from .page_values import USUAL_VALUE_AT, value_in_page

if TYPE_CHECKING:
    from ..chunks import ChunkProjection
    from .opened import OpenedDataset

__all__ = ["BoxPlan", "box_key", "plan_box", "THREADED_BYTES", "PLAN_CHUNKS", "spare_core"]

#: The first 6 bytes of a page of one defined value: level bytes 2, then one RLE run of one 1 (or one bit-packed
#: group of it); the value's 4-byte length follows.
_LEVELS: Final[tuple[bytes, ...]] = (b"\x02\x00\x00\x00\x02\x01", b"\x02\x00\x00\x00\x03\x01")
#: Boxes of at least this many bytes are read by two threads (when a core is spare: see :func:`spare_core`). A
#: 1024x1024 uint16 plane (2 MiB) is not: on a quiet 2-core machine two threads read it in more wall time than one
#: (0.34-0.38 against 0.24-0.28 ms, session 13, docs/benchmarks.md), the helper's wake-up costing more than it saves.
THREADED_BYTES: Final[int] = 4 << 20
#: Chunks two threads claim at a time at least, in whole units (a thread that starts late only takes what is left).
STEP: Final[int] = 2
#: Blocks a read by two threads is cut into at most (larger boxes claim more chunks at a time: fewer lock rounds).
BLOCKS: Final[int] = 16
#: Chunks a plan holds at most (~0.7 KiB each with its units, tracemalloc); larger boxes are read without one.
PLAN_CHUNKS: Final[int] = 8192


class _Shared:
    """Blocks of a box read by two threads: the next one to claim, how many are being read, the first error."""

    def __init__(self, blocks: int) -> None:
        self.blocks = blocks
        self.next = 0
        self.active = 0
        self.error: BaseException | None = None
        self.cond = threading.Condition()


def box_key(sel: Selection) -> tuple[range, ...] | None:
    """The TZCYX ranges of ``sel`` when it is a non-empty box (step-1 ranges on every axis), else None."""
    axes = (sel.t, sel.z, sel.c, sel.y, sel.x)
    for a in axes:
        if type(a) is not range or a.step != 1 or a.stop <= a.start:
            return None
    return axes  # type: ignore[return-value]


class BoxPlan:
    """The read of one box of one image, worked out (see the module); :meth:`read` executes it."""

    def __init__(
        self,
        opened: OpenedDataset,
        frag: PageFragment,
        shape: tuple[int, ...],
        dtype: np.dtype,
        items: list[tuple[int, int, int, int, tuple[slice, ...], int]],
        sources: list[tuple[tuple[int, ...], tuple[slice, ...]]],
    ) -> None:
        self.opened = opened
        self.frag = frag
        self.shape = shape
        self.dtype = dtype
        #: Per chunk, by file offset: (offset, page bytes, index row, row group in frag, output slices, source).
        self.items = items
        self.rows = np.array([it[2] for it in items], dtype=np.int64)
        #: The heads (10 bytes) a page of ``n`` bytes of one defined value starts with, per distinct ``n``.
        self.heads = {
            n: tuple(lv + (n - USUAL_VALUE_AT).to_bytes(4, "little") for lv in _LEVELS) for n in {it[1] for it in items}
        }
        #: Distinct (chunk shape, chunk selection) of the items: each is one view of a thread's scratch buffer.
        self.sources = sources
        #: Distinct (source, items, slot) of the units of several items: each is one view of the scratch buffer.
        self.groups: list[tuple[int, int, int]] = []
        into = output_offsets(items, sources, shape, dtype.itemsize)
        self.units = plan_units(items, self.groups, into)
        #: Per unit of several items, each item's output region (TZCYX slices), in the order of its slots.
        self.dsts = [tuple(items[c[0]][4] for c in u.checks) if u.group >= 0 else () for u in self.units]
        #: Distinct read layouts (a unit's iovecs) and each unit's: a thread makes the buffers of each layout once.
        layouts: dict[tuple[tuple[int, int], ...], int] = {}
        self.layout = [layouts.setdefault(u.iovs, len(layouts)) for u in self.units]
        self.layouts = list(layouts)
        #: Whether a unit may be read straight into a C-contiguous output (see box_units.Unit.into).
        self.straight = any(u.into >= 0 for u in self.units)
        #: Units ``blocks[k]:blocks[k + 1]`` are block ``k`` of a read by two threads (at least STEP chunks each).
        self.blocks = [0]
        count, step = 0, max(STEP, -(-len(items) // BLOCKS))
        for k, u in enumerate(self.units):
            count += len(u.checks)
            if count >= step:
                self.blocks.append(k + 1)
                count = 0
        if self.blocks[-1] != len(self.units):
            self.blocks.append(len(self.units))
        self.nbytes = math.prod(shape) * dtype.itemsize
        self._local = threading.local()
        #: The items for the C kernel (every chunk read whole), else None (:mod:`.box_native`).
        self.native = NativeItems.build(self)

    def read(self, verify: bool) -> np.ndarray:
        """The box's pixels (TZCYX) in a fresh read-only array, each chunk read and checked now."""
        out, buf = arrow_empty(self.shape, self.dtype)
        self.read_into(out, verify)
        return view_buffer(buf, self.dtype, self.shape)

    def read_into(self, out: np.ndarray, verify: bool) -> None:
        """Read every chunk into ``out`` (TZCYX, the box's shape), each checked (with ``verify``, its checksum).

        When a read or check fails (the error is raised), ``out`` holds no byte that failed or missed its check:
        each region is either a chunk's checked pixels, zeros (a page read straight into it, then refused) or what
        ``out`` held before."""
        sums = self.opened.sums if verify else None
        want: list[Any] = [None] * len(self.items)
        fn = check = None
        if sums is not None and sums.values is not None and sums.present is not None:
            fn = sums.hasher
            check = sums.present[self.rows]
            want = sums.values[self.rows].tolist()
            if not check.all():
                want = [s if p else None for s, p in zip(want, check.tolist())]
        kern, nat = kernels() if self.native is not None else None, None
        if kern is not None and out.dtype == self.dtype and out.flags.c_contiguous:
            nat = (kern, digests(sums, self.rows, check))
        blocks = len(self.blocks) - 1
        if self.nbytes < THREADED_BYTES or blocks < 2 or not spare_core():
            self._run(out, 0, len(self.units), want, fn, nat)
            return
        shared = _Shared(blocks)
        # the helper helps if it starts in time; it is never waited for otherwise
        helper_pool().submit(self._take, shared, out, want, fn, nat)
        self._take(shared, out, want, fn, nat)
        with shared.cond:
            shared.cond.wait_for(lambda: shared.active == 0)  # no block still being written into ``out``
        if shared.error is not None:
            raise shared.error

    def _take(self, shared: _Shared, out: np.ndarray, want: list[Any], fn: Any, nat: Any) -> None:
        """Read blocks of units of ``shared`` until none is left (or one failed)."""
        while True:
            with shared.cond:
                if shared.error is not None or shared.next >= shared.blocks:
                    return
                k = shared.next
                shared.next += 1
                shared.active += 1
            try:
                self._run(out, self.blocks[k], self.blocks[k + 1], want, fn, nat)
            except BaseException as exc:
                with shared.cond:
                    shared.error = shared.error or exc
            finally:
                with shared.cond:
                    shared.active -= 1
                    shared.cond.notify_all()

    def _views(self) -> tuple[memoryview, list[np.ndarray], list[list[np.ndarray]]]:
        """This thread's scratch buffer (as bytes), the view of it each of :attr:`sources` reads (a page at
        ``PAGE_AT``) and per each of :attr:`groups` the view of each of its slots (its pages at ``PAGE_AT`` plus
        multiples of its slot); also (``self._local``) per layout its iovecs and per page its (head, value) bytes,
        and per unit its steps (:meth:`_steps`)."""
        local = self._local
        scratch = scratch_buffer()
        if getattr(local, "scratch", None) is not scratch:
            mv = memoryview(scratch).cast("B")
            junk = mv[SCRATCH_BYTES - GAP_BYTES :]
            local.iovs = [[mv[at : at + n] if at >= 0 else junk[:n] for at, n in iovs] for iovs in self.layouts]
            local.pages = [
                [(mv[at : at + USUAL_VALUE_AT], mv[at + USUAL_VALUE_AT : at + n]) for at, n in iovs if at >= 0]
                for iovs in self.layouts
            ]
            start = PAGE_AT + USUAL_VALUE_AT
            views = []
            for shape, sel in self.sources:
                block = np.frombuffer(scratch, self.dtype, count=math.prod(shape), offset=start).reshape(shape)
                views.append(block[sel].transpose(0, 2, 1, 3, 4))  # TCZYX -> TZCYX
            groups = []
            for s, m, slot in self.groups:
                v = views[s]  # items side by side: a slot axis before x
                strides = (*v.strides[:4], slot, v.strides[4])
                g = as_strided(v, (*v.shape[:4], m, v.shape[4]), strides, writeable=False)
                groups.append([g[:, :, :, :, j] for j in range(m)])
            local.view, local.views, local.groups = memoryview(scratch).cast("B"), views, groups
            local.steps = self._steps(local.iovs, local.pages, views, groups)
            local.scratch = scratch
        return local.view, local.views, local.groups

    def _steps(
        self,
        iovs: list[list[memoryview]],
        pages: list[list[tuple[memoryview, memoryview]]],
        views: list[np.ndarray],
        groups: list[list[np.ndarray]],
    ) -> list[tuple[Any, ...]]:
        """Per unit, what :meth:`_run` does with this thread's views, looked up once: (file offset, iovecs, bytes
        the read needs, per page (head, the usual heads of its size, value, item, place), per chunk (output
        region, source view), where its one item may be read straight into the output, its checks)."""
        heads = self.heads
        steps = []
        for (first, _, checks, dst, _, group, source, into), k, mine in zip(self.units, self.layout, self.dsts):
            if group < 0:  # one item
                (item, n, _, _, _, at), (head, value) = checks[0], pages[k][0]
                read = [(head, heads[n], value, item, at)]
                copies = [(dst, views[source])]
            else:
                read = [(hv[0], heads[c[1]], hv[1], c[0], c[5]) for c, hv in zip(checks, pages[k])]
                copies = list(zip(mine, groups[group]))
            steps.append((first, iovs[k], checks[-1][4], read, copies, into, checks))
        return steps

    def _run(self, out: np.ndarray, ua: int, ub: int, want: list[Any], fn: Any, nat: Any = None) -> None:
        """Read, check and place units ``ua:ub`` (this thread's scratch buffer, or ``nat``'s C kernel: read_native)."""
        if nat is not None:
            assert self.native is not None
            read_native(nat[0], self, self.native, out, ua, ub, want, fn, nat[1])
            return
        view = self._views()[0]
        fd = self.frag.fileno()
        preadv = os.preadv
        straight = self.straight and out.dtype == self.dtype and out.flags.c_contiguous  # else numpy casts
        flat = out.reshape(-1).view(np.uint8).data if straight else None
        with reading(self.frag.path, None, "reading chunk pages"):
            for first, iovs, need, pages, copies, into, checks in self._local.steps[ua:ub]:
                if into >= 0 and flat is not None:
                    if self._straight(pages[0][0], flat, first, checks[0], into, want, fn):
                        continue  # read, checked and placed (else: the page's head is unusual, read it as usual)
                got = preadv(fd, iovs, first)
                if got < need:
                    self._truncated(first, got, checks)
                for head, usual, value, k, at in pages:
                    if head not in usual:  # find the value, or refuse
                        self._unusual(view, k, at, want, fn)
                    elif want[k] is not None:
                        actual = fn(value)
                        if actual != want[k]:
                            raise mismatch(*self.opened.where(self.items[k][2]), want[k], actual)
                for d, v in copies:  # chunk by chunk: each slot's pixels are copied while they are still cached
                    out[d] = v

    def _truncated(self, first: int, got: int, checks: tuple[tuple[int, int, int, int, int, int], ...]) -> NoReturn:
        """Raise for the first of ``checks`` that a read of ``got`` bytes from ``first`` did not reach."""
        for _, n, _, g, end, _ in checks:
            if got < end:
                o = first + end - n
                raise self.frag.truncated(o, o + n, first + got, g)
        raise AssertionError(f"{self.frag.path}: a read of {got} bytes from {first} was short of no page")

    def _straight(
        self,
        head: memoryview,
        flat: memoryview,
        first: int,
        check: tuple[int, int, int, int, int, int],
        into: int,
        want: list[Any],
        fn: Any,
    ) -> bool:
        """Read one item's page straight into the output (``flat``, its bytes: the value at ``into``; the head into
        ``head``, its place in this thread's scratch buffer) and check it; False, nothing checked, when its head is
        not the usual one (the caller then reads the page as usual). The pixels are zeroed again unless they were
        checked (a refused page leaves no unchecked byte in the caller's output)."""
        k, n, row, g, end, _ = check
        pixels = flat[into : into + n - USUAL_VALUE_AT]
        try:
            got = os.preadv(self.frag.fileno(), [head, pixels], first)
            if got < end:
                raise self.frag.truncated(first, first + n, first + got, g)
            if head not in self.heads[n]:
                pixels[:] = bytes(len(pixels))  # the usual read copies them again once checked
                return False
            if want[k] is not None:
                actual = fn(pixels)
                if actual != want[k]:
                    raise mismatch(*self.opened.where(row), want[k], actual)
        except BaseException:
            pixels[:] = bytes(len(pixels))  # never leave bytes that failed (or missed) their check in the output
            raise
        return True

    def read_item(self, out: np.ndarray, k: int, want: list[Any], fn: Any) -> None:
        """Read item ``k``'s page into this thread's scratch buffer, check it as a page of any head
        (:meth:`_unusual`) and place it in ``out``."""
        view, views, _ = self._views()
        o, n, _, g, dst, s = self.items[k]
        got = os.preadv(self.frag.fileno(), [view[PAGE_AT : PAGE_AT + n]], o)
        if got < n:
            self._truncated(o, got, ((k, n, 0, g, n, PAGE_AT),))
        self._unusual(view, k, PAGE_AT, want, fn)
        out[dst] = views[s]

    def _unusual(self, view: memoryview, k: int, at: int, want: list[Any], fn: Any) -> None:
        """Check item ``k`` whose page (read into ``view`` at ``at``) does not start with the usual head: its one
        value found as :func:`~.page_values.value_in_page` does (DamagedFileError unless there is one), of its
        chunk's size (so it fills the page from ``at + USUAL_VALUE_AT``, where the usual views read it), and
        its checksum."""
        _, n, row, g, _, s = self.items[k]
        shape = self.sources[s][0]
        need = math.prod(shape) * self.dtype.itemsize
        begin, length = value_in_page(self.frag, g, view, at, n)
        if length != need:
            raise DamagedFileError(
                f"chunk {int(self.opened.columns['chunk_id'][row])} of {self.opened.path} holds {length} bytes; "
                f"its shape {tuple(shape)} needs {need}"
            )
        if want[k] is not None:
            actual = fn(view[begin : begin + need])
            if actual != want[k]:
                raise mismatch(*self.opened.where(row), want[k], actual)


def plan_box(
    opened: OpenedDataset,
    rows: Sequence[int],
    projections: Sequence[ChunkProjection],
    shape: tuple[int, ...],
    dtype: np.dtype,
) -> BoxPlan | None:
    """The plan of a box read (``projections`` of chunks at index rows ``rows``, output ``shape``, TZCYX), or None
    when it cannot have one: chunks in several files, a file not read by page ranges, compressed or remote, a row
    not audited yet, a page missing, too large for the scratch buffer or of another size than its chunk, too many
    chunks, or pixels in the other byte order (those reads take the general path, which says what is wrong)."""
    if not rows or len(rows) > PLAN_CHUNKS or any(p.fancy for p in projections):
        return None
    found = one_file_groups(opened, rows)
    if found is None:
        return None
    code, order, ordered = found
    groups = np.empty_like(ordered)
    groups[order] = ordered  # each row's group, in the order of ``rows``
    if opened.read_check(code).unaudited(unique(ordered)):
        return None
    piece = ranged_piece(opened.fragment(code), ordered)
    if piece is None:
        return None
    frag, lo = piece
    local = (groups - lo).tolist()
    if not streams(frag, local, [dtype]):
        return None
    offsets, sizes = frag.offset[local].tolist(), frag.compressed[local].tolist()
    sources: dict[tuple[Any, ...], int] = {}
    distinct: list[tuple[tuple[int, ...], tuple[slice, ...]]] = []
    values: dict[tuple[int, ...], int] = {}  # each chunk shape's value bytes
    items = []
    for k in order.tolist():  # (no projection is fancy: every selection is 5 slices)
        p, o, n = projections[k], offsets[k], sizes[k]
        chunk, cut = p.chunk_shape, p.chunk_selection
        need = values.get(chunk)
        if need is None:
            need = values[chunk] = math.prod(chunk) * dtype.itemsize
        if o < 0 or n + PAGE_AT > SCRATCH_BYTES or n - USUAL_VALUE_AT != need:
            return None
        t, c, z, y, x = cut  # slices are unhashable before Python 3.12: their bounds make the key
        key = (chunk, t.start, t.stop, c.start, c.stop, z.start, z.stop, y.start, y.stop, x.start, x.stop)
        s = sources.get(key)
        if s is None:
            s = sources[key] = len(distinct)
            distinct.append((chunk, cut))
        items.append((o, n, int(rows[k]), local[k], p.out_selection, s))
    return BoxPlan(opened, frag, shape, dtype, items, distinct)
