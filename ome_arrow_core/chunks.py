"""Chunk geometry: splitting TZCYX images into chunks and mapping selections onto them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .arguments import whole_numbers
from .errors import SelectionError
from .selection import AxisIndex, Selection

__all__ = ["ChunkTable", "normalize_chunk_shape", "DEFAULT_TILE"]

#: Default Y/X chunk edge for large planes (measured: see docs/benchmarks.md).
DEFAULT_TILE = 512


def normalize_chunk_shape(
    chunk_shape: Sequence[int] | None, sizes: Mapping[str, int]
) -> tuple[int, int, int, int, int]:
    """A TCZYX chunk shape from (y, x), (z, y, x) or (t, c, z, y, x); clipped to the image.

    The default is one plane per chunk up to 512x512, tiles of 512x512 beyond.
    """
    if chunk_shape is None:
        shape: list[int] = [1, 1, 1, min(sizes["Y"], DEFAULT_TILE), min(sizes["X"], DEFAULT_TILE)]
    else:
        vals = whole_numbers(chunk_shape, "chunk_shape")
        if len(vals) not in (2, 3, 5) or any(v < 1 for v in vals):
            raise SelectionError(
                f"chunk_shape must be (y, x), (z, y, x) or (t, c, z, y, x) of positive ints, got {tuple(vals)}"
            )
        shape = [1] * (5 - len(vals)) + vals
    full = [sizes[a] for a in "TCZYX"]
    return tuple(min(s, n) for s, n in zip(shape, full))  # type: ignore[return-value]


def _overlap(sel: AxisIndex, start: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions in the selection, and offsets inside the chunk, of selected indices in the chunk."""
    idx = np.asarray(sel if not isinstance(sel, range) else np.arange(sel.start, sel.stop, sel.step))
    hit = np.nonzero((idx >= start) & (idx < start + size))[0]
    return hit, idx[hit] - start


@dataclass(frozen=True)
class ChunkTable:
    """Origins and shapes of an image's chunks, TCZYX, one row per chunk (int64 arrays)."""

    origin: np.ndarray  # (n, 5)
    shape: np.ndarray  # (n, 5)

    @classmethod
    def regular(cls, sizes: Mapping[str, int], chunk: tuple[int, int, int, int, int]) -> ChunkTable:
        """The regular grid of ``chunk`` over an image, ordered t, c, z, y, x."""
        full = [sizes[a] for a in "TCZYX"]
        axes = [np.arange(0, n, c) for n, c in zip(full, chunk)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 5)
        shape = np.minimum(np.asarray(chunk), np.asarray(full) - grid)
        return cls(grid.astype(np.int64), shape.astype(np.int64))

    def __len__(self) -> int:
        return int(self.origin.shape[0])

    def intersecting(self, sel: Selection) -> np.ndarray:
        """Row numbers of chunks that hold at least one selected pixel."""
        mask = np.ones(len(self), dtype=bool)
        for k, ax in enumerate("TCZYX"):
            s = sel.axis(ax)
            lo, hi = self.origin[:, k], self.origin[:, k] + self.shape[:, k]
            if isinstance(s, range) and s.step == 1:
                mask &= (lo < s.stop) & (hi > s.start)
            else:
                idx = np.asarray(list(s))
                mask &= ((idx[None, :] >= lo[:, None]) & (idx[None, :] < hi[:, None])).any(axis=1)
        return np.nonzero(mask)[0]

    def place(self, row: int, block: np.ndarray, sel: Selection, out: np.ndarray) -> None:
        """Copy the selected part of chunk ``row`` (a TCZYX block) into ``out`` (TZCYX)."""
        o, _ = self.origin[row], self.shape[row]
        parts = [_overlap(sel.axis(ax), int(o[k]), int(block.shape[k])) for k, ax in enumerate("TCZYX")]
        (tp, tc), (cp, cc), (zp, zc), (yp, yc), (xp, xc) = parts
        if min(len(p) for p, _ in parts) == 0:
            return
        src = block[tc[0] : tc[-1] + 1] if _is_run(tc) else block[tc]
        src = src[:, cc[0] : cc[-1] + 1] if _is_run(cc) else src[:, cc]
        src = src[:, :, zc[0] : zc[-1] + 1] if _is_run(zc) else src[:, :, zc]
        src = src[:, :, :, yc[0] : yc[-1] + 1, xc[0] : xc[-1] + 1]
        src = src.transpose(0, 2, 1, 3, 4)  # TCZYX -> TZCYX
        dst_index = tuple(
            slice(int(p[0]), int(p[-1]) + 1) if _is_run(p) else p for p in (tp, zp, cp, yp, xp)
        )
        if all(isinstance(i, slice) for i in dst_index):
            out[dst_index] = src
        else:
            out[np.ix_(*[np.arange(i.start, i.stop) if isinstance(i, slice) else i for i in dst_index])] = src


def _is_run(a: np.ndarray) -> bool:
    """True for consecutive ascending indices (so a slice can stand for them)."""
    return len(a) > 0 and bool(np.all(np.diff(a) == 1))
