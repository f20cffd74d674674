"""Whole views to the GPU through the CuPy backend (``to_cupy``), against ``cupy.asarray`` and the pinned ceiling.

    python benchmarks/cuda_views.py [--t 4] [--c 16] [--z 4] [--size 1024] [--block-mib 8] [--repeats 5] [--cuda]

The companion of :mod:`peers_cuda` (one plane and tile streams), with their machinery (:mod:`cuda_cases`: cases
checked against numpy, timed interleaved, "x pinned" against a pinned copy of the same bytes): here the views are
large (by default a 512 MiB TCZYX uint16 image), contiguous, strided or cut, so the backend's blocked staging
through rotating pinned buffers is what is measured; ``--block-mib`` sets its block size
(``ome_arrow_cupy.export.BLOCK_BYTES``) to compare.
A host memcpy (one thread) of the largest view is printed for reference. Needs CuPy and a device: without them it
prints ``no CUDA device: CUDA cases skipped`` (and why) and exits 0; ``--cuda`` requires one (exit 2 without).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved
from cuda_cases import SKIP, Case, Gpu, find_device, report, time_cases

from ome_arrow_core import OMEArrow, TensorView


def view_cases(gpu: Gpu, pixels: np.ndarray) -> tuple[list[Case], dict[str, int]]:
    """Views of the image of ``pixels`` (TCZYX, square planes) to the device: ours, ``cupy.asarray`` of a C-order
    copy, the ceiling; and each view's bytes."""
    cp = gpu.cp
    image = OMEArrow(pixels, "TCZYX")
    half = pixels.shape[4] // 2
    views = {
        "TZCYX (contiguous)": image.tensor_view(layout="TZCYX"),
        "one plane CYX": image.tensor_view(t=0, z=0),
        "ZYXC (strided)": image.tensor_view(t=0, z=slice(0, max(1, pixels.shape[2] // 2)), layout="ZYXC"),
        "roi of a quarter plane, all t,z": image.tensor_view(roi=(half // 2, half // 2, half, half)),
    }
    cases: list[Case] = []
    for name, view in views.items():
        want = [view.to_numpy(contiguous=True)]

        def ours(v: TensorView = view) -> Any:
            out = v.to_cupy()
            gpu.sync()
            return out

        def plain(v: TensorView = view) -> Any:
            out = cp.asarray(v.to_numpy(contiguous=True))
            gpu.sync()
            return out

        cases += [
            Case(name, "copy: ours to_cupy", ours, want),
            Case(name, "copy: cupy.asarray(to_numpy(contiguous=True))", plain, want),
            Case(name, "ceiling: pinned buffer to device", gpu.pinned_copy(view.nbytes), None),
        ]
    return cases, {name: view.nbytes for name, view in views.items()}


def host_memcpy_gbps(gpu: Gpu, nbytes: int, repeats: int) -> float:
    """GB/s of one thread copying ``nbytes`` from host memory into pinned memory."""
    cp = gpu.cp
    dst = np.frombuffer(cp.cuda.alloc_pinned_memory(nbytes), np.uint8, nbytes)
    src = np.ones(nbytes, np.uint8)
    (m,) = interleaved([lambda: np.copyto(dst, src)], repeats)
    return nbytes / m["median_ms"] / 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for axis, default in (("t", 4), ("c", 16), ("z", 4), ("size", 1024)):
        p.add_argument(f"--{axis}", type=int, default=default, help="Y and X" if axis == "size" else None)
    p.add_argument("--block-mib", type=float, help="the CuPy backend's staging block (default: its own)")
    p.add_argument("--repeats", type=int, default=5, help="rounds, each timing every case once (medians reported)")
    p.add_argument("--cuda", action="store_true", help="require a CUDA device (exit 2 without one)")
    args = p.parse_args(argv)
    if min(args.t, args.c, args.z, args.repeats) < 1 or args.size < 2:
        p.error("--t, --c, --z and --repeats must be at least 1, --size at least 2")
    device, why = find_device()
    gpu = Gpu() if device is not None else None
    if gpu is None or gpu.cp is None:
        why = why or "CuPy sees no device (these cases export through the CuPy backend)"
        if args.cuda:
            print(f"--cuda: no CUDA device ({why})", file=sys.stderr)
            return 2
        print(f"{SKIP} ({why})")
        return 0
    from ome_arrow_cupy import export

    if args.block_mib is not None:
        export.BLOCK_BYTES = int(args.block_mib * 2**20)
    pixels = np.random.default_rng(0).integers(0, 4096, (args.t, args.c, args.z, args.size, args.size), np.uint16)
    cases, nbytes = view_cases(gpu, pixels)
    rows = time_cases(gpu, cases, nbytes, args.repeats)
    print(report(rows, f"{device}, cupy {gpu.cp.__version__}, block {export.BLOCK_BYTES / 2**20:g} MiB"), flush=True)
    print(f"host memcpy (1 thread) {host_memcpy_gbps(gpu, pixels.nbytes, args.repeats):.2f} GB/s")
    print(f"load {os.getloadavg()[0]:.1f}; pixels of every case checked against numpy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
