"""Time of a 10-image append to a dataset of N images: it should not grow with N.

    python benchmarks/benchmark_append.py [--images 10000 100000] [--repeats 4] [--keep DIR]

Each dataset holds N images of 2x16x16 uint16 (4 chunks each) with well/site columns. It is copied once per
repeat, the copies are synced to disk, then each gets a 10-image append; the median time and the Arrow
memory pool's peak during the appends are printed (the first append of a process also pays for imports).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from ome_arrow_core import OMEArrowDataset, write_dataset


def bench(root: Path, n: int, repeats: int) -> str:
    base = root / f"base-{n}"
    if not base.exists():
        rng = np.random.default_rng(0)
        images = (rng.integers(0, 4096, (2, 16, 16), dtype=np.uint16) for _ in range(n))
        write_dataset(
            images,
            base,
            dim_order="CYX",
            chunk_shape=(8, 16),
            progress=False,
            metadata=({"well": f"W{i % 96}", "site": i % 9} for i in range(n)),
        )
    copies = []
    for k in range(repeats):
        copy = root / f"copy-{n}-{k}"
        shutil.rmtree(copy, ignore_errors=True)
        copies.append(shutil.copytree(base, copy))
    os.sync()
    more = [np.ones((2, 16, 16), np.uint16) for _ in range(10)]
    meta = {"well": ["X"] * 10, "site": [0] * 10}
    times = []
    for copy in copies:
        t0 = time.perf_counter()
        write_dataset(more, copy, dim_order="CYX", chunk_shape=(8, 16), mode="append", metadata=meta, progress=False)
        times.append(time.perf_counter() - t0)
    peak = pa.default_memory_pool().max_memory()
    assert len(OMEArrowDataset.scan(copies[0])) == n + 10
    for copy in copies:
        shutil.rmtree(copy)
    runs = ", ".join(f"{t * 1e3:.1f}" for t in times)
    return (
        f"N={n}: 10-image append median {sorted(times)[len(times) // 2] * 1e3:.1f} ms (runs: {runs} ms), "
        f"Arrow pool peak so far {peak / 2**20:.1f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--keep", type=Path, help="directory for the datasets (kept: later runs reuse them)")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-append."))
    root.mkdir(parents=True, exist_ok=True)
    try:
        for n in args.images:
            print(bench(root, n, args.repeats), flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
