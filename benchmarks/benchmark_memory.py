"""Peak RSS added by reading one 256x256 crop from a 2 GiB OME-Arrow Parquet dataset.

    python benchmarks/benchmark_memory.py [--gib 2] [--keep DIR]

The file is written first (1 x 16 x 4 x 4096 x 4096 uint16 by default, 2 GiB, one T at a time); the read runs in
a fresh subprocess that reports its peak RSS before and after ``scan(...).tensor_view(roi=...)``. Target: < 64 MiB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

READER = r"""
import json, resource, sys
import numpy as np
from ome_arrow_core import OMEArrow
def rss(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
before = rss()
img = OMEArrow.scan(sys.argv[1])
after_scan = rss()
crop = img.tensor_view(t=0, z=5, c=2, roi=(1000, 2000, 256, 256), layout="YX").to_numpy()
after = rss()
print(json.dumps({"rss_before_mib": before, "rss_after_scan_mib": after_scan, "rss_after_crop_mib": after,
                  "added_mib": after - before, "crop_shape": list(crop.shape), "crop_sum": int(crop.sum()),
                  "chunks_read": img._source.chunks_read}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gib", type=float, default=2.0)
    ap.add_argument("--keep", type=Path, help="write the file here and keep it")
    args = ap.parse_args()
    z = max(1, int(round(args.gib * 2**30 / (4 * 4096 * 4096 * 2))))
    with tempfile.TemporaryDirectory() as d:
        path = (args.keep or Path(d)) / "big.ome.parquet"
        if not path.exists():
            from ome_arrow_core import OMEArrow

            rng = np.random.default_rng(0)
            arr = rng.integers(0, 4096, size=(1, 4, z, 4096, 4096), dtype=np.uint16)  # TCZYX
            OMEArrow(arr).export("parquet", path)
            del arr
        size = sum(f.stat().st_size for f in path.iterdir())
        out = subprocess.run([sys.executable, "-c", READER, str(path)], capture_output=True, text=True, check=True)
        report = json.loads(out.stdout)
        report["file_gib"] = size / 2**30
        print(json.dumps(report, indent=2))
        print(f"file {size / 2**30:.2f} GiB; peak RSS added by scan + 256x256 crop: {report['added_mib']:.1f} MiB "
              f"(target < 64 MiB) -> {'OK' if report['added_mib'] < 64 else 'OVER'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
