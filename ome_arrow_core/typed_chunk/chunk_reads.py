"""The one read path of typed-chunk datasets: chunk rows read from their files a batch of row groups at a
time, checked (length, checksum) and copied into their outputs by their projections.

Both readers consume it: :class:`~.source.DatasetSource` (one image, one selection) and
:func:`~.rows.read_rows` (many image rows at once). What goes where is computed once per
selection by :meth:`ChunkTable.projections <ome_arrow_core.chunks.ChunkTable.projections>`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, Final

import numpy as np
import pyarrow as pa

from ..buffers import ALIGNMENT, scratch_buffer, view_buffer
from ..checksums import mismatch, verify_enabled
from ..chunks import ChunkProjection
from ..dtypes import in_stored_order
from ..errors import DamagedFileError
from ..frozen_types import FrozenTuple
from ..uniques import unique
from .grouped_reads import ranged_piece, ranged_pieces
from .opened import OpenedDataset
from .page_direct import audit_heads, place_direct
from .page_reads import PageFragment
from .page_stream import place_pages, streams
from .page_values import PageValues, page_value, page_values

__all__ = [
    "Placement",
    "ReadBatch",
    "read_placements",
    "READ_BATCH_BYTES",
    "chunk_blocks",
    "one_block",
    "audited_pages",
    "audited_piece",
    "piece_block",
    "staged_cuts",
]

#: Pixel bytes of row groups read at a time into a selection's output (a batch is at least one group).
READ_BATCH_BYTES = 16 << 20


class Placement(FrozenTuple):
    """One chunk to read: index row ``row`` of an opened dataset, copied into ``out`` (TZCYX) by ``projection``.

    ``dtype`` is the image's (its chunks are stored little-endian).
    """

    row: int
    projection: ChunkProjection
    out: np.ndarray
    dtype: np.dtype


class ReadBatch:
    """The ``pixel_bytes`` of some row groups of one chunk file, read in one call; hands out chunk blocks."""

    def __init__(self, opened: OpenedDataset, code: int, groups: Sequence[int]) -> None:
        self.opened = opened
        self._groups = np.asarray(groups, dtype=np.int64)
        col, first, self._starts = opened.read_groups(code, self._groups)
        self._first = np.array([first[g] for g in self._groups.tolist()], dtype=np.int64)
        self._chunks: list[pa.Array] = col.chunks

    def blocks(
        self,
        rows: Sequence[int],
        shapes: Sequence[tuple[int, ...]],
        dtypes: Sequence[np.dtype],
        checked: set[int] | None,
        verify: bool,
    ) -> list[np.ndarray]:
        """The chunks of index rows ``rows`` (``shapes``, TCZYX) as read-only views of the read buffers, every
        length checked first; with ``verify`` each one's checksum too (once per read: ``checked`` collects
        the index rows checked, None checks all)."""
        opened = self.opened
        cols = opened.columns
        at_rows = np.asarray(rows, dtype=np.int64)
        group_at = np.searchsorted(self._groups, cols["row_group_id"][at_rows].astype(np.int64))
        pos = self._first[group_at] + cols["row_index_in_group"][at_rows].astype(np.int64)
        piece = np.searchsorted(self._starts, pos, side="right") - 1
        start = np.zeros(len(at_rows), dtype=np.int64)
        stop = np.zeros(len(at_rows), dtype=np.int64)
        for k in unique(piece).tolist():
            arr = self._chunks[k]
            offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64, count=len(arr) + 1, offset=arr.offset * 8)
            mine = piece == k
            at = pos[mine] - int(self._starts[k])
            start[mine], stop[mine] = offsets[at], offsets[at + 1]
        need = np.array([math.prod(sh) * dt.itemsize for sh, dt in zip(shapes, dtypes)], dtype=np.int64)
        bad = np.nonzero(stop - start != need)[0]
        if len(bad):
            i = int(bad[0])
            raise DamagedFileError(
                f"chunk {int(cols['chunk_id'][at_rows[i]])} of {opened.path} holds "
                f"{int(stop[i] - start[i])} bytes; its shape {tuple(shapes[i])} needs "
                f"{int(need[i])}"
            )
        sums = opened.sums if verify else None
        out: list[np.ndarray] = []
        for row, shape, dtype, k, begin, size in zip(
            rows, shapes, dtypes, piece.tolist(), start.tolist(), need.tolist()
        ):
            out.append(
                checked_block(opened, row, self._chunks[k].buffers()[2], begin, size, dtype, shape, sums, checked)
            )
        return out


def read_placements(opened: OpenedDataset, placements: Sequence[Placement], verify: bool | None) -> int:
    """Read the chunks of ``placements`` and copy each into its output; returns the row groups read.

    The row groups they need are read per chunk file in batches of about :data:`READ_BATCH_BYTES`
    (at least one group), each batch placed into the outputs before the next is read: a batch of
    small images costs one read, a large selection about its own size plus one batch (or, on the
    streamed path of :func:`~.page_stream.place_pages`, plus one scratch buffer). Each chunk's
    checksum is checked once (None: unless ``OME_ARROW_CORE_VERIFY=0``).
    """
    n = len(placements)
    if not n:
        return 0
    assert opened.fragment_code is not None
    rows = [p.row for p in placements]
    codes = opened.fragment_code[rows].tolist()
    groups = opened.columns["row_group_id"][rows].tolist()
    if n <= _SORT_IN_PYTHON:  # numpy's per-call cost exceeds the work on a few chunks
        order = sorted(range(n), key=lambda i: (codes[i], groups[i]))
    else:
        order = np.lexsort((np.asarray(groups), np.asarray(codes))).tolist()
    checked: set[int] = set()  # each chunk once per read
    check = verify_enabled(verify)
    read = 0
    todo: list[Placement] = []
    in_groups: list[int] = []  # the group of each of todo
    total = 0
    code, group = -1, -1  # of the placement before
    for i in order:
        p = placements[i]
        size = math.prod(p.projection.chunk_shape) * p.dtype.itemsize
        if (codes[i], groups[i]) != (code, group):
            read += 1
            if todo and (codes[i] != code or total + size > READ_BATCH_BYTES):
                _read_batch(opened, code, todo, in_groups, check, checked)
                todo, in_groups, total = [], [], 0
            code, group = codes[i], groups[i]
        todo.append(p)
        in_groups.append(group)
        total += size
    _read_batch(opened, code, todo, in_groups, check, checked)
    return read


#: Selections of at most this many chunks are sorted by plain Python, larger ones by numpy.
_SORT_IN_PYTHON: Final[int] = 512


def _read_batch(
    opened: OpenedDataset, code: int, todo: list[Placement], groups: list[int], check: bool, checked: set[int]
) -> None:
    """Read placements ``todo`` (of chunk file ``code``, in row groups ``groups``, ascending) into their outputs."""
    batch = list(dict.fromkeys(groups))
    at = np.asarray(batch, dtype=np.int64)
    pieces = None
    # read by page ranges, piece by piece, once audited (a first read of large pages audits their heads alone)
    if not opened.read_check(code).unaudited(at) or audit_heads(opened, code, at):
        pieces = ranged_pieces(opened.fragment(code), np.asarray(groups, dtype=np.int64))
    dtypes = {p.dtype for p in todo}
    if pieces is not None and all(streams(f, [g - lo for g in groups[a:b]], dtypes) for f, lo, a, b in pieces):
        sums = opened.sums if check else None
        for frag, lo, a, b in pieces:
            local = [g - lo for g in groups[a:b]]
            rest = place_direct(opened, frag, todo[a:b], local, sums, checked)  # whole chunks: no staging copy
            if rest:
                place_pages(opened, frag, [todo[a + i] for i in rest], [local[i] for i in rest], sums, checked)
        return
    blocks = chunk_blocks(
        opened,
        code,
        batch,
        [p.row for p in todo],
        [p.projection.chunk_shape for p in todo],
        [p.dtype for p in todo],
        checked,
        check,
    )
    for p, block in zip(todo, blocks):
        p.projection.copy(block, p.out)
    del blocks


def chunk_blocks(
    opened: OpenedDataset,
    code: int,
    groups: Sequence[int],
    rows: Sequence[int],
    shapes: Sequence[tuple[int, ...]],
    dtypes: Sequence[np.dtype],
    checked: set[int] | None,
    verify: bool,
) -> Iterator[np.ndarray]:
    """The chunks of index rows ``rows`` (in row groups ``groups``, ascending, of chunk file ``code``) as
    read-only arrays (``shapes``, TCZYX), each length checked and, with ``verify``, each checksum (once per
    read: ``checked`` collects the rows checked, None checks all).

    A ranged chunks file whose rows were all audited already is read by positioned reads of its
    pages (:func:`~.page_values.page_values`); anything else through :class:`ReadBatch`. The bytes are
    read here; each chunk is checked as it is taken (so its bytes are still in cache when the caller copies it).
    Pages are read into this thread's scratch buffer about :data:`~..buffers.SCRATCH_BYTES` at a time when
    ``rows`` come in row group order: then each block lasts only until the next is taken (copy it first).
    """
    at_groups = np.asarray(groups, dtype=np.int64)
    piece = None if opened.read_check(code).unaudited(at_groups) else ranged_piece(opened.fragment(code), at_groups)
    if piece is None:
        return iter(ReadBatch(opened, code, groups).blocks(rows, shapes, dtypes, checked, verify))
    frag, local = piece[0], at_groups - piece[1]
    which = np.searchsorted(at_groups, opened.columns["row_group_id"][np.asarray(rows, dtype=np.int64)])
    sums = opened.sums if verify else None
    if len(which) > 1 and (np.diff(which) < 0).any():  # out of group order: one buffer for all
        values = page_values(frag, local)
        return _checked_values(opened, values, rows, shapes, dtypes, which.tolist(), sums, checked)
    return _staged(opened, frag, local, which, rows, shapes, dtypes, sums, checked)


def _staged(
    opened: OpenedDataset,
    frag: PageFragment,
    groups: np.ndarray,
    which: np.ndarray,
    rows: Sequence[int],
    shapes: Sequence[tuple[int, ...]],
    dtypes: Sequence[np.dtype],
    sums: Any,
    checked: set[int] | None,
) -> Iterator[np.ndarray]:
    """The chunks of ``rows`` (row ``i`` in group ``groups[which[i]]``, ``which`` ascending) read a scratch buffer
    at a time, each checked (:func:`_checked_values`) and valid until the next one is taken."""
    scratch = scratch_buffer()
    cuts = staged_cuts(frag.compressed[groups], scratch.size)
    at = np.searchsorted(which, cuts).tolist()  # rows of each stage
    for s in range(len(cuts) - 1):
        lo, a, b = int(cuts[s]), at[s], at[s + 1]
        if a == b:
            continue
        values = page_values(frag, groups[lo : cuts[s + 1]], into=scratch)
        local = (which[a:b] - lo).tolist()
        yield from _checked_values(opened, values, rows[a:b], shapes[a:b], dtypes[a:b], local, sums, checked)
        del values


def staged_cuts(sizes: np.ndarray, budget: int) -> np.ndarray:
    """Cut points ``[0, ..., len(sizes)]`` of runs of pages (``sizes`` bytes each, plus alignment) that fit in
    ``budget`` bytes together (a page larger than ``budget`` alone)."""
    need = np.cumsum(sizes.astype(np.int64) + ALIGNMENT)
    cuts = [0]
    base = 0
    while cuts[-1] < len(sizes):
        nxt = int(np.searchsorted(need, base + budget, side="right"))
        nxt = max(nxt, cuts[-1] + 1)
        cuts.append(nxt)
        base = int(need[nxt - 1])
    return np.asarray(cuts, dtype=np.int64)


def _checked_values(
    opened: OpenedDataset,
    values: PageValues,
    rows: Sequence[int],
    shapes: Sequence[tuple[int, ...]],
    dtypes: Sequence[np.dtype],
    which: Sequence[int],
    sums: Any,
    checked: set[int] | None,
) -> Iterator[np.ndarray]:
    """Value ``which[i]`` of ``values`` as chunk ``rows[i]``, its length and (``sums``) checksum checked first."""
    for row, shape, dtype, k in zip(rows, shapes, dtypes, which):
        need = math.prod(shape) * dtype.itemsize
        if values.length[k] != need:
            raise DamagedFileError(
                f"chunk {int(opened.columns['chunk_id'][row])} of {opened.path} holds "
                f"{values.length[k]} bytes; its shape {tuple(shape)} needs {need}"
            )
        yield checked_block(opened, row, values.buffers[k], values.start[k], need, dtype, shape, sums, checked)


def one_block(opened: OpenedDataset, row: int, shape: tuple[int, ...], dtype: np.dtype, verify: bool) -> np.ndarray:
    """Index row ``row``'s chunk (``shape``, TCZYX) as a read-only array: :func:`chunk_blocks` of one chunk, with
    one positioned read when its ranged chunks file was audited (the same checks)."""
    piece = audited_piece(opened, row)
    if piece is None:
        assert opened.fragment_code is not None
        code, group = int(opened.fragment_code[row]), int(opened.columns["row_group_id"][row])
        return next(chunk_blocks(opened, code, [group], [row], [shape], [dtype], None, verify))
    return _positioned_block(opened, piece[0], row, piece[1], shape, dtype, verify)


def audited_piece(opened: OpenedDataset, row: int) -> tuple[PageFragment, int] | None:
    """(the page-ranged file holding row ``row``'s chunk, that chunk's row group in it) when it was audited
    already; None when the chunk must be read through the footer (which audits it). A caller may keep it and
    read with :func:`piece_block`."""
    assert opened.fragment_code is not None
    code, group = int(opened.fragment_code[row]), int(opened.columns["row_group_id"][row])
    at = np.array([group], dtype=np.int64)
    if opened.read_check(code).unaudited(at):
        return None
    piece = ranged_piece(opened.fragment(code), at)
    return None if piece is None else (piece[0], group - piece[1])


def piece_block(
    opened: OpenedDataset,
    piece: tuple[PageFragment, int],
    row: int,
    shape: tuple[int, ...],
    dtype: np.dtype,
    verify: bool,
) -> np.ndarray:
    """:func:`one_block` of row ``row`` at ``piece`` (from :func:`audited_piece`): one positioned read, all checks."""
    return _positioned_block(opened, piece[0], row, piece[1], shape, dtype, verify)


def audited_pages(opened: OpenedDataset, row: int) -> bool:
    """Whether index row ``row``'s chunk lies in a page-ranged chunks file (or piece) and was audited already, so
    that :func:`one_block` reads it with one positioned read (else it reads it through the footer, which audits it)."""
    return audited_piece(opened, row) is not None


def _positioned_block(
    opened: OpenedDataset,
    frag: PageFragment,
    row: int,
    group: int,
    shape: tuple[int, ...],
    dtype: np.dtype,
    verify: bool,
) -> np.ndarray:
    """Row ``row``'s chunk (row group ``group`` of ``frag``) read with one ``pread`` into a buffer of its own."""
    data, begin, length = page_value(frag, group)
    need = math.prod(shape) * dtype.itemsize
    if length != need:
        raise DamagedFileError(
            f"chunk {int(opened.columns['chunk_id'][row])} of {opened.path} holds {length} bytes; its shape "
            f"{tuple(shape)} needs {need}"
        )
    return checked_block(opened, row, data, begin, need, dtype, shape, opened.sums if verify else None, None)


def checked_block(
    opened: OpenedDataset,
    row: int,
    data: Any,
    begin: int,
    size: int,
    dtype: np.dtype,
    shape: tuple[int, ...],
    sums: Any,
    checked: set[int] | None,
) -> np.ndarray:
    """Chunk ``row``'s pixels (``size`` bytes of buffer ``data`` from ``begin``) as a native-order array of
    ``shape``, its checksum checked first (once per row when ``checked`` remembers them; ``sums`` None: never)."""
    if sums is not None and (checked is None or row not in checked):
        pair = sums.compare(row, data, begin, size)
        if pair is not None and pair[0] != pair[1]:
            raise mismatch(*opened.where(row), *pair)
        if checked is not None:
            checked.add(row)
    if not in_stored_order(dtype):
        return view_buffer(data, dtype.newbyteorder("<"), shape, offset=begin).astype(dtype.newbyteorder("="))
    return view_buffer(data, dtype, shape, offset=begin)  # stored little-endian: this machine's order
