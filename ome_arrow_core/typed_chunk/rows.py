"""Many image rows of one typed-chunk dataset read at once: one read per chunk file and batch of row groups."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..checksums import verify_enabled
from ..chunks import ChunkTable, box_projections
from ..errors import SchemaError
from ..registry import Registry
from ..remote import remote_chunk
from ..selection import Selection
from ..uniques import unique
from .chunk_reads import Placement, read_placements
from .locators import LOCATORS_KEY, Located, fetch_located, image_locator, read_located
from .opening import open_dataset
from .whole_batches import read_whole, whole_plan

if TYPE_CHECKING:
    from .opened import OpenedDataset

__all__ = ["read_rows"]


def read_rows(
    path: Path,
    positions: Sequence[int],
    sels: Sequence[Selection],
    outs: Sequence[np.ndarray],
    *,
    verify: bool | None = None,
    registry: Registry | None = None,
) -> None:
    """Read image rows ``positions`` of the dataset at ``path`` into ``outs`` (writable TZCYX arrays).

    ``sels[k]`` is the selection of image ``positions[k]`` (absolute storage indices) and
    ``outs[k]`` has its shape. The batch costs one Parquet read per chunk file and batch of
    row groups, and one copy per chunk from the read buffer into ``outs`` (a batch whose chunks each
    fill one stretch of their output is read straight into it, see :mod:`.whole_batches`). Each chunk's
    checksum is checked once unless ``verify=False`` (None: unless ``OME_ARROW_CORE_VERIFY=0``).
    """
    if not positions:
        return
    opened = open_dataset(path, registry)
    n_images = opened.image_count
    for pos, sel, out in zip(positions, sels, outs):
        if not 0 <= pos < n_images:
            raise SchemaError(f"row {pos} out of range; {path} holds images 0..{n_images - 1}")
        if out.shape != sel.shape:
            raise ValueError(f"out has shape {out.shape}; the selection of row {pos} needs {sel.shape}")
    rest = _read_located(opened, positions, sels, outs, verify_enabled(verify))
    if len(rest) < len(positions):  # the others through the index
        positions, sels, outs = [positions[k] for k in rest], [sels[k] for k in rest], [outs[k] for k in rest]
        if not positions:
            return
    picked = opened.chunk_rows_many(positions)
    rows = np.concatenate(picked)
    table = opened.chunk_table(rows)  # the batch's origins and shapes, gathered once: each image checks its slice
    ends = np.cumsum([len(r) for r in picked])
    ledger = opened.ledger
    fresh = [True] * len(positions) if ledger is None else (~ledger.checked(positions)).tolist()
    for pos, mine, stop, todo in zip(positions, picked, ends.tolist(), fresh):
        if todo:  # else checked by a process of the same files (see ledger)
            start = stop - len(mine)
            opened.verify(pos, mine, ChunkTable(table.origin[start:stop], table.shape[start:stop]))
    opened.bound_many([p for p, f in zip(positions, fresh) if f], [m for m, f in zip(picked, fresh) if f])
    stored = opened.images.values(positions, "dtype")
    named = {v: np.dtype(v) for v in set(stored)}
    dtypes = [named[v] for v in stored]
    owner = np.repeat(np.arange(len(picked)), [len(r) for r in picked])
    made: dict[int, tuple[np.ndarray, np.ndarray] | None] = {}  # a batch's images mostly share one selection
    boxes = [made[id(sel)] if id(sel) in made else made.setdefault(id(sel), _box(sel)) for sel in sels]
    plan = None
    if all(b is not None for b in boxes):  # whole chunks into contiguous stretches: no per-chunk objects
        starts = np.array([b[0] for b in boxes if b is not None])
        stops = np.array([b[1] for b in boxes if b is not None])
        plan = whole_plan(opened, rows, owner, table.origin, table.shape, starts, stops, outs, dtypes)
    placements: list[Placement] = []
    if plan is None:
        placements = _placements(table, rows, owner, sels, outs, dtypes, boxes)
        read = np.fromiter((p.row for p in placements), dtype=np.int64, count=len(placements))
    else:
        read = plan.rows
    files = list(_by_file(opened, read)) if ledger is not None and len(read) else []
    for code, mine, groups in files:  # row groups another process of the same files audited: not again here
        check = opened.read_check(code)
        if check.unaudited(groups) and ledger is not None and ledger.audited(mine):
            check.trust(groups)
    if plan is None or not read_whole(opened, plan, verify_enabled(verify)):
        if plan is not None:
            placements = _placements(table, rows, owner, sels, outs, dtypes, boxes)
        read_placements(opened, placements, verify)
    if ledger is not None:
        ledger.mark_checked(positions)
        for code, mine, groups in files:  # what this process audited, for the processes forked after it
            if not ledger.audited(mine) and not opened.read_check(code).unaudited(groups):
                ledger.mark_audited(mine)


def _placements(
    table: ChunkTable,
    rows: np.ndarray,
    owner: np.ndarray,
    sels: Sequence[Selection],
    outs: Sequence[np.ndarray],
    dtypes: Sequence[np.dtype],
    boxes: Sequence[tuple[np.ndarray, np.ndarray] | None],
) -> list[Placement]:
    """The placements of chunks ``rows`` (of images ``owner``; ``table``: their origins and shapes) into ``outs``."""
    placements: list[Placement] = []
    boxed = np.nonzero(np.array([b is not None for b in boxes])[owner])[0]
    if len(boxed):  # every image's chunks projected onto its box at once
        start = np.array([b[0] if b is not None else np.zeros(5, np.int64) for b in boxes])[owner[boxed]]
        stop = np.array([b[1] if b is not None else np.zeros(5, np.int64) for b in boxes])[owner[boxed]]
        placements += _boxed_placements(
            table.origin[boxed], table.shape[boxed], start, stop, boxed, rows, owner, outs, dtypes
        )
    for k, box in enumerate(boxes):
        if box is None:
            mine = np.nonzero(owner == k)[0]
            placements += [
                Placement(int(rows[mine[p.row]]), p, outs[k], dtypes[k])
                for p in ChunkTable(table.origin[mine], table.shape[mine]).projections(sels[k])
            ]
    return placements


def _read_located(
    opened: OpenedDataset, positions: Sequence[int], sels: Sequence[Selection], outs: Sequence[np.ndarray], verify: bool
) -> list[int]:
    """Read the images of ``positions`` that have pixel locators (see :mod:`.locators`) into their ``outs``, each
    with one positioned read, checked; the indices (into ``positions``) of the others."""
    if not (opened.manifest.get("ome_arrow_core") or {}).get(LOCATORS_KEY):
        return list(range(len(positions)))
    algorithm = (opened.manifest.get("ome_arrow_core") or {}).get("checksum")
    rest: list[int] = []
    fds: dict[str, int] = {}
    remote: dict[str, Any] = {}  # a remote dataset's chunks objects: name -> (object, [(k, pos, locator)])
    try:
        with opened.images.records_held():  # image records: their files opened once a batch, not once an image
            for k, pos in enumerate(positions):
                loc = image_locator(opened, pos)
                if loc is None:
                    rest.append(k)
                    continue
                fd = fds.get(loc.file)
                if fd is None and loc.file not in remote:
                    chunk = remote_chunk(opened.path / loc.file)
                    if chunk is not None:
                        remote[loc.file] = (chunk, [])
                    else:
                        fd = fds[loc.file] = os.open(opened.path / loc.file, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                if fd is None:  # fetched below, a ranged GET per run of neighbours
                    remote[loc.file][1].append((k, pos, loc))
                    continue
                _place(opened, pos, loc, verify, algorithm, sels[k], outs[k], fd=fd)
            for chunk, todo in remote.values():
                fetched = fetch_located(chunk.read_at, [loc for *_, loc in todo])
                for (k, pos, loc), data in zip(todo, fetched):
                    _place(opened, pos, loc, verify, algorithm, sels[k], outs[k], data=data)
    finally:
        for fd in fds.values():
            os.close(fd)
    return rest


def _place(
    opened: OpenedDataset,
    pos: int,
    loc: Located,
    verify: bool,
    algorithm: str | None,
    sel: Selection,
    out: np.ndarray,
    fd: int | None = None,
    data: bytes | None = None,
) -> None:
    """Image row ``pos``'s pixels at ``loc`` (read from ``fd``, or ``data`` fetched already), checked, into ``out``."""
    meta = opened.meta(pos)
    sizes = meta.sizes
    shape = [sizes["T"], sizes["C"], sizes["Z"], sizes["Y"], sizes["X"]]
    pixels = read_located(opened.path, loc, shape, meta.dtype, verify, algorithm, f"image {meta.id!r}", fd, data)
    out[...] = sel.apply(pixels.transpose(0, 2, 1, 3, 4))


