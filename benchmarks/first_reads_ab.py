"""A box's first reads (what a short benchmark times), this tree against another checkout, in alternating fresh processes.

    python benchmarks/first_reads_ab.py --baseline /work/wt/base18 [--rounds 6] [--size 1024] [--z 4] [--repeats 5]
    python benchmarks/first_reads_ab.py --baseline /work/wt/base18 --tensorstore 512   # and tensorstore's reads
    python benchmarks/first_reads_ab.py --baseline /work/wt/base18 --unaudited --size 2048 --z 16 --repeats 9

compare_peers.py times a read case after one untimed check read, and ``--quick`` times two reads: the second and
third reads of a box, on a general path or a plan made on the way (typed_chunk/source.py), not the steady state of
read_paths_ab.py. Here each case (one plane, an aligned 256x256 crop, a 300x300 crop straddling chunks, a Z column,
the whole image; an image of camera-like noise 1x2xZxSxS uint16 written with our defaults, every chunk read once
(audited) first) is read three times by a fresh source (``OMEArrow.scan``: the file's parse is cached, the source's
box plans are not), ``--repeats`` times per process; each round runs one process per tree, in alternating order.
Prints per case and read the median over rounds of each process's median process CPU time (all threads) and wall
time, ms, and this tree's CPU over the baseline's. ``--tensorstore CHUNK`` also times tensorstore (zarr v3,
CHUNKxCHUNK raw chunks, compare_peers' reader, a fresh handle per repeat) in a process of its own each round and
prints ours / tensorstore for the mean of reads 2 and 3 (what ``--quick`` times), CPU and wall. ``--unaudited`` reads
nothing first: each repeat reads another plane three times (at most 2 x Z repeats), its first read auditing its rows
(what a process reading each plane once pays on every plane).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import tree_child_json  # noqa: E402

CHILD = r"""
import json, sys, time
from pathlib import Path
import numpy as np
path, repeats, s, nz, lib = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
unaudited = sys.argv[8] == "1"
want = np.load(str(path) + ".npy")
if lib == "ours":
    from ome_arrow_core import OMEArrow
    import ome_arrow_core
    assert Path(ome_arrow_core.__file__).is_relative_to(Path.cwd()), ome_arrow_core.__file__
    if not unaudited:
        OMEArrow.scan(path).to_numpy()  # every chunk audited
    opened = OMEArrow.scan
else:
    sys.path.insert(0, sys.argv[6])
    import peers_libs as L
    store = Path(sys.argv[7])
    L.ts_reader(L.ts_open(store))((slice(None),) * 5)
    opened = lambda _: L.ts_reader(L.ts_open(store))
    class View:
        def __init__(self, read, idx): self.read, self.idx = read, idx
        def to_numpy(self): return self.read(self.idx)
    class OMEArrow:  # the cases' calls, answered by tensorstore's reader
        def __init__(self, read): self.read = read
        def tensor_view(self, t, c, z=slice(None), roi=None, layout=None):
            x, y, w, h = roi if roi is not None else (0, 0, s, s)
            return View(self.read, (t, c, z, slice(y, y + h), slice(x, x + w)))
        def to_numpy(self): return self.read((slice(None),) * 5)
    opened = lambda _: OMEArrow(L.ts_reader(L.ts_open(store)))
