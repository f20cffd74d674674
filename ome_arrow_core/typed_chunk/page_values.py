"""The hot read path of ranged chunks files: chunk values straight from positioned reads, no Arrow tables.

A :class:`~.page_reads.PageFragment` knows where each row group's ``pixel_bytes`` page lies.
:func:`page_values` fetches the pages of some row groups with one ``os.preadv`` per run of
neighbouring pages (gaps under :data:`~.page_reads.GAP_BYTES` are read into a scratch buffer
and dropped), scattering each page into one preallocated Arrow buffer where its value starts
64-byte aligned; compressed pages are decompressed one by one. Each page is checked to hold
one defined PLAIN value that fills it, as the index says; the caller checks each value's
length and checksum before using it. Reads that must also audit a row group's other
columns take :meth:`PageFragment.read <.page_reads.PageFragment.read>` instead.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import Final

import numpy as np
import pyarrow as pa

from ..boundary import reading
from ..buffers import ALIGNMENT
from ..errors import DamagedFileError
from ..frozen_types import FrozenTuple
from .page_columns import defined_value_at
from .page_reads import GAP_BYTES, PageFragment

__all__ = [
    "PageValues",
    "page_values",
    "page_values_apart",
    "page_slots",
    "page_value",
    "MAX_IOVECS",
    "USUAL_VALUE_AT",
    "ONE_VALUE_HEADS",
    "one_value_head",
    "value_in_page",
]

#: Pages (and gaps) one ``preadv`` scatters at most (Linux's IOV_MAX is 1024).
MAX_IOVECS: Final[int] = 512
#: Where the value of a page of one defined value usually starts: a 4-byte level length, 2 bytes of levels
#: (one RLE run of one defined value), the value's 4-byte length. Pages are placed so this byte is aligned.
USUAL_VALUE_AT: Final[int] = 10
#: The first 6 bytes of such a page: level bytes 2, then one RLE run of one 1 (or one bit-packed group of it).
ONE_VALUE_HEADS: Final[frozenset[bytes]] = frozenset({b"\x02\x00\x00\x00\x02\x01", b"\x02\x00\x00\x00\x03\x01"})


class PageValues(FrozenTuple):
    """The values of some row groups: value ``k`` is bytes ``start[k]:start[k] + length[k]`` of ``buffers[k]``."""

    buffers: list[pa.Buffer]
    start: list[int]
    length: list[int]


def _runs(offset: list[int], end: list[int]) -> list[tuple[int, int]]:
    """[first, stop) positions of runs of pages (ascending ``offset``) less than GAP_BYTES apart, at most
    MAX_IOVECS // 2 pages each."""
    out: list[tuple[int, int]] = []
    first = 0
    for k in range(1, len(offset)):
        if offset[k] - end[k - 1] > GAP_BYTES or k - first == MAX_IOVECS // 2:
            out.append((first, k))
            first = k
    out.append((first, len(offset)))
    return out


def page_slots(frag: PageFragment, groups: np.ndarray) -> tuple[list[int], int]:
    """Where the pages of row groups ``groups`` (ascending, each once) of ``frag`` go in one read buffer (each
    usual value start 64-byte aligned), and the buffer's size; raises DamagedFileError when a group has no
    recorded page or the pages overlap."""
    group_l = groups.tolist()
    offset, size = frag.offset[groups].tolist(), frag.compressed[groups].tolist()
    _page_ends(frag, group_l, offset, size)
    dest: list[int] = []
    slot = 0
    for n in size:
        dest.append(slot + (-(slot + USUAL_VALUE_AT)) % ALIGNMENT)  # the usual value start aligned
        slot = dest[-1] + n
    return dest, max(slot, 1)


def _page_ends(frag: PageFragment, group_l: list[int], offset: list[int], size: list[int]) -> list[int]:
    """Where the pages of row groups ``group_l`` (at ``offset``, ``size`` bytes) end; raises DamagedFileError when
    a group has no recorded page or the pages overlap."""
    ends: list[int] = []
    end = 0
    for k, o in enumerate(offset):
        if o < 0:
            raise DamagedFileError(
                f"{frag.path}: row group {group_l[k]} has no page range in index.parquet; the index is damaged"
            )
        if k and o < end:
            raise DamagedFileError(
                f"{frag.path}: index.parquet places the pages of row groups {group_l[k - 1]} and "
                f"{group_l[k]} out of order or overlapping; it is damaged"
            )
        end = o + size[k]
        ends.append(end)
    return ends


