"""What a write of N MiB into the page cache costs here: into a new file that then replaces the old one (as our
atomic writes do) or over the same file (as zarr-python and tifffile do; tensorstore replaces one chunk file at a
time), back to back or after a pause.

    python benchmarks/page_cache_ab.py                       # 256 MiB, 6 rounds, no pause, then 3 s pauses

No library: ``os.write`` of one numpy buffer in 16 MiB pieces. A file replaced keeps its pages until its new copy is
in place (moved aside, the new one renamed in, then removed: no rename onto a file, on which ext4 starts writing
the new file back), so the new copy takes pages that were free; a file truncated and rewritten takes back the pages it
just freed. Wall and CPU (process time: the kernel's copy) medians of the rounds, each mode in its own process,
the modes interleaved (ABBA).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

_CHILD = """
import os, sys, time
import numpy as np
mode, mib, gap, path = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
buf = memoryview(np.random.default_rng(0).integers(0, 255, mib << 20, dtype=np.uint8)).cast("B")
def write(p):
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    for i in range(0, len(buf), 16 << 20):
        os.write(fd, buf[i : i + (16 << 20)])
    os.close(fd)
write(path)
for line in sys.stdin:
    time.sleep(gap)
    c0, t0 = time.process_time(), time.perf_counter()
    if mode == "replace":  # as our datasets: no rename onto a file (ext4 would start the new file's writeback)
        write(path + ".new")
        os.rename(path, path + ".old")
        os.rename(path + ".new", path)
        os.unlink(path + ".old")
    else:
        write(path)
    print((time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3, flush=True)
"""


def run(mib: int, rounds: int, gap: float, tmp: str) -> dict[str, tuple[list[float], list[float]]]:
    modes = ("replace", "overwrite")
    procs = {
        m: subprocess.Popen(
            [sys.executable, "-c", _CHILD, m, str(mib), str(gap), os.path.join(tmp, m)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for m in modes
    }
    times: dict[str, tuple[list[float], list[float]]] = {m: ([], []) for m in modes}
    try:
        for r in range(rounds):
            for m in modes if r % 2 == 0 else modes[::-1]:
                p = procs[m]
                assert p.stdin is not None and p.stdout is not None
                p.stdin.write("go\n")
                p.stdin.flush()
                wall, cpu = p.stdout.readline().split()
                times[m][0].append(float(wall))
                times[m][1].append(float(cpu))
    finally:
        for p in procs.values():
            if p.stdin is not None:
                p.stdin.close()
            p.wait()
    return times


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mib", type=int, default=256)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--gaps", type=float, nargs="+", default=[0.0, 3.0], help="seconds of pause before each write")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="page_cache_ab_") as tmp:
        for gap in args.gaps:
            times = run(args.mib, args.rounds, gap, tmp)
            print(f"{args.mib} MiB, {args.rounds} rounds, {gap:g} s before each write, load {os.getloadavg()[0]:.1f}")
            for m, (wall, cpu) in times.items():
                each = " ".join(f"{w:.0f}" for w in wall)
                print(
                    f"  {m:9s} wall {statistics.median(wall):7.1f} ms  cpu {statistics.median(cpu):7.1f} ms  ({each})"
                )
            time.sleep(0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
