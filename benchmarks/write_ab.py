"""Writing one image: ours from one or more source trees (A/B of a writer change), tensorstore and zarr, in one run.

    python benchmarks/write_ab.py                                  # this tree, 1x2x4x1024x1024 uint16
    python benchmarks/write_ab.py --trees /work/main .             # old checkout against this one
    python benchmarks/write_ab.py --size 2048 --z 16 --pyarrow     # the full image (256 MiB); + pyarrow's writer

Each tree's writer runs in a child process of its own (its ``ome_arrow_core`` first on ``sys.path``), which
writes the same image (``OMEArrow(arr).export("parquet", path)``, over its own previous copy) each time the
parent asks and reports its own wall, CPU (process time: all its threads) and user CPU time (without the kernel's:
the copy into the page cache, whose cost varies most; see ``--gap``). After one untimed write of each case, the
writes are interleaved so that each case follows every other case equally often (``--repeats`` rounded up to a
multiple of cases - 1): a write into the page cache costs several times more on fresh pages than on pages just
freed, such as those of the copy the write before it replaced, so the case written before decides much of a
write's cost. A fixed order, ABBA (whose end cases write twice in a row), or rounds shuffled with a fixed seed
(session 18: with the peers, the first tree followed the second in 4 of its 8 writes, and came out 1.4-1.7x
cheaper whichever tree it was) favour some cases. The order is a random walk over every ordered pair of cases
(an Eulerian circuit of the complete directed graph, seeded), repeated. Medians; the ratio columns divide by the
first tree's. ``--gap S`` sleeps S seconds before each
timed write: pages freed that long before are cold again (see docs/benchmarks.md, "fresh pages"), as for a single
write after a pause.
``--pyarrow`` adds each tree with ``typed_chunk.fragments.DIRECT = False`` (pyarrow's writer for the chunks
file), ``--fsync`` each tree with ``OME_ARROW_CORE_FSYNC=1``. Peers (in the parent): zarr v3 arrays, raw, chunks 256 and 512 (their fastest configurations for writing
in compare_peers). tensorstore fsyncs each file it writes (its default; ``strace -f -c`` counts them), zarr
and ours do not.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers_libs as L

HERE = Path(__file__).resolve().parent

_CHILD = """
import os, sys, time
from pathlib import Path
sys.path.insert(0, {tree!r}); sys.path.insert(1, {bench!r})
import peers_libs as L
from ome_arrow_core import OMEArrow
from ome_arrow_core.typed_chunk import fragments
fragments.DIRECT = {direct!r}
arr = L.camera_image({shape!r})
out = Path({out!r})
for line in sys.stdin:
    u0, c0, t0 = os.times().user, time.process_time(), time.perf_counter()
    OMEArrow(arr).export("parquet", out)
    wall, cpu, user = time.perf_counter() - t0, time.process_time() - c0, os.times().user - u0
    print(wall * 1e3, cpu * 1e3, user * 1e3, flush=True)
