"""Whole image and one full plane of a large image: ours against memcpy, tensorstore and zarr, one process.

    python benchmarks/big_image_reads.py [--data DIR] [--shape 1x2x16x2048x2048] [--rounds 6] [--libs ours,memcpy,...]
    python benchmarks/big_image_reads.py --libs ours,memcpy,memcpy-reused,tensorstore512,zarr512   # + a reused buffer
    python benchmarks/big_image_reads.py --libs ours,ours-py,memcpy,memcpy-reused   # the C kernel on and off

The image (peers_libs.camera_image, TCZYX uint16) and each library's copy of it (ours: our defaults; tensorstore
and zarr: zarr v3, raw 1x1x1x256x256 and 512x512 chunks) are written into ``--data`` once and reused by later
runs (so fresh processes of two trees, run in turn, read the same files: an A/B is this script run alternately
from each tree). Every library's result is checked against numpy's slice first. Then the libraries take turns,
each going first every other round: the whole image ``--rounds`` times, the plane (c=1, z=Z/2) 20x as often.
Prints per library wall/CPU medians (ms), ours over memcpy (``arr[idx].copy()``: fresh memory, as compare_peers.py;
a 256 MiB copy gets a fresh mapping each time and pays its page faults, our output reuses freed Arrow memory:
``getrusage`` minor faults 129 against 0 per whole-image read), ours over ``memcpy-reused`` when listed (``np.copyto``
into an array of the selection's shape made once: no page faults, the copy's floor) and ours over the fastest peer.
``ours-py`` is ours with ``OME_ARROW_KERNELS=0`` set around each call (without the optional C kernel,
backends/kernels; ``ours`` uses it when installed): ours over ours-py is then the kernel's A/B.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers_libs as L

from ome_arrow_core import OMEArrow


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="/tmp/ome_arrow_big_image")
    p.add_argument("--shape", default="1x2x16x2048x2048")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--libs", default="ours,memcpy,tensorstore512,zarr512")
    args = p.parse_args()
    data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    shape = tuple(int(v) for v in args.shape.split("x"))
    src = data / f"arr-{args.shape}.npy"
    if not src.exists():
        np.save(src, L.camera_image(shape))
    arr = np.load(src)
    ours = data / f"ours-{args.shape}.ome.parquet"
    if not ours.exists():
        OMEArrow(arr).export("parquet", ours)
    wanted = args.libs.split(",")
    img = OMEArrow.scan(ours)
    libs: dict[str, Any] = {"ours": lambda idx: L.ours_read(img, idx), "memcpy": lambda idx: arr[idx].copy()}
    kept: dict[tuple[int, ...], np.ndarray] = {}  # memcpy-reused's destinations, one per shape, made once

    def reused(idx: Any) -> np.ndarray:
        src = arr[idx]
        dst = kept.get(src.shape)
        if dst is None:
            dst = kept[src.shape] = np.empty_like(src)
        np.copyto(dst, src)
        return dst

    libs["memcpy-reused"] = reused

    def python_steps(idx: Any) -> np.ndarray:
        os.environ["OME_ARROW_KERNELS"] = "0"
        try:
            return L.ours_read(img, idx)
        finally:
            del os.environ["OME_ARROW_KERNELS"]

    libs["ours-py"] = python_steps
    for lib in ("tensorstore", "zarr"):
        for edge in (256, 512):
            name = f"{lib}{edge}"
            if name not in wanted:
                continue
            store = data / f"{lib}-{edge}-{args.shape}.zarr"
            if not store.exists():
                (L.ts_write if lib == "tensorstore" else L.zarr_write)(arr, store, edge, "raw")
            handle = (L.ts_open if lib == "tensorstore" else L.zarr_open)(store)
            libs[name] = (L.ts_reader if lib == "tensorstore" else L.zarr_reader)(handle)
    libs = {k: v for k, v in libs.items() if k in wanted}
    cases = {"whole image": (slice(None),) * 5, "one full plane": (0, 1, shape[2] // 2, slice(None), slice(None))}
    for idx in cases.values():
        for k, f in libs.items():
            if not k.startswith("memcpy"):
                assert np.array_equal(np.asarray(f(idx)), arr[idx]), k
    for name, idx in cases.items():
        n = args.rounds if name == "whole image" else args.rounds * 20
        wall: dict[str, list[float]] = {k: [] for k in libs}
        cpu: dict[str, list[float]] = {k: [] for k in libs}
        order = list(libs.items())
        for r in range(n):
            for k, f in order if r % 2 else order[::-1]:
                c0, t0 = time.process_time(), time.perf_counter()
                got = f(idx)
                wall[k].append((time.perf_counter() - t0) * 1e3)
                cpu[k].append((time.process_time() - c0) * 1e3)
                del got
        med = {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in libs}
        line = ", ".join(f"{k} {w:.2f}/{c:.2f}" for k, (w, c) in med.items())
        if "ours" in med and "memcpy" in med:
            line += (
                f"; ours/memcpy {med['ours'][0] / med['memcpy'][0]:.2f} (CPU {med['ours'][1] / med['memcpy'][1]:.2f})"
            )
        if "ours" in med and "ours-py" in med:
            o, m = med["ours"], med["ours-py"]
            line += f"; ours/ours-py {o[0] / m[0]:.2f} (CPU {o[1] / m[1]:.2f})"
        if "ours" in med and "memcpy-reused" in med:
            o, m = med["ours"], med["memcpy-reused"]
            line += f"; ours/memcpy-reused {o[0] / m[0]:.2f} (CPU {o[1] / m[1]:.2f})"
        peers = [w for k, (w, _) in med.items() if k.startswith(("tensorstore", "zarr"))]
        if "ours" in med and peers:
            line += f"; ours/best peer {med['ours'][0] / min(peers):.2f}"
        print(f"{name} (wall/CPU ms): {line}; load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
