"""What the table checksums cost: open a 10,000-image plate and read its first image, with and without checks.

    python benchmarks/benchmark_table_checksums.py [--images 10000] [--repeats 7]

Each measurement runs in a fresh process (the per-process open cache is empty, the files are in
the page cache), alternating ``verify=False`` and the default checks; it prints the minimum and
median wall time of ``OMEArrowDataset.scan(path, verify=...)[0].to_numpy()``, and the time the
table checks alone take (hashing images.parquet and index.parquet, XXH3-64).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

_CHILD = r"""
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
from ome_arrow_core import OMEArrowDataset
from ome_arrow_core.typed_chunk.spec import read_manifest
from ome_arrow_core.typed_chunk.table_sums import check_tables
t1 = time.perf_counter()
root, verify = Path(sys.argv[1]), sys.argv[2] == "1"
OMEArrowDataset.scan(root, verify=verify)[0].to_numpy()
t2 = time.perf_counter()
from ome_arrow_core.typed_chunk import table_sums
table_sums._passed.clear()
t3 = time.perf_counter()
check_tables(root, read_manifest(root), ["images.parquet", "index.parquet"], True)
t4 = time.perf_counter()
print(json.dumps({"open_first": t2 - t1, "tables": t4 - t3}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    from ome_arrow_core import write_dataset

    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        arrs = (rng.integers(0, 65535, (2, 32, 32), dtype=np.uint16) for _ in range(args.images))
        wells = [{"well": f"{chr(65 + k // 24 % 16)}{k % 24 + 1:02d}", "field": k % 9} for k in range(args.images)]
        root = write_dataset(arrs, Path(tmp) / "plate", dim_order="CYX", metadata=wells, progress=False)
        sizes = {n: (root / n).stat().st_size for n in ("images.parquet", "index.parquet")}
        runs: dict[str, list[float]] = {"0": [], "1": []}
        tables: list[float] = []
        for _ in range(args.repeats):
            for verify in ("0", "1"):
                out = subprocess.run(
                    [sys.executable, "-c", _CHILD, str(root), verify], capture_output=True, text=True, check=True
                )
                got = json.loads(out.stdout)
                runs[verify].append(got["open_first"])
                tables.append(got["tables"])
    print(
        f"{args.images} images; images.parquet {sizes['images.parquet'] / 1e6:.2f} MB, "
        f"index.parquet {sizes['index.parquet'] / 1e6:.2f} MB"
    )
    for verify, name in (("0", "verify=False"), ("1", "default checks")):
        ms = [1e3 * t for t in runs[verify]]
        print(f"open + first image, {name}: min {min(ms):.1f} ms, median {statistics.median(ms):.1f} ms")
    ms = [1e3 * t for t in tables]
    print(f"table checks alone (hash both tables): min {min(ms):.2f} ms, median {statistics.median(ms):.2f} ms")


if __name__ == "__main__":
    main()