"""


class Child:
    """A writer process of one tree: :meth:`write` asks it for one write and returns its (wall, cpu, user) in ms."""

    def __init__(self, tree: Path, direct: bool, shape: tuple[int, ...], out: Path, fsync: bool = False) -> None:
        code = _CHILD.format(tree=str(tree), bench=str(HERE), direct=direct, shape=shape, out=str(out))
        env = {**os.environ, "PYTHONPATH": str(tree), "OME_ARROW_CORE_FSYNC": "1" if fsync else "0"}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )

    def write(self) -> tuple[float, float, float]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the writer child died (exit {self.proc.wait()})")
        wall, cpu, user = line.split()
        return float(wall), float(cpu), float(user)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait()


def _timed(fn: Callable[[], None]) -> Callable[[], tuple[float, float, float]]:
    def run() -> tuple[float, float, float]:
        u0, c0, t0 = os.times().user, time.process_time(), time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3, (os.times().user - u0) * 1e3

    return run


def balanced_order(names: list[str], circuits: int, rng: random.Random) -> list[str]:
    """An order of writes in which each of ``names`` follows each other one ``circuits`` times and itself never:
    ``circuits`` Eulerian circuits of the complete directed graph on ``names`` (Hierholzer's, the next edge drawn
    at random), each starting where the last ended; one write more than ``circuits * n * (n - 1)``."""
    if len(names) < 2:
        return names * (circuits + 1)
    order: list[str] = [rng.choice(names)]
    for _ in range(circuits):
        left = {a: rng.sample([b for b in names if b != a], len(names) - 1) for a in names}
        stack, path = [order[-1]], []
        while stack:
            if left[stack[-1]]:
                stack.append(left[stack[-1]].pop())
            else:
                path.append(stack.pop())
        order += path[::-1][1:]  # path[-1] is where this circuit starts: the last write so far
    return order


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--z", type=int, default=4)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--trees", nargs="+", type=Path, default=[HERE.parent], help="source trees of ome_arrow_core")
    p.add_argument("--pyarrow", action="store_true", help="also each tree with pyarrow's chunks writer")
    p.add_argument("--fsync", action="store_true", help="also each tree with OME_ARROW_CORE_FSYNC=1")
    p.add_argument("--no-peers", action="store_true", help="only ours")
    p.add_argument(
        "--gap", type=float, default=0.0, help="seconds of sleep before each timed write (pages freed go cold)"
    )
    args = p.parse_args()
    shape = (1, 2, args.z, args.size, args.size)
    tmp = Path(tempfile.mkdtemp(prefix="write_ab_"))
    children: list[Child] = []
    cases: dict[str, Callable[[], tuple[float, float, float]]] = {}
    try:
        for k, tree in enumerate(args.trees):
            for direct in (True, False) if args.pyarrow else (True,):
                child = Child(tree.resolve(), direct, shape, tmp / f"ours{k}{direct:d}.ome.parquet")
                children.append(child)
                cases[f"{tree} ({'direct' if direct else 'pyarrow'})"] = child.write
            if args.fsync:
                child = Child(tree.resolve(), True, shape, tmp / f"ours{k}sync.ome.parquet", fsync=True)
                children.append(child)
                cases[f"{tree} (direct, fsync)"] = child.write
        if not args.no_peers:
            arr = L.camera_image(shape)
            for lib, write in (("tensorstore", L.ts_write), ("zarr", L.zarr_write)):
                if L.available(lib):
                    for c in (256, 512):
                        out = tmp / f"{lib}{c}.zarr"
                        cases[f"{lib} {c} raw"] = _timed(lambda w=write, c=c, out=out: w(arr, out, c, "raw"))
        times: dict[str, tuple[list[float], list[float], list[float]]] = {k: ([], [], []) for k in cases}
        for fn in cases.values():
            fn()
        # each case after every other case equally often, never twice in a row (see the module's docstring)
        order = balanced_order(list(cases), -(-args.repeats // max(1, len(cases) - 1)), random.Random(0))
        for at, name in enumerate(order):
            time.sleep(args.gap)
            got = cases[name]()
            if at:  # the first write's predecessor is the untimed round's last case: not counted
                for k, v in enumerate(got):
                    times[name][k].append(v)
    finally:
        for child in children:
            child.close()
        shutil.rmtree(tmp, ignore_errors=True)
    gap = f", {args.gap:g} s before each write" if args.gap else ""
    writes = len(next(iter(times.values()))[0])
    print(
        f"1x2x{args.z}x{args.size}x{args.size} uint16, {writes} interleaved writes of each case, each after every "
        f"other case alike{gap}, load {os.getloadavg()}"
    )
    first = next(iter(times.values()))
    w0, c0, u0 = (statistics.median(v) for v in first)
    for name, (wall, cpu, user) in times.items():
        mw, mc, mu = statistics.median(wall), statistics.median(cpu), statistics.median(user)
        print(
            f"  {name:40s} wall {mw:8.1f} ms ({mw / w0:5.2f}x)   cpu {mc:8.1f} ms ({mc / c0:5.2f}x)"
            f"   user {mu:8.1f} ms ({mu / u0:5.2f}x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
