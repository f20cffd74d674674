"""compare_peers' single-image read cases, per call, in this tree and another checkout, in alternating fresh
processes: open + one 256x256 aligned crop, one 256x256 aligned crop, one 300x300 unaligned crop (at S/2-24), a
Zx256x256 Z column and one full plane, each through a handle opened once (open + crop: a new handle each call).

    python benchmarks/crop_calls_ab.py --baseline /work/wt/base24 [--rounds 6] [--repeats 200] [--size 2048 --z 16]

One 1x2xZxSxS uint16 image (camera-like noise, this tree's defaults) is written once; per round one process per
tree, in alternating order. A process reads the whole image once (every chunk audited), then per case checks call 1
against numpy and times calls 2-8 (what compare_peers times with its default 7 repeats) and then ``--repeats``
calls (steady). Prints per case the medians over rounds (ms CPU, wall), new / old, and the load average.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import tree_child_json  # noqa: E402

CHILD = r"""
import json, sys
from pathlib import Path
import numpy as np
from ome_arrow_core import OMEArrow
import ome_arrow_core
assert Path(ome_arrow_core.__file__).is_relative_to(Path.cwd()), ome_arrow_core.__file__
path, repeats = Path(sys.argv[1]), int(sys.argv[2])
sys.path.insert(0, sys.argv[3])  # this tree's benchmarks/ (its timing loop, whichever tree runs the child)
from _common import measure
arr = np.load(str(path) + ".npy", mmap_mode="r")
s, zm = arr.shape[-1], arr.shape[2] // 2
o = s // 2 - 24
img = OMEArrow.scan(path)
img.to_numpy()
cases = {
    "open + 256x256 aligned crop": (
        lambda: OMEArrow.scan(path).tensor_view(t=0, c=1, z=zm, roi=(512, 512, 256, 256), layout="YX").to_numpy(),
        arr[0, 1, zm, 512:768, 512:768]),
    "256x256 aligned crop": (
        lambda: img.tensor_view(t=0, c=1, z=zm, roi=(512, 512, 256, 256), layout="YX").to_numpy(),
        arr[0, 1, zm, 512:768, 512:768]),
    "300x300 unaligned crop": (
        lambda: img.tensor_view(t=0, c=1, z=zm, roi=(o, o, 300, 300), layout="YX").to_numpy(),
        arr[0, 1, zm, o:o + 300, o:o + 300]),
    "Z column": (
        lambda: img.tensor_view(t=0, c=1, roi=(512, 512, 256, 256), layout="ZYX").to_numpy(),
        arr[0, 1, :, 512:768, 512:768]),
    "full plane": (lambda: img.tensor_view(t=0, c=1, z=zm, layout="YX").to_numpy(), arr[0, 1, zm]),
}
out = {}
for name, (fn, want) in cases.items():
    assert np.array_equal(fn(), want), name
    for label, n in (("calls 2-8", 7), ("steady", repeats)):
        st = measure(fn, n, 0)
        out[f"{name}, {label}"] = [st["cpu_ms"], st["median_ms"]]
print(json.dumps(out))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--baseline", type=Path, required=True, help="another checkout of this repository")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--z", type=int, default=16)
    args = p.parse_args()
    import numpy as np
    import peers_libs as L

    from ome_arrow_core import OMEArrow

    trees = {"new": ROOT, "old": args.baseline.resolve()}
    with tempfile.TemporaryDirectory(prefix="crop_calls_ab-") as d:
        path = Path(d) / "ours.ome.parquet"
        arr = L.camera_image((1, 2, args.z, args.size, args.size))
        OMEArrow(arr).export("parquet", path)
        np.save(str(path) + ".npy", arr)
        del arr
        got: dict[str, list[dict[str, Any]]] = {v: [] for v in trees}
        loads = []
        for r in range(args.rounds):
            for v in list(trees) if r % 2 else list(trees)[::-1]:
                argv = [sys.executable, "-c", CHILD, str(path), str(args.repeats), str(ROOT / "benchmarks")]
                got[v].append(tree_child_json(trees[v], argv, v))
            loads.append(os.getloadavg()[0])
    print(
        f"1x2x{args.z}x{args.size}x{args.size} uint16; baseline {args.baseline}; {args.rounds} rounds; "
        f"load {min(loads):.1f}-{max(loads):.1f}; medians over rounds, ms CPU (wall)"
    )
    for case in got["new"][0]:
        new, old = (np.median(np.array([g[case] for g in got[v]]), axis=0) for v in trees)
        print(
            f"  {case}: new {new[0]:.3f} ({new[1]:.3f}) old {old[0]:.3f} ({old[1]:.3f}); "
            f"new/old CPU {new[0] / old[0]:.2f} wall {new[1] / old[1]:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
