"""Seeded random pixels of every supported dtype, spanning each integer dtype's whole range."""

from __future__ import annotations

import numpy as np


def random_pixels(shape: tuple[int, ...], dtype: str = "uint16", seed: int = 0) -> np.ndarray:
    """An array of ``shape`` and ``dtype``: normal floats, 0/1 bools, or integers from min to max inclusive."""
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