def page_values(frag: PageFragment, groups: np.ndarray, into: pa.Buffer | None = None) -> PageValues:
    """The ``pixel_bytes`` values of row groups ``groups`` (ascending, each once) of ``frag``, read into a fresh
    buffer, or into ``into`` when it is large enough (:func:`page_slots`; the values then live only as long as
    its next use).

    Raises DamagedFileError when a group has no recorded page, the file ends early, a page does
    not decompress or is not one defined PLAIN value filling its recorded size.
    """
    group_l = groups.tolist()
    offset, size = frag.offset[groups].tolist(), frag.compressed[groups].tolist()
    end = [o + c for o, c in zip(offset, size)]
    dest, slot = page_slots(frag, groups)
    buf = into if into is not None and into.size >= slot else pa.allocate_buffer(slot)
    view = memoryview(buf).cast("B")
    fd = frag.fileno() if frag.remote is None else -1
    with reading(frag.path, None, "reading chunk pages"):
        runs = _runs(offset, end) if group_l else []
        fetched = _fetched(frag, runs, offset, end)
        for (a, b), raw in zip(runs, fetched or [None] * len(runs)):
            iov = _iovecs(view, offset, end, dest, size, a, b)
            got = os.preadv(fd, iov, offset[a]) if raw is None else _scatter(raw, iov)
            if got != end[b - 1] - offset[a]:
                raise frag.truncated(offset[a], end[b - 1], offset[a] + got, group_l[a])
    starts: list[int] = []
    lengths: list[int] = []
    buffers: list[pa.Buffer] = []
    for k, g in enumerate(group_l):
        page, start, length = _page_value(frag, g, buf, view, dest[k], size[k])
        buffers.append(page)
        starts.append(start)
        lengths.append(length)
    return PageValues(buffers, starts, lengths)


def page_values_apart(frag: PageFragment, groups: np.ndarray) -> PageValues:
    """:func:`page_values` with each value in a fresh buffer of its own (a value kept holds only its own page),
    read with one ``os.preadv`` per run of neighbouring pages all the same (the same checks)."""
    group_l = groups.tolist()
    offset, size = frag.offset[groups].tolist(), frag.compressed[groups].tolist()
    end = _page_ends(frag, group_l, offset, size)
    dest = -USUAL_VALUE_AT % ALIGNMENT
    bufs = [pa.allocate_buffer(dest + n) for n in size]
    views = [memoryview(b).cast("B") for b in bufs]
    fd = frag.fileno() if frag.remote is None else -1
    with reading(frag.path, None, "reading chunk pages"):
        runs = _runs(offset, end) if group_l else []
        fetched = _fetched(frag, runs, offset, end)
        for (a, b), raw in zip(runs, fetched or [None] * len(runs)):
            gap = max([offset[k] - end[k - 1] for k in range(a + 1, b)], default=0)
            scratch = memoryview(bytearray(gap)) if gap else None
            iov: list[memoryview] = []
            for k in range(a, b):
                if k > a and offset[k] > end[k - 1]:
                    assert scratch is not None
                    iov.append(scratch[: offset[k] - end[k - 1]])
                iov.append(views[k][dest:])
            got = os.preadv(fd, iov, offset[a]) if raw is None else _scatter(raw, iov)
            if got != end[b - 1] - offset[a]:
                raise frag.truncated(offset[a], end[b - 1], offset[a] + got, group_l[a])
    out = PageValues([], [], [])
    for k, g in enumerate(group_l):  # the usual page's head is checked first (one_value_head: a cached set lookup)
        value = _page_value(frag, g, bufs[k], views[k], dest, size[k])
        out.buffers.append(value[0])
        out.start.append(value[1])
        out.length.append(value[2])
    return out


def page_value(frag: PageFragment, g: int) -> tuple[pa.Buffer, int, int]:
    """(buffer, start, length) of the ``pixel_bytes`` value of row group ``g`` of ``frag``: :func:`page_values`
    of one group, read with one ``pread`` (the same checks)."""
    offset, size = int(frag.offset[g]), int(frag.compressed[g])
    if offset < 0:
        raise DamagedFileError(f"{frag.path}: row group {g} has no page range in index.parquet; the index is damaged")
    dest = -USUAL_VALUE_AT % ALIGNMENT
    buf = pa.allocate_buffer(dest + size)
    view = memoryview(buf).cast("B")
    with reading(frag.path, None, "reading chunk pages"):
        if frag.remote is None:
            got = os.preadv(frag.fileno(), [view[dest:]], offset)
        else:
            got = _scatter(frag.remote.read_at(offset, size), [view[dest:]])
    if got != size:
        raise frag.truncated(offset, offset + size, offset + got, g)
    return _page_value(frag, g, buf, view, dest, size)


