"""Host-to-GPU export throughput of the CuPy backend against a plain ``cupy.asarray``.

Run on a CUDA machine after tests/gpu/run_gpu_tests.sh has installed the packages:
``PYTHONPATH=/tmp/ome-arrow-gpu-site python3 tests/gpu/bench_cupy.py [block MiB]``.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import cupy as cp
import numpy as np

from ome_arrow_core import OMEArrow, TensorView
from ome_arrow_cupy import export


def _time(fn: Callable[[], Any], repeat: int = 7) -> float:
    fn()
    cp.cuda.Device().synchronize()
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        cp.cuda.Device().synchronize()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def _report(name: str, view: TensorView) -> None:
    mib = view.nbytes / 2**20
    ours = _time(view.to_cupy)
    plain = _time(lambda: cp.asarray(view.to_numpy(contiguous=True)))
    print(
        f"{name:<28} {mib:7.1f} MiB  to_cupy {ours * 1e3:7.2f} ms ({mib / 1024 / ours:5.2f} GiB/s)  "
        f"cupy.asarray {plain * 1e3:7.2f} ms ({mib / 1024 / plain:5.2f} GiB/s)"
    )


def _ceilings(nbytes: int) -> None:
    """Raw pinned-to-device DMA and a one-thread host memcpy of ``nbytes``, for reference."""
    src = np.frombuffer(cp.cuda.alloc_pinned_memory(nbytes), np.uint8, nbytes)
    src[:] = 1
    dev = cp.empty(nbytes, np.uint8)
    stream = cp.cuda.Stream(non_blocking=True)
    dma = _time(lambda: (dev.set(src, stream=stream), stream.synchronize()))
    host = np.ones(nbytes, np.uint8)
    cpy = _time(lambda: np.copyto(src, host))
    gib = nbytes / 2**30
    print(f"ceilings: pinned DMA {gib / dma:5.2f} GiB/s, host memcpy (1 thread) {gib / cpy:5.2f} GiB/s")


def main() -> None:
    if len(sys.argv) > 1:  # block size in MiB, to compare
        export.BLOCK_BYTES = int(float(sys.argv[1]) * 2**20)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 4096, size=(4, 16, 4, 1024, 1024), dtype=np.uint16)  # 512 MiB TCZYX
    image = OMEArrow(pixels, "TCZYX")
    print(
        cp.cuda.runtime.getDeviceProperties(0)["name"].decode(),
        "cupy",
        cp.__version__,
        f"block {export.BLOCK_BYTES / 2**20:g} MiB x {export.BUFFERS}",
    )
    _ceilings(pixels.nbytes)
    _report("TZCYX (contiguous)", image.tensor_view(layout="TZCYX"))
    _report("one plane CYX", image.tensor_view(t=0, z=0))
    _report("ZYXC (strided)", image.tensor_view(t=0, z=slice(0, 8), layout="ZYXC"))
    _report("roi 512x512 all t,z", image.tensor_view(roi=(100, 100, 512, 512)))


if __name__ == "__main__":
    main()
