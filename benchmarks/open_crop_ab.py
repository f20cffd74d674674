"""Open + one 256x256 aligned crop (compare_peers' case) in a warm process: this tree, another checkout and
tensorstore, in alternating fresh processes.

    python benchmarks/open_crop_ab.py --baseline /work/wt/base19 [--rounds 6] [--repeats 200] [--shapes 1024:4,2048:16]

compare_peers.py's "open + one 256x256 aligned crop" times ``OMEArrow.scan(path).tensor_view(t=0, c=1, z=Z/2,
roi=(512, 512, 256, 256), layout="YX").to_numpy()`` against tensorstore's ``ts.open`` + the same read. Here, per
shape (1x2xZxSxS uint16 camera-like noise written once with this tree's defaults; tensorstore's zarr v3 copies with
256 and 512 raw chunks), each round runs one process per tree and one for tensorstore, in alternating order. A
process imports, reads the whole image once (every chunk audited: the file was read before, as in compare_peers),
times calls 1-3 (the first checked against numpy; compare_peers --quick times calls 2 and 3 after reading other
libraries' files in between), runs the case 20 times untimed, then ``--repeats`` times timed, then 30 times each
after touching 64 MiB (the CPU caches hold other data, as between compare_peers' cases), and reports the median
process CPU time (all threads) and wall time of one call; for ours also of the open alone (``OMEArrow.scan``), for
tensorstore of its chunking with the lower steady CPU time (its calls 1-3 then follow the other chunking's). Prints per shape the medians over rounds, ms, this
tree / the baseline and this tree / tensorstore, and the load average.
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
import json, sys, time
from pathlib import Path
import numpy as np
path, repeats, z, lib = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
want = np.load(str(path) + ".npy")
if lib == "ours":
    from ome_arrow_core import OMEArrow
    import ome_arrow_core
    assert Path(ome_arrow_core.__file__).is_relative_to(Path.cwd()), ome_arrow_core.__file__
    img = OMEArrow.scan(path)
    img.to_numpy()  # every chunk audited
    for _ in range(3):  # compare_peers' read cases before this one, through one handle
        img.tensor_view(t=0, c=1, z=z, layout="YX").to_numpy()
        img.tensor_view(t=0, c=1, z=z, roi=(512, 512, 256, 256), layout="YX").to_numpy()
        img.tensor_view(t=0, c=1, roi=(512, 512, 256, 256), layout="ZYX").to_numpy()
    def case():
        return OMEArrow.scan(path).tensor_view(t=0, c=1, z=z, roi=(512, 512, 256, 256), layout="YX").to_numpy()
    cases = {"open + crop": case, "open": lambda: OMEArrow.scan(path)}
else:
    sys.path.insert(0, sys.argv[5])
    import peers_libs as L
    crop = (0, 1, z, slice(512, 768), slice(512, 768))
    cases = {}
    for store in sys.argv[6:]:
        read = L.ts_reader(L.ts_open(Path(store)))
        read((slice(None),) * 5)
        for _ in range(3):
            read((0, 1, z))
            read(crop)
            read((0, 1, slice(None), slice(512, 768), slice(512, 768)))
        cases[Path(store).name] = lambda store=Path(store): L.ts_reader(L.ts_open(store))(crop)
out = {}
evict = np.ones(8 << 20)  # 64 MiB
for name, fn in cases.items():
    first = []
    for _ in range(3):  # calls 1-3: compare_peers --quick checks call 1 and times calls 2 and 3
        w, u = time.perf_counter(), time.process_time()
        got = fn()
        first.append([(time.process_time() - u) * 1e3, (time.perf_counter() - w) * 1e3])
        if name != "open":
            assert np.array_equal(np.asarray(got), want), name
        del got
    for _ in range(20):
        fn()
    cpu, wall = [], []
    for _ in range(repeats):
        w, u = time.perf_counter(), time.process_time()
        fn()
        cpu.append((time.process_time() - u) * 1e3)
        wall.append((time.perf_counter() - w) * 1e3)
    out[name] = [float(np.median(cpu)), float(np.median(wall))]
    out[name + " 2-3"] = np.mean(first[1:], axis=0).tolist()
    cpu, wall = [], []
    for _ in range(30):  # each call after 64 MiB were touched: the CPU caches hold other data, as between cases
        evict.sum()
        w, u = time.perf_counter(), time.process_time()
        fn()
        cpu.append((time.process_time() - u) * 1e3)
        wall.append((time.perf_counter() - w) * 1e3)
    out[name + " evicted"] = [float(np.median(cpu)), float(np.median(wall))]
if lib != "ours":
    best = min((k for k in out if k.endswith(".zarr")), key=lambda k: out[k][0])
    out = {k.replace(best, "open + crop"): v for k, v in out.items() if k.startswith(best)} | {"config": best}
print(json.dumps(out))
"""