def _page_value(
    frag: PageFragment, g: int, buf: pa.Buffer, view: memoryview, at: int, n: int
) -> tuple[pa.Buffer, int, int]:
    """(buffer, start, length) of the one value of row group ``g``'s page, read into ``buf`` (``view``: its bytes)
    at ``at`` (``n`` bytes, compressed); checked to be one defined PLAIN value filling the page."""
    if frag.codec is None:
        if one_value_head(view, at, n):
            return buf, at + USUAL_VALUE_AT, n - USUAL_VALUE_AT
        page = buf
    else:
        page, at, n = frag.decompress(g, buf.slice(at, n)), 0, int(frag.uncompressed[g])
    start, length = value_in_page(frag, g, memoryview(page), at, n)
    return page, start, length


@functools.lru_cache(maxsize=64)
def usual_heads(n: int) -> frozenset[bytes]:
    """The first USUAL_VALUE_AT bytes the usual ``n``-byte page of one defined value can start with (``n`` from
    USUAL_VALUE_AT up to 2**32)."""
    return frozenset(h + (n - USUAL_VALUE_AT).to_bytes(4, "little") for h in ONE_VALUE_HEADS)


def one_value_head(view: memoryview, at: int, n: int) -> bool:
    """Whether the ``n``-byte uncompressed page at ``view[at:]`` starts as the usual page of one defined value
    filling it (its value then starts at ``at + USUAL_VALUE_AT``)."""
    return USUAL_VALUE_AT <= n < 1 << 32 and view[at : at + USUAL_VALUE_AT].tobytes() in usual_heads(n)


def value_in_page(frag: PageFragment, g: int, view: memoryview, at: int, n: int) -> tuple[int, int]:
    """(start in ``view``, length) of the one value of row group ``g``'s uncompressed ``n``-byte page at
    ``view[at:]``; DamagedFileError unless it is one defined PLAIN value filling the page."""
    start, length = _value_at(frag, g, view[at : at + n], n)
    return at + start, length


def _fetched(
    frag: PageFragment, runs: list[tuple[int, int]], offset: list[int], end: list[int]
) -> Iterator[bytes] | None:
    """The bytes of each of ``runs`` of a remote chunks file, one ranged GET each, the GETs side by side (None: a
    local file, read with ``os.preadv``)."""
    if frag.remote is None:
        return None
    from ..remote import fetch_spans

    return fetch_spans(frag.remote.read_at, [(offset[a], end[b - 1] - offset[a]) for a, b in runs])


def _scatter(data: bytes, iov: list[memoryview]) -> int:
    """What ``os.preadv`` does, from the bytes of a ranged GET: ``data`` scattered into ``iov``; the bytes placed."""
    raw = memoryview(data)
    at = 0
    for buf in iov:
        n = min(len(buf), len(raw) - at)
        buf[:n] = raw[at : at + n]
        at += n
    return at


def _iovecs(
    view: memoryview, offset: list[int], end: list[int], dest: list[int], size: list[int], a: int, b: int
) -> list[memoryview]:
    """The buffers one preadv of pages ``a..b-1`` (a run) scatters into: each page to ``view[dest[k]:]``, the gaps
    between pages to one scratch buffer."""
    if b - a == 1:
        return [view[dest[a] : dest[a] + size[a]]]
    gap = max(offset[k + 1] - end[k] for k in range(a, b - 1))
    scratch = memoryview(bytearray(gap))
    iov: list[memoryview] = []
    for k in range(a, b):
        if k > a and offset[k] > end[k - 1]:
            iov.append(scratch[: offset[k] - end[k - 1]])
        iov.append(view[dest[k] : dest[k] + size[k]])
    return iov


def _value_at(frag: PageFragment, g: int, page: memoryview, size: int) -> tuple[int, int]:
    """(start, length) in its page of the one value of row group ``g``'s page ``page`` of ``size`` bytes."""
    start = defined_value_at(page) if len(page) == size else -1
    if 0 <= start and start + 4 <= size:
        length = int.from_bytes(page[start : start + 4], "little")
        if start + 4 + length == size:
            return start + 4, length
    raise DamagedFileError(
        f"{frag.path}: the page of {frag.what(g)} is not one defined PLAIN value filling {size} bytes; "
        "the file or index.parquet is damaged"
    )