o, m = s // 2 - 24, s // 2
cases = {
    "plane": (lambda img: img.tensor_view(t=0, c=1, z=nz // 2, layout="YX").to_numpy(), want[0, 1, nz // 2]),
    "crop256": (
        lambda img: img.tensor_view(t=0, c=1, z=nz // 2, roi=(512, 512, 256, 256), layout="YX").to_numpy(),
        want[0, 1, nz // 2, 512:768, 512:768],
    ),
    "crop300": (
        lambda img: img.tensor_view(t=0, c=1, z=nz // 2, roi=(o, o, 300, 300), layout="YX").to_numpy(),
        want[0, 1, nz // 2, o : o + 300, o : o + 300],
    ),
    "zcolumn": (
        lambda img: img.tensor_view(t=0, c=1, roi=(m, m, 256, 256), layout="ZYX").to_numpy(),
        want[0, 1, :, m : m + 256, m : m + 256],
    ),
    "whole": (lambda img: img.to_numpy(), want),
}
if unaudited:  # each repeat reads another plane, its rows audited by its first read
    planes, calls = [(c, z) for z in range(nz) for c in range(2)], [0]
    def next_plane(img):  # reads 1-3 of a repeat: one plane
        c, z = planes[calls[0] // 3]
        calls[0] += 1
        return img.tensor_view(t=0, c=c, z=z, layout="YX").to_numpy(), want[0, c, z]
    cases = {"unaudited plane": (next_plane, None)}
out = {}
for name, (read, expected) in cases.items():
    times = []
    for _ in range(repeats):
        img = opened(path)
        row = []
        for _ in range(3):
            w, u = time.perf_counter(), time.process_time()
            got = read(img)
            row += [(time.process_time() - u) * 1e3, (time.perf_counter() - w) * 1e3]
            if unaudited:
                got, expected = got
            assert np.array_equal(got, expected), name
            del got
        times.append(row)
    out[name] = np.median(np.array(times), axis=0).tolist()
print(json.dumps(out))
"""


def run_child(tree: Path, path: Path, args: argparse.Namespace, lib: str = "ours") -> dict[str, list[float]]:
    argv = [sys.executable, "-c", CHILD, str(path), str(args.repeats), str(args.size), str(args.z), lib]
    argv += [str(ROOT / "benchmarks"), str(path.parent / "ts.zarr"), "1" if args.unaudited else "0"]
    return tree_child_json(tree, argv, lib)  # type: ignore[no-any-return]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--baseline", type=Path, required=True, help="another checkout of this repository")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--z", type=int, default=4)
    p.add_argument("--tensorstore", type=int, default=0, help="also tensorstore, CHUNKxCHUNK raw chunks")
    p.add_argument(
        "--unaudited", action="store_true", help="no read first: each repeat reads another plane, unaudited at read 1"
    )
    args = p.parse_args()
    if args.unaudited and args.repeats > 2 * args.z:
        p.error("--unaudited reads another plane each repeat: at most 2 x Z repeats")
    import numpy as np
    import peers_libs as L

    from ome_arrow_core import OMEArrow

    tmp = Path(tempfile.mkdtemp())
    path = tmp / "ours.ome.parquet"
    arr = L.camera_image((1, 2, args.z, args.size, args.size))
    OMEArrow(arr).export("parquet", path)
    np.save(str(path) + ".npy", arr)
    if args.tensorstore:
        L.ts_write(arr, tmp / "ts.zarr", args.tensorstore, "raw")
    trees = {"new": ROOT, "old": args.baseline.resolve()}
    got: dict[str, list[dict[str, list[float]]]] = {v: [] for v in [*trees, "ts"]}
    loads = []
    for r in range(args.rounds):
        for v in [*trees, "ts"] if r % 2 else ["ts", *list(trees)[::-1]]:
            if v != "ts":
                got[v].append(run_child(trees[v], path, args))
            elif args.tensorstore:
                got[v].append(run_child(ROOT, path, args, "ts"))
        loads.append(os.getloadavg()[0])
    print(
        f"1x2x{args.z}x{args.size}x{args.size} uint16; baseline {args.baseline}; {args.rounds} rounds x "
        f"{args.repeats} fresh sources; load {min(loads):.1f}-{max(loads):.1f}; CPU ms (wall ms)"
    )
    for case in got["new"][0]:
        cells = {v: np.median(np.array([g[case] for g in got[v]]), axis=0) for v in trees}
        parts = []
        for k in range(3):
            new, old = cells["new"][2 * k : 2 * k + 2], cells["old"][2 * k : 2 * k + 2]
            parts.append(
                f"read {k + 1}: new {new[0]:.3f} ({new[1]:.3f}) old {old[0]:.3f} ({old[1]:.3f}) {new[0] / old[0]:.2f}"
            )
        print(f"{case}: " + " | ".join(parts), flush=True)
        if args.tensorstore:
            ts = np.median(np.array([g[case] for g in got["ts"]]), axis=0)
            ours = [(cells["new"][2 + j] + cells["new"][4 + j]) / 2 for j in (0, 1)]
            peer = [(ts[2 + j] + ts[4 + j]) / 2 for j in (0, 1)]
            print(
                f"  tensorstore {args.tensorstore} raw reads 1-3 CPU {ts[0]:.3f} {ts[2]:.3f} {ts[4]:.3f}; reads 2-3: "
                f"new / tensorstore CPU {ours[0] / peer[0]:.2f}, wall {ours[1] / peer[1]:.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