def _by_file(opened: OpenedDataset, rows: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(chunk file code, its index rows of ``rows``, their row groups, ascending and distinct) per chunk file."""
    assert opened.fragment_code is not None
    codes = opened.fragment_code[rows]
    groups = opened.columns["row_group_id"]
    if bool((codes == codes[0]).all()):  # one chunk file (most datasets): no per-file masks
        yield int(codes[0]), rows, unique(groups[rows].astype(np.int64))
        return
    for code in unique(codes).tolist():
        mine = rows[codes == code]
        yield int(code), mine, unique(groups[mine].astype(np.int64))


def _boxed_placements(
    origin: np.ndarray,
    shape: np.ndarray,
    start: np.ndarray,
    stop: np.ndarray,
    boxed: np.ndarray,
    rows: np.ndarray,
    owner: np.ndarray,
    outs: Sequence[np.ndarray],
    dtypes: Sequence[np.dtype],
) -> list[Placement]:
    """The placements of chunks ``boxed`` (positions in ``rows``; ``origin``, ``shape``, box ``start``/``stop``: one
    TCZYX row each) onto their images' boxes, in that order; chunks outside their box are left out.

    A batch of like images holds few distinct (origin, shape, box) rows (one per chunk of an image): each is
    projected once and its projection shared by the chunks that have it (a projection names no index row of its
    own here: its ``row`` is that of the first such chunk among ``boxed``)."""
    keys = np.concatenate([origin, shape, start, stop], axis=1)
    first: dict[bytes, int] = {}
    kinds = [first.setdefault(key, n) for n, key in enumerate(_row_bytes(keys))]
    lead = sorted(set(kinds))
    projected = {lead[p.row]: p for p in box_projections(origin[lead], shape[lead], start[lead], stop[lead])}
    whose = owner[boxed].tolist()
    index_rows = rows[boxed].tolist()
    return [
        Placement(index_rows[n], projected[kind], outs[whose[n]], dtypes[whose[n]])
        for n, kind in enumerate(kinds)
        if kind in projected
    ]


def _row_bytes(keys: np.ndarray) -> list[bytes]:
    """Each row of the 2-D int64 array ``keys`` as bytes (a dictionary key)."""
    flat = np.ascontiguousarray(keys, dtype=np.int64)
    width = flat.shape[1] * 8
    raw = flat.tobytes()
    return [raw[i : i + width] for i in range(0, len(raw), width)]


def _box(sel: Selection) -> tuple[np.ndarray, np.ndarray] | None:
    """(start, stop) per TCZYX axis when every axis of ``sel`` is a step-1 range, else None."""
    axes = [sel.axis(ax) for ax in "TCZYX"]
    ranges = [a for a in axes if isinstance(a, range) and a.step == 1]
    if len(ranges) != len(axes):
        return None
    return np.array([a.start for a in ranges], dtype=np.int64), np.array([a.stop for a in ranges], dtype=np.int64)
