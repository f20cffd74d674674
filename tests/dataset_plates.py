"""The small plate of the dataset tests (test_dataset.py, test_dataset_writes.py): its pixels and its writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from ome_arrow_core import ImageMeta, write_dataset
from ome_arrow_core.record import pixels_to_record

REF = Path(__file__).parent / "data" / "reference"
"""The reference package's sample files."""


def plate_pixels(
    n: int, shape: tuple[int, ...] = (2, 24, 32), dtype: str = "uint16", seed: int = 0
) -> list[np.ndarray]:
    """``n`` seeded random images of ``shape`` and ``dtype`` (one generator draws them in turn)."""
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return [rng.integers(0, 2, shape).astype(bool) for _ in range(n)]
    if np.dtype(dtype).kind == "f":
        return [rng.standard_normal(shape).astype(dtype) for _ in range(n)]
    info = np.iinfo(dtype)
    return [rng.integers(info.min, info.max, shape, endpoint=True, dtype=dtype) for _ in range(n)]


def write_plate(tmp: Path, n: int = 12, **kw: object) -> tuple[Path, list[np.ndarray]]:
    """A plate of ``n`` CYX images at ``tmp / "plate"`` with well, site and label columns (``kw``: write_dataset's);
    its path and pixels."""
    arrs = plate_pixels(n)
    meta = [{"well": f"{'AB'[i // 6]}{i % 3:02d}", "site": i % 2, "label": i} for i in range(n)]
    out = write_dataset((a for a in arrs), tmp / "plate", dim_order="CYX", metadata=iter(meta), progress=False, **kw)
    return out, arrs


def records_table(values: list[int]) -> pa.Table:
    """A table of OME-Arrow records (ome-arrow 0.1.0's layout, one image a row), image k all ``values[k]``, its
    ``label`` column the same value."""
    sizes = {"T": 1, "Z": 1, "C": 1, "Y": 8, "X": 8}
    recs = [
        pixels_to_record(ImageMeta(sizes=sizes, dtype=np.dtype(np.uint16), id=f"r{k}"), np.full((1, 1, 1, 8, 8), v))
        for k, v in enumerate(values)
    ]
    return pa.table({"label": values, "ome_arrow": pa.concat_arrays(recs)})
