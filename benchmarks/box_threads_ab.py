"""Planned box reads by one thread against two (typed_chunk/box_plans.py), interleaved: is THREADED_BYTES right?

    python benchmarks/box_threads_ab.py [--rounds 300] [--size 1024] [--chunks 256] [--step 2] [--gated]

Image: 1x2x4xSxS uint16 of camera-like noise written with our defaults but the chunk edge, audited. Per case (one
full plane, half a plane, the whole image) the same plan is read (checksums checked) by one thread and by two
(the caller and the helper, blocks of at least ``--step`` chunks and at most BLOCKS of them; a core is taken to be
spare whatever the load, or with ``--gated`` only when ``box_threads.spare_core()`` says so, as a default read does),
taking turns round by round. Prints wall (median, 25th percentile, best) and process CPU (median) per read, ms,
and the two-thread/one-thread ratios (with ``--gated``: default/one thread, ~1 on a busy machine). Two threads only
pay off on a machine with an idle core: run it on a quiet one (``os.getloadavg()`` is printed before and after) and
read the wall ratio; the CPU ratio is the price.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers_libs as L
from box_plans_ab import plans

from ome_arrow_core import OMEArrow
from ome_arrow_core.selection import Selection


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--chunks", type=int, default=256)
    p.add_argument("--step", type=int, default=2)
    p.add_argument("--gated", action="store_true", help="two threads only when spare_core() says a core is free")
    args = p.parse_args()
    import ome_arrow_core.typed_chunk.box_plans as bp

    if not args.gated:
        bp.spare_core = lambda: True
    bp.STEP = args.step
    with tempfile.TemporaryDirectory(prefix="box_threads_ab_") as tmp:
        s = args.size
        arr = L.camera_image((1, 2, 4, s, s))
        path = Path(tmp) / "ours.ome.parquet"
        OMEArrow(arr).export("parquet", path, chunk_shape=(args.chunks, args.chunks))
        img = OMEArrow.scan(path)
        img.to_numpy()  # audited
        full = Selection.full(img._source.meta.sizes)
        cases = {
            f"half a {s}x{s} plane": full.select(c=range(1, 2), z=range(2, 3), y=range(s // 2)),
            f"one full {s}x{s} plane": full.select(c=range(1, 2), z=range(2, 3)),
            "the whole image": full,
        }
        gated = ", gated by spare_core()" if args.gated else ""
        print(f"{args.rounds} rounds, 1x2x4x{s}x{s} uint16, chunks {args.chunks}, step {args.step}{gated}")
        print(f"load before {os.getloadavg()}")
        print("case | one: wall med / p25 / best, CPU | two: wall med / p25 / best, CPU | two/one wall med, CPU")
        for name, sel in cases.items():
            plan = plans(img, sel, bp)
            want = sel.apply(arr.transpose(0, 2, 1, 3, 4))
            times: dict[int, list[tuple[float, float]]] = {1 << 62: [], 0: []}  # THREADED_BYTES: one, two threads
            for r in range(args.rounds):
                for limit in list(times) if r % 2 else list(times)[::-1]:
                    bp.THREADED_BYTES = limit
                    w0, c0 = time.perf_counter(), time.process_time()
                    got = plan.read(True)
                    times[limit].append(((time.perf_counter() - w0) * 1e3, (time.process_time() - c0) * 1e3))
                    if r == 0:
                        np.testing.assert_array_equal(got, want)
            cells, med = [], []
            for v in times.values():
                a = np.array(v)
                w = a[:, 0]
                med.append((float(np.median(w)), float(np.median(a[:, 1]))))
                cells.append(f"{med[-1][0]:.3f} / {np.percentile(w, 25):.3f} / {w.min():.3f}, {med[-1][1]:.3f}")
            ratio = f"{med[1][0] / med[0][0]:.2f}, {med[1][1] / med[0][1]:.2f}"
            print(f"{name} | {' | '.join(cells)} | {ratio}", flush=True)
        print(f"load after {os.getloadavg()}")


if __name__ == "__main__":
    main()
