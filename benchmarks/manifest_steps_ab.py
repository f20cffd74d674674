"""CPU time of the manifest step of a write and of its parts, for one or more source trees (A/B of a change to it).

    python benchmarks/manifest_steps_ab.py --trees ../base .          # 1x2x4x1024x1024 uint16, 7 rounds

Each round runs, for each tree in turn (the order alternating from round to round), a fresh child process with that
tree's ``ome_arrow_core`` first on the path, which writes the image ``--writes`` times
(``OMEArrow(arr).export("parquet", path)`` over its previous copy) with CPU timers (``time.process_time``) around
``write_steps.write_manifest`` and the steps it calls by name (the tables' digests, the row-group segments, the
value index, the image records); the child reports each step's median over its writes after the first five. The
table prints, per tree and step, the median over rounds and the ratio to the first tree's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import tree_child_json

_STEPS = ("record", "record_groups", "record_values", "record_images")

_CHILD = """
import json, statistics, sys, tempfile, time
from pathlib import Path
import numpy as np
from ome_arrow_core import OMEArrow
from ome_arrow_core.typed_chunk import write_steps as ws
shape, writes = {shape!r}, {writes!r}
arr = (np.arange(int(np.prod(shape)), dtype=np.uint64) * 2654435761 % 4099).astype(np.uint16).reshape(shape)
times = {{}}
def timed(name, key):
    real = getattr(ws, name)
    def run(*a, **k):
        c0 = time.process_time()
        try:
            return real(*a, **k)
        finally:
            times.setdefault(key, []).append((time.process_time() - c0) * 1e3)
    setattr(ws, name, run)
for name in {steps!r}:
    timed(name, name)
timed("write_manifest", "manifest step")
out = Path(tempfile.mkdtemp(prefix="manifest_steps_")) / "img.ome.parquet"
for _ in range(writes):
    c0 = time.process_time()
    OMEArrow(arr).export("parquet", out)
    times.setdefault("whole write", []).append((time.process_time() - c0) * 1e3)
print(json.dumps({{k: statistics.median(v[5:]) for k, v in times.items()}}))
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--z", type=int, default=4)
    p.add_argument("--writes", type=int, default=30, help="writes per child (the first five untimed)")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--trees", nargs="+", type=Path, default=[Path(__file__).resolve().parent.parent])
    args = p.parse_args()
    if args.writes < 6:
        p.error("--writes must be at least 6")
    code = _CHILD.format(shape=(1, 2, args.z, args.size, args.size), writes=args.writes, steps=_STEPS)
    trees = [t.resolve() for t in args.trees]
    got: dict[Path, list[dict[str, float]]] = {t: [] for t in trees}
    for r in range(args.rounds):
        for tree in trees if r % 2 == 0 else trees[::-1]:
            got[tree].append(tree_child_json(tree, [sys.executable, "-c", code], "manifest step child"))
    keys = ["whole write", "manifest step", *_STEPS]
    first = {k: statistics.median(d[k] for d in got[trees[0]]) for k in keys}
    print(f"1x2x{args.z}x{args.size}x{args.size} uint16, {args.rounds} rounds x {args.writes} writes, CPU ms medians")
    for tree in trees:
        cells = []
        for k in keys:
            v = statistics.median(d[k] for d in got[tree])
            cells.append(f"{k} {v:.3f} ({v / first[k]:.2f}x)")
        print(f"  {tree}: " + ", ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
