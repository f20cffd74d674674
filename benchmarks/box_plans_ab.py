"""Planned box reads (typed_chunk/box_plans.py): this tree's plans against an older commit's, interleaved.

    python benchmarks/box_plans_ab.py [--ref main] [--rounds 200] [--size 1024] [--chunks 256] [--one-thread]
    python benchmarks/box_plans_ab.py --build --one-thread    # a box's second read: its plan made, then read

Image: 1x2x4xSxS uint16 of camera-like noise written with our defaults but the chunk edge, every chunk read once
(audited). Per case (one full plane, the whole image, a 300x300 crop straddling chunks, a 4x256x256 Z column) the
box is planned by both versions of ``plan_box`` on the same opened dataset, and ``BoxPlan.read`` (checksums
checked) of the two take turns round by round, each going first every other round (both right after the
memcpys of the round before, so neither always follows a read of the same pages); only the plan's execution
is timed (no selection, no view). For scale: numpy's copy of the same pixels into fresh memory
(``arr[idx].copy()``, what compare_peers.py calls memcpy) and into a destination reused every round
(``np.copyto``). Prints wall and process CPU time per read (median of the rounds, ms), CPU new/old, and new's CPU
over the fresh memcpy's; checks every plan's result against numpy's slice of the source first. ``--one-thread``
keeps both sides on one thread (CPU time is then the work, whatever the machine's load); ``--build`` times a plan
made and read once (``plan_box``, the thread's views of it, the read: a box's second read less its projections).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers_libs as L
from read_paths_ab import older

from ome_arrow_core import OMEArrow
from ome_arrow_core.selection import Selection


def plans(img: Any, sel: Selection, module: Any) -> Any:
    """``module``'s plan of box ``sel`` of ``img`` (its source audited), or None when it makes none."""
    src = img._source
    projections = src._chunks.projections(sel)
    rows = [int(src._index_rows[p.row]) for p in projections]
    return module.plan_box(src._opened, rows, projections, sel.shape, src.meta.dtype)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="box_plans_ab_") as tmp:
        run(Path(tmp))


def run(tmp: Path) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ref", default="main")
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--chunks", type=int, default=256)
    p.add_argument("--one-thread", action="store_true", help="never a helper thread, either side")
    p.add_argument("--build", action="store_true", help="time plan_box and the new plan's first read")
    args = p.parse_args()
    import ome_arrow_core.typed_chunk.box_plans as new

    old = older("ome_arrow_core.typed_chunk.box_plans", args.ref)
    units = older("ome_arrow_core.typed_chunk.box_units", args.ref)
    for name in ("GAP_BYTES", "PAGE_AT", "output_offset", "output_offsets", "plan_units") if old and units else ():
        if hasattr(units, name):  # the older plans with the older units
            setattr(old, name, getattr(units, name))
    if args.one_thread:
        for module in (new, old):
            if module is not None:
                module.spare_core = lambda: False
    s = args.size
    arr = L.camera_image((1, 2, 4, s, s))
    path = tmp / "ours.ome.parquet"
    OMEArrow(arr).export("parquet", path, chunk_shape=(args.chunks, args.chunks))
    img = OMEArrow.scan(path)
    img.to_numpy()  # audited: later reads stream
    full = Selection.full(img._source.meta.sizes)
    o = s // 2 - 24
    boxes = {  # TCZYX index of the source, and the TZCYX selection
        f"one full {s}x{s} plane": ((0, 1, 2, slice(None), slice(None)), full.select(c=range(1, 2), z=range(2, 3))),
        "the whole image": ((slice(None),) * 5, full),
        "one 300x300 unaligned crop": (
            (0, 1, 2, slice(o, o + 300), slice(o, o + 300)),
            full.select(c=range(1, 2), z=range(2, 3), y=range(o, o + 300), x=range(o, o + 300)),
        ),
        "a 4x256x256 Z column": (
            (0, 1, slice(None), slice(512, 768), slice(512, 768)),
            full.select(c=range(1, 2), y=range(512, 768), x=range(512, 768)),
        ),
    }
    print(
        f"ref {args.ref}, {args.rounds} rounds, 1x2x4x{s}x{s} uint16, chunks {args.chunks}, "
        f"{'plan + first read' if args.build else 'read'}, {'one thread' if args.one_thread else 'threads as gated'}, "
        f"load {os.getloadavg()}"
    )
    print(
        "case | new wall / CPU | old wall / CPU | memcpy fresh wall / CPU | copyto reused wall / CPU | new/old CPU"
        " | new/memcpy CPU"
    )
    for name, (idx, sel) in boxes.items():
        want = sel.apply(arr.transpose(0, 2, 1, 3, 4))  # TZCYX, as plans read
        dest = np.empty_like(want)
        made = {"new": plans(img, sel, new), "old": plans(img, sel, old) if old is not None else None}
        fns: dict[str, Callable[[], Any]] = {k: (lambda p=p: p.read(True)) for k, p in made.items() if p is not None}
        if args.build:
            mods = {"new": new, "old": old}
            fns = {k: (lambda m=mods[k]: plans(img, sel, m).read(True)) for k in fns}
        for k, fn in fns.items():
            np.testing.assert_array_equal(fn(), want, err_msg=f"{k}: {name}")
        fns["memcpy"] = lambda: arr[idx].copy()
        fns["copyto"] = lambda: np.copyto(dest, want)
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in fns}
        pair = [(k, fns[k]) for k in ("new", "old") if k in fns]
        rest = [(k, fns[k]) for k in ("memcpy", "copyto")]
        for r in range(args.rounds):  # new and old each first every other round, both after the memcpys
            for k, fn in (pair if r % 2 else pair[::-1]) + rest:
                w0, c0 = time.perf_counter(), time.process_time()
                fn()
                times[k].append(((time.perf_counter() - w0) * 1e3, (time.process_time() - c0) * 1e3))
        med = {k: np.median(np.array(v), axis=0) for k, v in times.items()}
        cells = [f"{med[k][0]:.3f} / {med[k][1]:.3f}" if k in med else "-" for k in ("new", "old", "memcpy", "copyto")]
        ratio = f"{med['new'][1] / med['old'][1]:.2f}" if "old" in med else "-"
        print(f"{name} | {' | '.join(cells)} | {ratio} | {med['new'][1] / med['memcpy'][1]:.2f}", flush=True)
    print(f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
