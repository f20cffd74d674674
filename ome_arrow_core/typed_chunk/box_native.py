"""A box plan's whole chunks read, checked and placed by the optional C kernel (``ome-arrow-kernels``).

When ``ome_arrow_kernels`` is installed (``pip install "ome-arrow-core[fast]"``; ``OME_ARROW_KERNELS=0`` turns it
off) and every chunk of a :class:`~.box_plans.BoxPlan` is read whole, a read into a C-contiguous output of the
plan's dtype is one call of its ``read_chunks`` per block of chunks, the GIL released throughout: per chunk one
``preadv`` of its page (the value into this thread's scratch buffer), the head compared with the usual ones of its
size, XXH3-64 of the value with the index's, then its rows copied into their places in the output (no Python per
chunk; reads of :data:`STREAM_BYTES` or more by non-temporal stores). The same checks as the Python steps, chunk by chunk, and the same errors: a short read raises the
truncation error naming the chunk's bytes, a mismatch the usual :class:`~ome_arrow_core.errors.ChecksumError`, and
a page whose head is not the usual one is read by the Python steps (its value found, or refused). A chunk refused
leaves the output as it was. Reading each chunk's rows straight into the output and hashing them there was
measured slower (docs/benchmarks.md, session 23).
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from ..boundary import reading
from ..buffers import scratch_buffer
from ..checksums import mismatch
from ..env_switches import env_value
from .page_values import USUAL_VALUE_AT

if TYPE_CHECKING:
    from .box_plans import BoxPlan

__all__ = ["ENV", "STREAM_BYTES", "NativeItems", "digests", "installed", "item_fields", "kernels", "read_native"]

#: Set to ``0`` to read without the C kernel even where it is installed (tests, A/B).
ENV: Final[str] = "OME_ARROW_KERNELS"
#: Reads of at least this many bytes place rows by non-temporal stores (no read of the output's lines first): a
#: 1024x1024 and a 2048x2048 uint16 plane 0.84-0.85x the CPU time of plain copies, a sum of the output right after
#: included 0.90-0.94x (docs/benchmarks.md, session 23).
STREAM_BYTES: Final[int] = 2 << 20
_LOADED: list[ModuleType | None] = []  # the kernel module (or None: not installed), imported once


def kernels() -> ModuleType | None:
    """The ``ome_arrow_kernels`` module when it is installed and not turned off (:data:`ENV`), else None."""
    if env_value(ENV) == "0":
        return None
    return installed()


def installed() -> ModuleType | None:
    """The ``ome_arrow_kernels`` module when it is installed (imported once), else None."""
    if not _LOADED:
        try:
            import ome_arrow_kernels
        except ImportError:
            _LOADED.append(None)
        else:
            _LOADED.append(ome_arrow_kernels)
    return _LOADED[0]


def item_fields(
    offset: int, value: int, base: int, row: int, counts: tuple[int, ...], strides: tuple[int, ...], kind: int
) -> tuple[int, ...]:
    """One item as ``read_chunks`` takes it (13 int64 fields): its page's file ``offset`` and ``value`` bytes, the
    output byte its first row goes to (``base``), a row's bytes, the counts of its four outer axes in the order
    the page stores them and the output's byte strides for each, and ``kind`` (which usual head size)."""
    return (offset, value, base, row, *counts, *strides, kind)


class NativeItems:
    """The kernel's view of a plan whose chunks are all read whole: per item its fields (int64, see
    ``ome_arrow_kernels``), per page size the usual heads, per unit its first item, per item the file offset its
    unit's read starts at; :attr:`calls` counts the kernel calls made (so tests can tell the path was taken)."""

    def __init__(
        self, fields: np.ndarray, heads: np.ndarray, variants: int, unit_first: list[int], starts: list[int]
    ) -> None:
        self.fields = fields
        self.starts = starts
        self.heads = heads
        self.variants = variants
        self.unit_first = unit_first
        self.calls = 0

    @classmethod
    def build(cls, plan: BoxPlan) -> NativeItems | None:
        """The items of ``plan`` for the kernel, or None when one is not read whole (a crop's edge chunks) or each
        is read straight into the output by the Python steps already (a Z column: the kernel measured no faster), or
        the kernel is not installed (no plan pays for items no read can use)."""
        if installed() is None or all(u.into >= 0 for u in plan.units):
            return None
        for chunk, cut in plan.sources:
            if any(c.start != 0 or c.stop != n or c.step not in (None, 1) for c, n in zip(cut, chunk)):
                return None
        b = plan.dtype.itemsize
        sy = plan.shape[4] * b
        sc = plan.shape[3] * sy
        sz = plan.shape[2] * sc
        st = plan.shape[1] * sz
        sizes = sorted(plan.heads)
        kind = {n: i for i, n in enumerate(sizes)}
        fields = np.empty((len(plan.items), 13), np.int64)
        for k, (o, n, _, _, dst, s) in enumerate(plan.items):
            t, c, z, y, x = plan.sources[s][0]
            base = dst[0].start * st + dst[1].start * sz + dst[2].start * sc + dst[3].start * sy + dst[4].start * b
            fields[k] = item_fields(o, n - USUAL_VALUE_AT, base, x * b, (t, c, z, y), (st, sc, sz, sy), kind[n])
        variants = {len(plan.heads[n]) for n in sizes}
        if len(variants) != 1:
            return None
        heads = np.frombuffer(b"".join(h for n in sizes for h in plan.heads[n]), np.uint8)
        first = [u.checks[0][0] for u in plan.units] + [len(plan.items)]
        starts = [u.first for u in plan.units for _ in u.checks]
        return cls(fields, heads, variants.pop(), first, starts)


def read_native(
    kern: ModuleType,
    plan: BoxPlan,
    native: NativeItems,
    out: np.ndarray,
    ua: int,
    ub: int,
    want: list[Any],
    fn: Any,
    sums: tuple[np.ndarray, np.ndarray],
) -> None:
    """Read, check and place the items of units ``ua:ub`` of ``plan`` into ``out`` (C-contiguous, the plan's dtype)
    with the kernel; ``sums`` are the items' stored digests (uint64) and whether to check each (uint8)."""
    ia, ib = native.unit_first[ua], native.unit_first[ub]
    fd = plan.frag.fileno()
    values, check = sums
    scratch = memoryview(scratch_buffer())
    with reading(plan.frag.path, None, "reading chunk pages"):
        while ia < ib:
            native.calls += 1
            done, status, value = kern.read_chunks(
                fd,
                native.fields[ia:ib],
                USUAL_VALUE_AT,
                native.variants,
                native.heads,
                values[ia:ib],
                check[ia:ib],
                out,
                scratch,
                plan.nbytes >= STREAM_BYTES,
            )
            ia += done
            if status == kern.OK:
                return
            o, n, row, g, _, _ = plan.items[ia]
            if status == kern.SHORT:  # where the file ends, as the Python steps (a read from the unit's start) say
                end = o + value if value else max(native.starts[ia], os.fstat(fd).st_size)
                raise plan.frag.truncated(o, o + n, end, g)
            if status == kern.MISMATCH:
                raise mismatch(*plan.opened.where(row), want[ia], value)
            plan.read_item(out, ia, want, fn)  # an unusual head: its value found as usual, or refused
            ia += 1


def digests(sums: Any, rows: np.ndarray, check: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's stored digests (uint64) of index rows ``rows`` and whether to check each (uint8, of ``check``:
    the rows' checksums present; None: none checked)."""
    if check is None:
        return np.zeros(len(rows), np.uint64), np.zeros(len(rows), np.uint8)
    return sums.values[rows], check.view(np.uint8)
