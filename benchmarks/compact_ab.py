"""compact_dataset of a plate in three parts: the CPU time of each source tree's compaction, interleaved, in one run.

    python benchmarks/compact_ab.py --trees /work/wt/base17 . --images 40000 --rounds 3

Each round writes the plate (8x8 uint16 images, a ``well`` column of 384 wells, the images split 75/15/10 % into
the base write and two appends) with each tree's code and times its ``compact_dataset`` (process CPU time, in a
child process whose ``ome_arrow_core`` is that tree's), trees alternating. Prints each measurement, then the
medians; whether the compacted manifest lists image records.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = """
import json, sys, time
from pathlib import Path
import numpy as np
from ome_arrow_core import compact_dataset, write_dataset
root, n = Path(sys.argv[1]), int(sys.argv[2])
sizes = [n * 3 // 4, n * 3 // 20, n - n * 3 // 4 - n * 3 // 20]
img = np.zeros((1, 8, 8), np.uint16)
start = 0
for k, m in enumerate(sizes):
    write_dataset((img for _ in range(m)), root, mode="append" if k else "create", dim_order="CYX", progress=False,
                  metadata={"well": [f"W{(start + i) % 384:03d}" for i in range(m)]},
                  image_ids=[f"img-{start + i:07d}" for i in range(m)])
    start += m
t = time.process_time()
compact_dataset(root)
cpu = time.process_time() - t
ours = json.loads((root / "_ome_arrow_dataset.json").read_text())["ome_arrow_core"]
print(cpu * 1e3, "image_records" in ours)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trees", nargs="+", default=["."], help="source trees (their ome_arrow_core is used)")
    ap.add_argument("--images", type=int, default=40000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    trees = [str(Path(t).resolve()) for t in args.trees]
    cpu: dict[str, list[float]] = {t: [] for t in trees}
    records: dict[str, bool] = {}
    with tempfile.TemporaryDirectory(prefix="compact-ab-") as tmp:
        for r in range(args.rounds):
            for tree in trees:
                root = Path(tmp) / "plate"
                shutil.rmtree(root, ignore_errors=True)
                env = {**os.environ, "PYTHONPATH": tree}
                out = subprocess.run(
                    [sys.executable, "-c", _CHILD, str(root), str(args.images)],
                    env=env,
                    cwd=tmp,  # not a tree: python -c puts the working directory first on the path
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.split()
                cpu[tree].append(float(out[0]))
                records[tree] = out[1] == "True"
                print(f"round {r}: {tree}: {float(out[0]):.0f} ms CPU (records: {records[tree]})", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f}")
    first = statistics.median(cpu[trees[0]])
    for tree in trees:
        med = statistics.median(cpu[tree])
        print(f"{tree}: median {med:.0f} ms CPU, x{med / first:.2f} the first tree, records {records[tree]}")


if __name__ == "__main__":
    main()
