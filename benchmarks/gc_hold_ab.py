"""Batched reads with Python's cyclic GC on against off (as Ray's read tasks hold it off), interleaved: does it pay?

    python benchmarks/gc_hold_ab.py [--images 2000] [--batch 32] [--rounds 4] [--heap 0] [--dir DIR]

A plate of ``--images`` 2x256x256 uint16 images (the loading benchmark's, written to ``--dir``, kept there) is read in
shuffled batches of ``--batch`` with ``OMEArrowDataset.read`` wrapped by ``torch.from_numpy``, as a map-style
DataLoader worker reads it, each batch followed by a training step's small garbage (50 dicts, the last 20 steps'
kept). With ``--heap N`` the process first keeps N more tracked containers alive (a Ray worker holds ~140k objects,
which each full collection walks). Epochs with the collector on and with it disabled around each read take turns;
prints per mode the epoch's process CPU (median), the CPU spent in collections and their count per generation
(``gc.callbacks``), and the off/on CPU ratio.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loading_support import make_plate

from ome_arrow_core import OMEArrowDataset


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--heap", type=int, default=0)
    p.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "gc_hold_ab")
    args = p.parse_args()
    import torch

    plate = args.dir / f"plate-{args.images}"
    if not plate.exists():
        make_plate(plate, args.images, 2, 256)
    kept = [{"a": [i], "b": (i, str(i))} for i in range(args.heap // 3)]  # three tracked objects each
    gc.collect()
    print(f"tracked objects: {len(gc.get_objects())} (kept {len(kept) * 3})")
    ds = OMEArrowDataset.scan(plate)
    order = np.random.default_rng(0).permutation(len(ds))
    gens, cpu = [0, 0, 0], [0.0, 0.0]  # collections per generation; CPU in them, the last one's start

    def note(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            cpu[1] = time.process_time()
            gens[info["generation"]] += 1
        else:
            cpu[0] += time.process_time() - cpu[1]

    def epoch(hold: bool) -> None:
        steps: list[list[dict[str, float]]] = []
        for a in range(0, len(ds), args.batch):
            idx = np.sort(order[a : a + args.batch])
            if hold:
                gc.disable()
            try:
                torch.from_numpy(ds.read(idx))
            finally:
                gc.enable()
            steps.append([{"loss": float(i)} for i in range(50)])
            del steps[:-20]

    gc.callbacks.append(note)
    runs: dict[bool, list[tuple[float, float, list[int]]]] = {False: [], True: []}
    for r in range(args.rounds):
        for hold in (False, True) if r % 2 == 0 else (True, False):
            gens[:], cpu[0] = [0, 0, 0], 0.0
            c0 = time.process_time()
            epoch(hold)
            runs[hold].append((time.process_time() - c0, cpu[0], list(gens)))
    gc.callbacks.remove(note)
    for hold, name in ((False, "gc on "), (True, "gc off")):
        cpu = np.median([x[0] for x in runs[hold]])
        gcs = ", ".join(f"{x[1] * 1e3:.1f}" for x in runs[hold])
        print(f"{name}: epoch CPU {cpu:.3f} s; in collections (ms) {gcs}; gen0/1/2 {[x[2] for x in runs[hold]]}")
    off, on = (np.median([x[0] for x in runs[h]]) for h in (True, False))
    print(f"off/on epoch CPU: {off / on:.3f}")


if __name__ == "__main__":
    main()
