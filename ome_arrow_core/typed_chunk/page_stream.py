"""Chunks placed straight from their pages: read into a small per-thread buffer, checked, copied, buffer reused.

The hot path of a selection of many chunks of a local, uncompressed, ranged chunks file whose rows were
audited: per chunk one ``os.preadv`` of its page into this thread's scratch buffer
(:func:`~..buffers.scratch_buffer`, about a core's L2 cache), the page checked to be one defined PLAIN
value of the chunk's size, its checksum compared (once per read), and its selected pixels copied into the
output while they are still in cache. No buffer the size of the selection is allocated besides the output,
and no per-chunk Arrow object is made. The checks are those of :func:`~.page_values.page_values` and
:func:`~.chunk_reads.checked_block`, in the same order, with the same errors.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from ..boundary import reading
from ..buffers import ALIGNMENT, SCRATCH_BYTES, scratch_buffer
from ..checksums import mismatch
from ..dtypes import in_stored_order
from ..errors import DamagedFileError
from .page_reads import PageFragment
from .page_values import USUAL_VALUE_AT, one_value_head, value_in_page

if TYPE_CHECKING:
    from .chunk_reads import Placement
    from .opened import OpenedDataset

__all__ = ["streams", "place_pages"]

#: Where a page is read to in the scratch buffer: its usual value start lands 64-byte aligned.
_AT: Final[int] = -USUAL_VALUE_AT % ALIGNMENT


def streams(frag: PageFragment, groups: Sequence[int], dtypes: Iterable[np.dtype]) -> bool:
    """Whether the pages of row groups ``groups`` of ``frag`` can be placed by :func:`place_pages`: a local,
    uncompressed ranged chunks file, pixels (``dtypes``) stored in this machine's order, every page fitting the
    scratch buffer."""
    if frag.codec is not None or frag.remote is not None:
        return False
    if not all(in_stored_order(d) for d in dtypes):
        return False
    return (
        frag.largest_page + _AT <= SCRATCH_BYTES or max(int(frag.compressed[g]) for g in groups) + _AT <= SCRATCH_BYTES
    )


def place_pages(
    opened: OpenedDataset,
    frag: PageFragment,
    todo: Sequence[Placement],
    groups: Sequence[int],
    sums: Any,
    checked: set[int] | None,
) -> None:
    """Read the chunk of each of ``todo`` (placement ``i`` in row group ``groups[i]`` of ``frag``) and copy its
    selected pixels into its output, each page checked (one defined PLAIN value of the chunk's size) and, with
    ``sums``, its checksum compared (once per row when ``checked`` collects them); see :func:`streams`."""
    scratch = scratch_buffer()
    view = memoryview(scratch).cast("B")
    fd = frag.fileno()
    offsets, sizes = frag.offset, frag.compressed
    last = -1  # the row whose chunk the scratch buffer holds
    block: np.ndarray | None = None
    with reading(frag.path, None, "reading chunk pages"):
        for p, g in zip(todo, groups):
            row, dtype, shape = p.row, p.dtype, p.projection.chunk_shape
            if row != last:  # placements sharing a chunk (sorted by group) read it once
                o, n = int(offsets[g]), int(sizes[g])
                if o < 0:
                    raise DamagedFileError(
                        f"{frag.path}: row group {g} has no page range in index.parquet; the index is damaged"
                    )
                got = os.preadv(fd, [view[_AT : _AT + n]], o)
                if got != n:
                    raise frag.truncated(o, o + n, o + got, g)
                start, length = (
                    (_AT + USUAL_VALUE_AT, n - USUAL_VALUE_AT)
                    if one_value_head(view, _AT, n)
                    else value_in_page(frag, g, view, _AT, n)
                )
                need = math.prod(shape) * dtype.itemsize
                if length != need:
                    raise DamagedFileError(
                        f"chunk {int(opened.columns['chunk_id'][row])} of {opened.path} holds "
                        f"{length} bytes; its shape {tuple(shape)} needs {need}"
                    )
                if sums is not None and (checked is None or row not in checked):
                    pair = sums.compare(row, view, start, need)
                    if pair is not None and pair[0] != pair[1]:
                        raise mismatch(*opened.where(row), *pair)
                    if checked is not None:
                        checked.add(row)
                block = np.frombuffer(scratch, dtype=dtype, count=need // dtype.itemsize, offset=start).reshape(shape)
                last = row
            assert block is not None
            p.projection.copy(block, p.out)
