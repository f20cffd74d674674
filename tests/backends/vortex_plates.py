"""The Vortex-chunked plate of the Vortex dataset tests (test_vortex_dataset.py, test_vortex_blocked.py), and its
pixels' helpers (``same_bits``: test_vortex.py's too)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ome_arrow_core import write_dataset

#: Images of the plate.
N = 12


def random_pixels(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    """Random bit patterns of ``dtype`` (NaN payloads, -0.0 and inf included for floats)."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    if dt == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    arr = np.frombuffer(rng.bytes(int(np.prod(shape)) * dt.itemsize), dtype=dt).reshape(shape).copy()
    if dt.kind == "f":
        flat = arr.reshape(-1)
        flat[:4] = [np.nan, -0.0, np.inf, -np.inf]
    return arr


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` and ``b`` hold the same bits (NaN payloads and -0.0 compared as stored)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind == "f":
        return np.array_equal(a.view(f"u{a.dtype.itemsize}"), b.view(f"u{b.dtype.itemsize}"))
    return np.array_equal(a, b)


def write_vortex_plate(root: Path) -> tuple[Path, np.ndarray]:
    """A 12-image plate (CYX uint16, 16x16 tiles) with well/site/label columns, chunks in Vortex, at ``root``; its path
    and pixels."""
    arrs = random_pixels((N, 2, 40, 48), "uint16")
    meta = {"well": [f"W{i // 3}" for i in range(N)], "site": [i % 3 for i in range(N)], "label": list(range(N))}
    out = write_dataset(
        list(arrs),
        root,
        dim_order="CYX",
        metadata=meta,
        chunk_format="vortex",
        chunk_shape=(16, 16),
        images_per_group=4,
        progress=False,
    )
    return Path(out), arrs
