"""Many image rows of one typed-chunk dataset read at once: one Parquet read per chunk file and batch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..checksums import verify_enabled
from ..chunks import ChunkTable
from ..errors import DamagedFileError, SchemaError
from ..selection import Selection
from .opened import open_dataset

__all__ = ["read_rows", "row_group_batches", "READ_BATCH_BYTES"]

#: Pixel bytes of row groups read at a time into a selection's output (a batch is at least one group).
READ_BATCH_BYTES = 16 << 20



def row_group_batches(groups: list[int], sizes: dict[int, int]) -> list[list[int]]:
    """``groups`` (ascending) cut into runs of about :data:`READ_BATCH_BYTES` pixel bytes (at least one group each)."""
    out: list[list[int]] = [[]]
    total = 0
    for g in groups:
        if out[-1] and total + sizes.get(g, 0) > READ_BATCH_BYTES:
            out.append([])
            total = 0
        out[-1].append(g)
        total += sizes.get(g, 0)
    return out


def _contiguous(sel: Selection) -> tuple[np.ndarray, np.ndarray] | None:
    """(start, stop) per TCZYX axis when every axis of ``sel`` is a step-1 range, else None."""
    axes = [sel.t, sel.c, sel.z, sel.y, sel.x]
    if not all(isinstance(a, range) and a.step == 1 for a in axes):
        return None
    return (np.array([a.start for a in axes], dtype=np.int64),  # type: ignore[union-attr]
            np.array([a.stop for a in axes], dtype=np.int64))  # type: ignore[union-attr]


def read_rows(path: Path, positions: Sequence[int], sels: Sequence[Selection], outs: Sequence[np.ndarray], *,
              verify: bool | None = None) -> None:
    """Read image rows ``positions`` of the dataset at ``path`` into ``outs`` (writable TZCYX arrays).

    ``sels[k]`` is the selection of image ``positions[k]`` (absolute storage indices) and
    ``outs[k]`` has its shape. The batch costs one Parquet read per chunk file and one copy
    per chunk from the read buffer into ``outs``; no per-image objects are built. Each chunk's
    checksum is checked once unless ``verify=False`` (None: unless ``OME_ARROW_CORE_VERIFY=0``).
    """
    if not positions:
        return
    opened = open_dataset(path)
    n_images = opened.table.num_rows
    col = opened.columns
    assert opened.fragment_code is not None
    dtypes = {p: opened.row(p)["dtype"] for p in positions if 0 <= p < n_images}
    boxes = [_contiguous(s) for s in sels]
    picked: list[np.ndarray] = []
    for pos, sel, out in zip(positions, sels, outs):
        if not 0 <= pos < n_images:
            raise SchemaError(f"row {pos} out of range; {path} holds images 0..{n_images - 1}")
        if out.shape != sel.shape:
            raise ValueError(f"out has shape {out.shape}; the selection of row {pos} needs {sel.shape}")
        picked.append(opened.chunk_rows(pos))
        opened.verify(pos, picked[-1])
        opened.bound(pos, picked[-1])
    rows = np.concatenate(picked)
    owner = np.repeat(np.arange(len(picked)), [len(r) for r in picked])
    origin = np.stack([col[a][rows] for a in "tczyx"], axis=1).astype(np.int64)
    shape = np.stack([col[f"shape_{a}"][rows] for a in "tczyx"], axis=1).astype(np.int64)
    keep = np.zeros(len(rows), dtype=bool)
    boxed = np.array([b is not None for b in boxes])[owner]
    if boxed.any():
        lo_all = np.array([b[0] if b is not None else np.zeros(5, np.int64) for b in boxes], dtype=np.int64)[owner]
        hi_all = np.array([b[1] if b is not None else np.zeros(5, np.int64) for b in boxes], dtype=np.int64)[owner]
        keep |= boxed & np.all((origin < hi_all) & (origin + shape > lo_all), axis=1)
    for k, box in enumerate(boxes):
        if box is None:
            mine = np.nonzero(owner == k)[0]
            keep[mine[ChunkTable(origin[mine], shape[mine]).intersecting(sels[k])]] = True
    picked = [rows[keep & (owner == k)] for k in range(len(picked))]
    every = np.concatenate(picked)
    owner = np.repeat(np.arange(len(picked)), [len(r) for r in picked])
    origin = np.stack([col[a][every] for a in "tczyx"], axis=1).astype(np.int64)
    shape = np.stack([col[f"shape_{a}"][every] for a in "tczyx"], axis=1).astype(np.int64)
    codes = opened.fragment_code[every]
    rg = col["row_group_id"][every].astype(np.int64)
    rig = col["row_index_in_group"][every].astype(np.int64)
    item = np.array([np.dtype(dtypes[p]).itemsize for p in positions], dtype=np.int64)[owner]
    lo_box = np.array([b[0] if b is not None else np.zeros(5, np.int64) for b in boxes], dtype=np.int64)[owner]
    hi_box = np.array([b[1] if b is not None else np.zeros(5, np.int64) for b in boxes], dtype=np.int64)[owner]
    lo = np.maximum(origin, lo_box)
    hi = np.minimum(origin + shape, hi_box)
    src_lo, src_hi, dst_lo, dst_hi = (lo - origin).tolist(), (hi - origin).tolist(), (lo - lo_box).tolist(), (hi - lo_box).tolist()
    dts = [np.dtype(dtypes[p]).newbyteorder("<") for p in positions]
    o_list, s_list = owner.tolist(), shape.tolist()
    nbytes = np.prod(shape, axis=1) * item
    # one read per chunk file and batch of row groups; each batch is placed into outs before the next is read
    for code in np.unique(codes).tolist():
        in_file = np.nonzero(codes == code)[0]
        groups = np.unique(rg[in_file])
        sizes = dict(zip(groups.tolist(), np.bincount(np.searchsorted(groups, rg[in_file]), weights=nbytes[in_file],
                                                      minlength=len(groups)).astype(np.int64).tolist()))
        for batch in row_group_batches(groups.tolist(), sizes):
            mine = in_file[np.isin(rg[in_file], batch)]
            data: dict[int, pa.Buffer] = {}
            start = np.zeros(len(every), dtype=np.int64)
            stop = np.zeros(len(every), dtype=np.int64)
            arrow_col, base, starts = opened.read_groups(int(code), np.array(batch, dtype=np.int64))
            first = np.array([base[g] for g in batch], dtype=np.int64)
            at = first[np.searchsorted(np.array(batch), rg[mine])] + rig[mine]
            ci = np.searchsorted(starts, at, side="right") - 1
            for c in np.unique(ci).tolist():
                chunk = arrow_col.chunk(c)
                offs = np.frombuffer(chunk.buffers()[1], dtype=np.int64, count=len(chunk) + 1, offset=chunk.offset * 8)
                sub = mine[ci == c]
                i = at[ci == c] - starts[c]
                start[sub], stop[sub] = offs[i], offs[i + 1]
                buf = chunk.buffers()[2]
                for j in sub.tolist():
                    data[j] = buf
            bad = mine[stop[mine] - start[mine] != nbytes[mine]]
            if len(bad):
                j = int(bad[0])
                raise DamagedFileError(f"chunk {int(col['chunk_id'][every[j]])} of {path} holds {int(stop[j] - start[j])} "
                                       f"bytes; its shape {tuple(shape[j].tolist())} needs {int(nbytes[j])}")
            if verify_enabled(verify):  # each chunk once (a chunk row lies in one batch)
                sums = opened.sums
                for j in mine[np.unique(every[mine], return_index=True)[1]].tolist():
                    row = int(every[j])
                    sums.check(row, data[j], int(start[j]), int(stop[j] - start[j]), lambda: opened.where(row))
            start_l = start.tolist()
            for j in mine.tolist():
                k = o_list[j]
                dt, out, box = dts[k], outs[k], boxes[k]
                s = s_list[j]
                block = np.frombuffer(data[j], dtype=dt, count=s[0] * s[1] * s[2] * s[3] * s[4],
                                      offset=start_l[j]).reshape(s)
                if box is None:
                    ChunkTable(origin[j : j + 1], shape[j : j + 1]).place(0, block, sels[k], out)
                    continue
                a, b, c, d = src_lo[j], src_hi[j], dst_lo[j], dst_hi[j]
                src = block[a[0] : b[0], a[1] : b[1], a[2] : b[2], a[3] : b[3], a[4] : b[4]]
                out[c[0] : d[0], c[2] : d[2], c[1] : d[1], c[3] : d[3], c[4] : d[4]] = src.transpose(0, 2, 1, 3, 4)
            del arrow_col, data