def run_child(tree: Path, path: Path, z: int, repeats: int, lib: str, stores: list[Path]) -> dict[str, Any]:
    argv = [sys.executable, "-c", CHILD, str(path), str(repeats), str(z), lib, str(ROOT / "benchmarks")]
    argv += [str(s) for s in stores]
    return tree_child_json(tree, argv, lib)  # type: ignore[no-any-return]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--baseline", type=Path, required=True, help="another checkout of this repository")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--shapes", default="1024:4,2048:16", help="comma-separated SIZE:Z")
    args = p.parse_args()
    trees = {"new": ROOT, "old": args.baseline.resolve()}
    for shape in args.shapes.split(","):
        size, nz = (int(v) for v in shape.split(":"))
        with tempfile.TemporaryDirectory(prefix="open_crop_ab-") as d:
            path, stores = write_files(Path(d), size, nz)
            got: dict[str, list[dict[str, Any]]] = {v: [] for v in [*trees, "ts"]}
            loads = []
            for r in range(args.rounds):
                for v in [*trees, "ts"] if r % 2 else ["ts", *list(trees)[::-1]]:
                    tree, lib = (trees[v], "ours") if v != "ts" else (ROOT, "ts")
                    got[v].append(run_child(tree, path, nz // 2, args.repeats, lib, stores if lib == "ts" else []))
                loads.append(os.getloadavg()[0])
        print(
            f"1x2x{nz}x{size}x{size} uint16; baseline {args.baseline}; {args.rounds} rounds x {args.repeats} calls; "
            f"load {min(loads):.1f}-{max(loads):.1f}; medians over rounds, ms CPU (wall)"
        )
        report(got)


def write_files(tmp: Path, size: int, nz: int) -> tuple[Path, list[Path]]:
    """Our dataset (beside its expected crop, .npy) and tensorstore's two copies of one 1x2xZxSxS image."""
    import numpy as np
    import peers_libs as L

    from ome_arrow_core import OMEArrow

    path = tmp / "ours.ome.parquet"
    arr = L.camera_image((1, 2, nz, size, size))
    OMEArrow(arr).export("parquet", path)
    np.save(str(path) + ".npy", arr[0, 1, nz // 2, 512:768, 512:768])
    stores = [tmp / f"ts-{c}.zarr" for c in (256, 512)]
    for c, store in zip((256, 512), stores):
        L.ts_write(arr, store, c, "raw")
    return path, stores


def report(got: dict[str, list[dict[str, Any]]]) -> None:
    """Print each case's medians over rounds, and the ratios."""
    import numpy as np

    def med(v: str, case: str) -> list[float]:
        return np.median(np.array([g[case] for g in got[v]]), axis=0).tolist()  # type: ignore[no-any-return]

    configs = ", ".join(sorted({str(g["config"]) for g in got["ts"]}))
    for label, case in (
        ("open + crop, steady", "open + crop"),
        ("calls 2-3 of a process (what --quick times)", "open + crop 2-3"),
        ("each call after 64 MiB touched", "open + crop evicted"),
    ):
        new, old, ts = (med(v, case) for v in ("new", "old", "ts"))
        print(
            f"  {label}: new {new[0]:.3f} ({new[1]:.3f}) old {old[0]:.3f} ({old[1]:.3f}) tensorstore [{configs}] "
            f"{ts[0]:.3f} ({ts[1]:.3f}); new/old CPU {new[0] / old[0]:.2f} wall {new[1] / old[1]:.2f}; "
            f"new/tensorstore CPU {new[0] / ts[0]:.2f} wall {new[1] / ts[1]:.2f}; old/tensorstore CPU "
            f"{old[0] / ts[0]:.2f} wall {old[1] / ts[1]:.2f}"
        )
    on, oo = med("new", "open"), med("old", "open")
    print(f"  open alone: new {on[0]:.3f} ({on[1]:.3f}) old {oo[0]:.3f} ({oo[1]:.3f})", flush=True)


if __name__ == "__main__":
    main()
