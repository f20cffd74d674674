"""Epoch orders and crop positions, drawn as the PyTorch loaders draw them (no Ray, no torch)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ome_arrow_core import OMEArrowDataset, SelectionError

__all__ = ["epoch_order", "image_sizes", "crop_boxes", "check_crop"]


def epoch_order(n: int, *, shuffle: bool, seed: int, epoch: int) -> np.ndarray:
    """The images' order in one epoch: a permutation drawn from ``(seed, epoch)``, or 0..n-1."""
    return np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)


def image_sizes(ds: OMEArrowDataset) -> np.ndarray:
    """(Y, X) of every image: from the table's size columns when it has them, else from each image."""
    if {"size_y", "size_x"} <= set(ds.column_names):
        y = ds.table.column("size_y").to_numpy(zero_copy_only=False).astype(float)
        x = ds.table.column("size_x").to_numpy(zero_copy_only=False).astype(float)
        if not (np.isnan(y).any() or np.isnan(x).any()):
            return np.stack([y, x], axis=1).astype(np.int64)
    return np.array([[img.sizes["Y"], img.sizes["X"]] for img in ds], dtype=np.int64)


def check_crop(crop: Sequence[int], sizes: np.ndarray) -> tuple[int, int]:
    """``crop`` as (h, w), refused when it is not two positive ints or larger than an image."""
    vals = tuple(crop)
    if len(vals) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in vals):
        raise SelectionError(f"crop must be (h, w) of two positive ints, got {vals!r}")
    h, w = int(vals[0]), int(vals[1])
    small = np.nonzero((sizes[:, 0] < h) | (sizes[:, 1] < w))[0]
    if len(small):
        k = int(small[0])
        raise SelectionError(
            f"crop ({h}, {w}) (h, w) is larger than image {k} "
            f"({int(sizes[k, 0])}x{int(sizes[k, 1])}); use a smaller crop"
        )
    return h, w


def crop_boxes(
    images: Sequence[int], sizes: np.ndarray, crop: tuple[int, int], *, random: bool, seed: int, epoch: int
) -> list[tuple[int, int, int, int]]:
    """roi ``(x, y, w, h)`` of the crop of each image: centred, or drawn from ``(seed, epoch, image)``."""
    h, w = crop
    boxes = []
    for k, (ny, nx) in zip(images, sizes):
        if random:
            rng = np.random.default_rng([seed, epoch, int(k)])
            y0, x0 = int(rng.integers(0, int(ny) - h + 1)), int(rng.integers(0, int(nx) - w + 1))
        else:
            y0, x0 = (int(ny) - h) // 2, (int(nx) - w) // 2
        boxes.append((x0, y0, w, h))
    return boxes
