"""Many whole chunks read together, each into a buffer of its own (the tiles of a stream that are whole chunks).

:func:`~.chunk_reads.one_block` reads one whole chunk with one positioned read; a stream of tiles that are
whole chunks reads a group of them at a time. :func:`whole_blocks` fetches them with one ``os.preadv`` per run
of neighbouring pages (:func:`~.page_values.page_values_apart`), each page into its own buffer, so a tile kept
by its consumer holds only its own chunk and no later read writes into it. Every chunk is checked as
``one_block`` checks it: one defined PLAIN value filling its page, its length, its checksum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import DamagedFileError
from .chunk_reads import checked_block
from .grouped_reads import one_file_groups, ranged_pieces
from .opened import OpenedDataset
from .page_values import page_values_apart

__all__ = ["whole_blocks"]


def whole_blocks(
    opened: OpenedDataset,
    rows: Sequence[int],
    shapes: Sequence[tuple[int, ...]],
    dtype: np.dtype,
    verify: bool,
) -> list[np.ndarray] | None:
    """The chunks of index rows ``rows`` (distinct; chunk ``i`` of ``shapes[i]``, TCZYX) as read-only arrays,
    each in its own buffer, read together; None when they are not all in one page-ranged chunks file audited
    already (read them one by one then: a read through the footer audits them)."""
    if not rows:
        return []
    found = one_file_groups(opened, rows)
    if found is None:
        return None
    code, order, ascending = found
    if (ascending[1:] <= ascending[:-1]).any() or opened.read_check(code).unaudited(ascending):
        return None  # two chunks in one row group (not page-ranged), or not audited yet
    pieces = ranged_pieces(opened.fragment(code), ascending)
    if pieces is None:
        return None
    sums = opened.sums if verify else None
    out: list[np.ndarray] = [np.empty(0)] * len(rows)
    needs = {shape: math.prod(shape) * dtype.itemsize for shape in set(shapes)}
    for frag, lo, a, b in pieces:
        values = page_values_apart(frag, ascending[a:b] - lo)
        for k, i in enumerate(order[a:b].tolist()):
            row, shape = int(rows[i]), shapes[i]
            need = needs[shape]
            if values.length[k] != need:
                raise DamagedFileError(
                    f"chunk {int(opened.columns['chunk_id'][row])} of {opened.path} holds {values.length[k]} "
                    f"bytes; its shape {tuple(shape)} needs {need}"
                )
            out[i] = checked_block(opened, row, values.buffers[k], values.start[k], need, dtype, shape, sums, None)
    return out
