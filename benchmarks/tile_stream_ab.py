"""Tile streams, this tree against an older commit, in alternating fresh processes on one file.

    python benchmarks/tile_stream_ab.py [--ref main] [--rounds 8] [--repeats 15] [--size 1024] [--z 4]
    python benchmarks/tile_stream_ab.py --prefetch 0,1,2        # each prefetch depth of this tree and the ref's

The case of compare_peers.py: 256x256 tiles over every plane of a 1x2xZxSxS uint16 image of camera-like noise
written with our defaults (``iter_dlpack(tile_size=(256, 256), prefetch=2)`` per plane, each tile taken with
``numpy.from_dlpack``), every chunk read once (audited) first. The older tree is ``git archive REF`` unpacked in a
temporary directory; each round runs one process per tree and prefetch depth, in alternating order, and each process
times ``--repeats`` streams (the first, untimed, checks every tile against numpy's slice). Prints the median over
rounds of each process's median wall and process CPU time (all threads), ms, and new/old CPU. CPU time is the figure
to trust on a shared machine: a stream of tens of ms is preempted there (wall far above CPU).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import tree_child_json  # noqa: E402

CHILD = r"""
import collections, json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import numpy as np
import peers_libs as L
from ome_arrow_core import OMEArrow
path, repeats, prefetch, size, nz = Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
arr = L.camera_image((1, 2, nz, size, size))
import ome_arrow_core
assert Path(ome_arrow_core.__file__).is_relative_to(Path.cwd()), ome_arrow_core.__file__
img = OMEArrow.scan(path)
img.to_numpy()
planes = [(0, c, z) for c in range(2) for z in range(nz)]
def stream():
    for t, c, z in planes:
        for cap in img.tensor_view(t=t, c=c, z=z, layout="YX").iter_dlpack(tile_size=(256, 256), prefetch=prefetch):
            yield np.from_dlpack(cap)
want = (arr[0, c, z, y : y + 256, x : x + 256] for _, c, z in planes for y in range(0, size, 256) for x in range(0, size, 256))
for got, expected in zip(stream(), want, strict=True):
    np.testing.assert_array_equal(got, expected)
times = []
for _ in range(repeats):
    w, u = time.perf_counter(), time.process_time()
    collections.deque(stream(), maxlen=0)
    times.append(((time.perf_counter() - w) * 1e3, (time.process_time() - u) * 1e3))
wall, cpu = np.median(np.array(times), axis=0)
print(json.dumps({"wall": wall, "cpu": cpu}))
"""


def unpack(ref: str, into: Path) -> Path:
    """``git archive ref`` of this repository, unpacked under ``into``."""
    tar = into / "ref.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(tar), ref], check=True)
    with tarfile.open(tar) as t:
        t.extractall(into / "ref", filter="data")
    return into / "ref"


def run_child(tree: Path, path: Path, args: argparse.Namespace, prefetch: int) -> dict[str, float]:
    argv = [sys.executable, "-c", CHILD, str(ROOT / "benchmarks"), str(path), str(args.repeats), str(prefetch)]
    argv += [str(args.size), str(args.z)]  # run in the tree: ``-c`` puts the working directory first on the path
    return tree_child_json(tree, argv, f"prefetch={prefetch}")  # type: ignore[no-any-return]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ref", default="main")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--z", type=int, default=4)
    p.add_argument("--prefetch", default="2", help="comma-separated prefetch depths")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import numpy as np
    import peers_libs as L

    from ome_arrow_core import OMEArrow

    tmp = Path(tempfile.mkdtemp())
    trees = {"new": ROOT, "old": unpack(args.ref, tmp)}
    path = tmp / "ours.ome.parquet"
    OMEArrow(L.camera_image((1, 2, args.z, args.size, args.size))).export("parquet", path)
    depths = [int(d) for d in args.prefetch.split(",")]
    got: dict[tuple[str, int], list[dict[str, float]]] = {(v, d): [] for v in trees for d in depths}
    order = [(v, d) for d in depths for v in trees]
    for r in range(args.rounds):
        for v, d in order if r % 2 else order[::-1]:
            got[v, d].append(run_child(trees[v], path, args, d))
    print(f"{args.size}x{args.size} planes x {2 * args.z}, 256x256 tiles; ref {args.ref}; {args.rounds} rounds")
    for d in depths:
        cells = {v: {k: float(np.median([g[k] for g in got[v, d]])) for k in ("wall", "cpu")} for v in trees}
        ratio = cells["new"]["cpu"] / cells["old"]["cpu"]
        print(
            f"prefetch={d}: new wall {cells['new']['wall']:.2f} cpu {cells['new']['cpu']:.2f} | "
            f"old wall {cells['old']['wall']:.2f} cpu {cells['old']['cpu']:.2f} | new/old CPU {ratio:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
