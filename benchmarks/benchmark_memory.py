"""Peak RSS added by reading one 256x256 crop, and a 256 MiB selection, from a 2 GiB OME-Arrow Parquet dataset.

    python benchmarks/benchmark_memory.py [--gib 2] [--keep DIR]

The file is written first (1 x 16 x 4 x 4096 x 4096 uint16 by default, 2 GiB) in a subprocess; each read runs in
a fresh subprocess that reports its peak RSS (VmHWM: the peak of this process's own memory, which ru_maxrss is
not after exec on Linux) before and after ``scan(...).tensor_view(...)``. Targets: crop < 64 MiB; the 256 MiB
selection (two Z planes of every channel) < 1.5x its size.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

READER = r"""
import json, resource, sys
import numpy as np
from ome_arrow_core import OMEArrow
def rss():
    try:
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
before = rss()
img = OMEArrow.scan(sys.argv[1])
after_scan = rss()
if sys.argv[2] == "crop":
    crop = img.tensor_view(t=0, z=5, c=2, roi=(1000, 2000, 256, 256), layout="YX").to_numpy()
else:
    crop = img.tensor_view(t=0, z=slice(0, 2), layout="TZCYX").to_numpy()
after = rss()
print(json.dumps({"rss_before_mib": before, "rss_after_scan_mib": after_scan, "rss_after_read_mib": after,
                  "added_mib": after - before, "shape": list(crop.shape), "selection_mib": crop.nbytes / 2**20,
                  "sum": int(crop.sum()), "chunks_read": img._source.chunks_read}))
"""

WRITER = r"""
import sys
import numpy as np
from ome_arrow_core import OMEArrow
rng = np.random.default_rng(0)
arr = rng.integers(0, 4096, size=(1, 4, int(sys.argv[2]), 4096, 4096), dtype=np.uint16)  # TCZYX
OMEArrow(arr).export("parquet", sys.argv[1])
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gib", type=float, default=2.0)
    ap.add_argument("--keep", type=Path, help="write the file here and keep it")
    args = ap.parse_args()
    z = max(1, round(args.gib * 2**30 / (4 * 4096 * 4096 * 2)))
    with tempfile.TemporaryDirectory() as d:
        path = (args.keep or Path(d)) / "big.ome.parquet"
        if not path.exists():  # in a subprocess: the reads' peak RSS must not inherit the writer's
            subprocess.run([sys.executable, "-c", WRITER, str(path), str(z)], check=True)
        size = sum(f.stat().st_size for f in path.iterdir())
        reports = {}
        for what in ("crop", "selection"):
            out = subprocess.run(
                [sys.executable, "-c", READER, str(path), what], capture_output=True, text=True, check=True
            )
            reports[what] = json.loads(out.stdout)
        print(json.dumps({**reports, "file_gib": size / 2**30}, indent=2))
        crop, sel = reports["crop"], reports["selection"]
        print(
            f"file {size / 2**30:.2f} GiB; peak RSS added by scan + 256x256 crop: {crop['added_mib']:.1f} MiB "
            f"(target < 64 MiB) -> {'OK' if crop['added_mib'] < 64 else 'OVER'}"
        )
        ratio = sel["added_mib"] / sel["selection_mib"]
        print(
            f"scan + {sel['selection_mib']:.0f} MiB selection: {sel['added_mib']:.1f} MiB peak added, {ratio:.2f}x "
            f"its size (target < 1.5x) -> {'OK' if ratio < 1.5 else 'OVER'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
