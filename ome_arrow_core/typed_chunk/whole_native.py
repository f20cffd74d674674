"""One whole chunk read again by the optional C kernel (``ome_arrow_kernels``, :mod:`.box_native`).

A box that is one whole audited chunk is read again by its :class:`~.whole_chunks.WholeChunk` plan. Where the
kernel is installed (and not turned off), that read is one ``read_chunks`` call of one item, the GIL released:
its page read with one ``preadv`` (the head into a stack buffer, the value straight into a fresh 64-byte aligned
Arrow buffer that the result views), the head compared with the usual ones of its size, XXH3-64 of the value with
the index's. The checks and errors are those of :func:`~.chunk_reads.piece_block`, which reads the chunk instead
where the kernel is absent, the file is remote or compressed, the dtype is not stored in this machine's order, or
the page's head is not a usual one (its value found, or refused, as always). A 256x256 uint16 chunk: 19.8 against
25.7 us for the Python steps (docs/benchmarks.md, session 26).
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
    from .opened import OpenedDataset
    from .page_reads import PageFragment
    from .whole_chunks import WholeChunk

__all__ = ["WholeItem", "read_whole", "whole_item"]

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
