"""Writing one image: ours with the direct chunks writer against ours with pyarrow's writer, tensorstore and zarr.

    python benchmarks/write_ab.py                     # 1x2x4x1024x1024 uint16 (compare_peers --quick's image)
    python benchmarks/write_ab.py --size 2048 --z 16  # the full image (256 MiB)

All in one process, interleaved (each round writes every case once, after one untimed round), each over its own
previous copy; medians of wall and CPU time (process time: all threads). ``typed_chunk.fragments.DIRECT``
switches our chunks writer; the rest of our write is the same code in both rows. Peers: zarr v3 arrays, raw,
chunks 256 and 512 (their fastest configurations for writing in compare_peers). Nothing is fsynced by anyone.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers_libs as L

from ome_arrow_core import OMEArrow
from ome_arrow_core.typed_chunk import fragments


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--z", type=int, default=4)
    p.add_argument("--repeats", type=int, default=9)
    args = p.parse_args()
    arr = L.camera_image((1, 2, args.z, args.size, args.size))
    tmp = Path(tempfile.mkdtemp(prefix="write_ab_"))

    def ours(direct: bool) -> Callable[[], None]:
        def write() -> None:
            fragments.DIRECT = direct
            OMEArrow(arr).export("parquet", tmp / "ours.ome.parquet")

        return write

    cases: dict[str, Callable[[], None]] = {"ours (direct writer)": ours(True), "ours (pyarrow writer)": ours(False)}
    for lib, write in (("tensorstore", L.ts_write), ("zarr", L.zarr_write)):
        if L.available(lib):
            for c in (256, 512):
                cases[f"{lib} {c} raw"] = lambda w=write, c=c, lib=lib: w(arr, tmp / f"{lib}{c}.zarr", c, "raw")
    times: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in cases}
    try:
        for fn in cases.values():
            fn()
        for _ in range(args.repeats):
            for name, fn in cases.items():
                c0, t0 = time.process_time(), time.perf_counter()
                fn()
                times[name][0].append((time.perf_counter() - t0) * 1e3)
                times[name][1].append((time.process_time() - c0) * 1e3)
    finally:
        fragments.DIRECT = True
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"1x2x{args.z}x{args.size}x{args.size} uint16, {args.repeats} interleaved rounds, load {os.getloadavg()}")
    for name, (wall, cpu) in times.items():
        print(f"  {name:24s} wall {statistics.median(wall):8.1f} ms   cpu {statistics.median(cpu):8.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
