"""Whole chunks read by the optional C kernel (``ome_arrow_kernels``, :mod:`.box_native`): one again, or a stream's.

A box that is one whole audited chunk is read again by its :class:`~.whole_chunks.WholeChunk` plan. Where the
kernel is installed (and not turned off), that read is one ``read_chunks`` call of one item, the GIL released:
its page read with one ``preadv`` (the head into a stack buffer, the value straight into a fresh 64-byte aligned
Arrow buffer that the result views), the head compared with the usual ones of its size, XXH3-64 of the value with
the index's. The checks and errors are those of :func:`~.chunk_reads.piece_block`, which reads the chunk instead
where the kernel is absent, the file is remote or compressed, the dtype is not stored in this machine's order, or
the page's head is not a usual one (its value found, or refused, as always). A 256x256 uint16 chunk: 19.8 against
25.7 us for the Python steps (docs/benchmarks.md, session 26). The tiles of a stream that are whole chunks are read
by :func:`read_apart` the same way, each into a buffer of its own (or, for a stack, its slice of the stack's),
one ``read_each`` call for a group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import numpy as np
import pyarrow as pa

from ..boundary import reading
from ..buffers import view_buffer
from ..checksums import mismatch
from ..dtypes import in_stored_order
from ..frozen_types import FrozenTuple
from .box_native import installed, item_fields, kernels
from .page_values import USUAL_VALUE_AT, usual_heads

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .opened import OpenedDataset
    from .page_reads import PageFragment
    from .whole_chunks import WholeChunk

__all__ = ["WholeItem", "read_apart", "read_whole", "whole_item"]

_ONE: Final = np.ones(1, np.uint8)
_NONE: Final = np.zeros(1, np.uint8)
_NO_DIGEST: Final = np.zeros(1, np.uint64)


class WholeItem(FrozenTuple):
    """The kernel's view of one whole chunk's page: its item (one run of ``nbytes``, read straight into the
    output), the usual heads of its size and how many there are."""

    fields: np.ndarray
    heads: np.ndarray
    variants: int
    nbytes: int


def whole_item(frag: PageFragment, g: int, nbytes: int, dtype: np.dtype) -> WholeItem | None:
    """The item of row group ``g`` of ``frag`` (a value of ``nbytes`` of ``dtype``), or None where the kernel is
    not installed or cannot read it (a remote or compressed file, a dtype not in this machine's order, a page
    whose size does not fit the value)."""
    if installed() is None or frag.remote is not None or frag.codec is not None or not in_stored_order(dtype):
        return None
    offset, size = int(frag.offset[g]), int(frag.compressed[g])
    if offset < 0 or size - USUAL_VALUE_AT != nbytes or nbytes <= 0:
        return None
    heads = sorted(usual_heads(size))
    fields = np.array([item_fields(offset, nbytes, 0, nbytes, (1, 1, 1, 1), (0, 0, 0, 0), 0)], np.int64)
    return WholeItem(fields, np.frombuffer(b"".join(heads), np.uint8), len(heads), nbytes)


def read_whole(opened: OpenedDataset, plan: WholeChunk, dtype: np.dtype, verify: bool) -> np.ndarray | None:
    """The TCZYX chunk of ``plan`` read by the kernel (a read-only view of its own buffer), every check made;
    None where the Python steps must read it (no item, the kernel turned off, an unusual page head)."""
    item = plan.native
    kern = kernels() if item is not None else None
    if kern is None or item is None:
        return None
    frag, g = plan.piece
    sums, row = opened.sums, plan.row
    if verify and sums.values is not None and sums.present is not None and sums.present[row]:
        want, check = sums.values[row : row + 1], _ONE
    else:
        want, check = _NO_DIGEST, _NONE
    buf = pa.allocate_buffer(item.nbytes)
    with reading(frag.path, None, "reading chunk pages"):
        _, status, value = kern.read_chunks(
            frag.fileno(), item.fields, USUAL_VALUE_AT, item.variants, item.heads, want, check, buf, buf
        )
    if status == kern.OK:
        return view_buffer(buf, dtype, plan.shape)
    if status == kern.SHORT:  # as page_value says it: where the page's read ended
        offset, size = int(item.fields[0, 0]), item.nbytes + USUAL_VALUE_AT
        raise frag.truncated(offset, offset + size, offset + value, g)
    if status == kern.MISMATCH:
        raise mismatch(*opened.where(row), int(want[0]), value)
    return None  # a head that is not a usual one: the Python steps find its value, or refuse it


def read_apart(
    opened: OpenedDataset,
    frag: PageFragment,
    groups: np.ndarray,
    rows: Sequence[int],
    nbytes: Sequence[int],
    verify: bool,
    into: Sequence[np.ndarray] | None = None,
) -> Sequence[pa.Buffer | np.ndarray] | None:
    """The values of row groups ``groups`` of ``frag`` (index rows ``rows``, values of ``nbytes``), each read by the
    kernel's ``read_each`` straight into a fresh Arrow buffer of its own (or ``into[i]``, writable and C-contiguous
    of ``nbytes[i]``: a stack's slices), one call, the GIL released: each page read
    and its head and XXH3-64 checked while its bytes are in cache (a 256x256 uint16 tile of a stream: 14-17 against
    21-25 us for the Python steps' one ``preadv`` then hashes). None where the Python steps must read them (no
    kernel, or turned off; a remote or compressed file; a page whose size does not fit its value; an unusual head)."""
    kern = kernels()
    if kern is None or not hasattr(kern, "read_each") or frag.remote is not None or frag.codec is not None:
        return None  # (an ome-arrow-kernels older than read_each: the Python steps)
    offset, size = frag.offset[groups], frag.compressed[groups]
    if not len(groups):
        return []
    need = np.asarray(nbytes, np.int64)
    if (offset < 0).any() or (need <= 0).any() or (size - USUAL_VALUE_AT != need).any():
        return None
    sizes = np.unique(size)
    usual = [sorted(usual_heads(int(n))) for n in sizes.tolist()]
    if len({len(kind) for kind in usual}) != 1:
        return None
    fields = np.zeros((len(groups), kern.FIELDS), np.int64)  # item_fields(offset, n, 0, n, (1,) * 4, (0,) * 4, kind)
    fields[:, 0], fields[:, 1], fields[:, 3], fields[:, 4:8] = offset, need, need, 1
    fields[:, 12] = np.searchsorted(sizes, size)
    sums = opened.sums
    if verify and sums.values is not None and sums.present is not None:
        at = np.asarray(rows, np.int64)
        want, check = sums.values[at], sums.present[at].astype(np.uint8)
    else:
        want, check = np.zeros(len(groups), np.uint64), np.zeros(len(groups), np.uint8)
    heads = np.frombuffer(b"".join(h for kind in usual for h in kind), np.uint8)
    bufs: Sequence[pa.Buffer | np.ndarray] = [pa.allocate_buffer(n) for n in need.tolist()] if into is None else into
    with reading(frag.path, None, "reading chunk pages"):
        done, status, value = kern.read_each(
            frag.fileno(), fields, USUAL_VALUE_AT, len(usual[0]), heads, want, check, bufs
        )
    if status == kern.OK:
        return bufs
    if status == kern.SHORT:  # as page_values_apart says it: where the page's read ended
        start = int(offset[done])
        raise frag.truncated(start, start + int(size[done]), start + value, int(groups[done]))
    if status == kern.MISMATCH:
        raise mismatch(*opened.where(int(rows[done])), int(want[done]), value)
    return None  # a head that is not a usual one: the Python steps find its value, or refuse it
