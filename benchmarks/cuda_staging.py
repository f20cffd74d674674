"""Where a host-to-GPU copy of one plane spends its time: the staging primitives under ``to_dlpack(device="cuda")``.

    python benchmarks/cuda_staging.py [--mib 8] [--repeats 15] [--json-out out.json]

Each row is one way to move the same C-contiguous ``--mib`` MiB uint16 array (in pageable host memory, warm) to a
device buffer made once, timed to the device's synchronisation, medians of ``--repeats`` interleaved rounds:

- host copies alone: into pageable memory made once, into memory allocated anew each run (its page faults), and
  into pinned memory with 1..16 threads (numpy drops the GIL), the gather's ceiling;
- a pinned buffer to the device (the ceiling "x pinned" divides by), ``cupy.asarray`` (the driver's own staging)
  and ``cudaHostRegister`` of the source (pin the pages in place, copy, unpin: no host copy);
- pipelines: T gather threads fill pinned blocks of B bytes in rotation while earlier blocks are copied (the
  CuPy backend's scheme), a copy queued as each block is gathered, each buffer reused after its copy's event;
- ours: ``export_cupy`` of an in-memory view as installed.

Without a CUDA device (CuPy) it prints why and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved, table


def _split(n: int, parts: int) -> list[slice]:
    step = -(-n // parts)
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--json-out")
    ap.add_argument("--profile", action="store_true", help="then profile 50 runs of ours (cProfile, top 20)")
    args = ap.parse_args()
    try:
        import cupy as cp

        if cp.cuda.runtime.getDeviceCount() == 0:
            raise RuntimeError("cupy sees 0 devices")
    except Exception as exc:
        print(f"no CUDA device: staging cases skipped ({type(exc).__name__}: {exc})")
        return 0

    from ome_arrow_core import OMEArrow

    nbytes = args.mib << 20
    side = int((nbytes // 2) ** 0.5)
    src = np.random.default_rng(0).integers(0, 4096, (side, nbytes // 2 // side), dtype=np.uint16)
    nbytes = src.nbytes
    flat = src.reshape(-1).view(np.uint8)
    dev = cp.empty(nbytes, dtype=np.uint8)
    pageable = np.empty_like(flat)
    pinned_mem = cp.cuda.alloc_pinned_memory(nbytes)
    pinned = np.frombuffer(pinned_mem, np.uint8, nbytes)
    stream = cp.cuda.Stream(non_blocking=True)
    pools = {k: ThreadPoolExecutor(k) for k in (2, 4, 8, 16)}
    cpus = os.cpu_count() or 1

    def host_threads(k: int) -> Callable[[], None]:
        parts = _split(nbytes, k)

        def run() -> None:
            if k == 1:
                np.copyto(pinned, flat)
            else:
                list(pools[k].map(lambda s: np.copyto(pinned[s], flat[s]), parts))

        return run

    def h2d(buf: np.ndarray) -> Callable[[], None]:
        def run() -> None:
            dev.data.copy_from_host_async(buf.ctypes.data, nbytes, stream)
            stream.synchronize()

        return run

    def registered() -> None:
        ptr = flat.ctypes.data
        cp.cuda.runtime.hostRegister(ptr, nbytes, 0)
        try:
            dev.data.copy_from_host_async(ptr, nbytes, stream)
            stream.synchronize()
        finally:
            cp.cuda.runtime.hostUnregister(ptr)

    def pipeline(threads: int, block: int) -> Callable[[], None]:
        parts = _split(nbytes, max(1, -(-nbytes // block)))
        nbuf = min(len(parts), threads + 2)
        bufs = [np.frombuffer(cp.cuda.alloc_pinned_memory(block), np.uint8, block) for _ in range(nbuf)]
        events = [cp.cuda.Event(block=False, disable_timing=True) for _ in range(nbuf)]
        pool = pools.get(threads)

        def gather(k: int) -> np.ndarray:
            s = parts[k]
            out = bufs[k % nbuf][: s.stop - s.start]
            np.copyto(out, flat[s])
            return out

        def run() -> None:
            if pool is None:
                futs: list[Any] = []
            else:
                futs = [pool.submit(gather, k) for k in range(nbuf)]
            for k, s in enumerate(parts):
                if pool is None:
                    if k >= nbuf:
                        events[k % nbuf].synchronize()  # its buffer's last copy is done
                    staged = gather(k)
                else:
                    staged = futs[k].result()
                cp.cuda.runtime.memcpyAsync(dev.data.ptr + s.start, staged.ctypes.data, staged.nbytes, 1, stream.ptr)
                events[k % nbuf].record(stream)
                nxt = k + nbuf
                if pool is not None and nxt < len(parts):
                    ev = events[k % nbuf]

                    def refill(j: int = nxt, e: Any = ev) -> np.ndarray:
                        e.synchronize()
                        return gather(j)

                    futs.append(pool.submit(refill))
            stream.synchronize()

        return run

    view = OMEArrow(src.reshape(1, 1, 1, *src.shape)).tensor_view(t=0, z=0, c=0)

    def ours() -> None:
        cp.from_dlpack(view.to_dlpack(device="cuda"))
        cp.cuda.Device(0).synchronize()

    def fresh() -> None:
        out = np.empty_like(flat)
        np.copyto(out, flat)

    cases: list[tuple[str, Callable[[], None]]] = [
        ("host: pageable -> pageable (made once), 1 thread", lambda: np.copyto(pageable, flat)),
        ("host: pageable -> new np.empty (page faults), 1 thread", fresh),
    ]
    cases += [(f"host: pageable -> pinned, {k} threads", host_threads(k)) for k in (1, 2, 4, 8, 16) if k <= cpus]
    cases += [
        ("device: pinned -> device (ceiling)", h2d(pinned)),
        ("device: pageable -> device (driver staging)", h2d(pageable)),
        ("device: cupy.asarray(pageable)", lambda: (cp.asarray(flat), stream.synchronize())),
        ("device: hostRegister + copy + unregister", registered),
    ]
    for threads in (0, 4, 8):
        for block in (1 << 20, 2 << 20, 512 << 10):
            if threads <= cpus:
                cases.append((f"pipeline: {threads} threads, {block >> 10} KiB blocks", pipeline(threads, block)))
    cases.append(("ours: to_dlpack(device='cuda') of an in-memory view", ours))
    for _, fn in cases:  # warm every path once (pools, pinned memory, streams)
        fn()
    stats = interleaved([fn for _, fn in cases], args.repeats)
    ceiling = stats[[n for n, _ in cases].index("device: pinned -> device (ceiling)")]["median_ms"]
    rows = [("case", "ms", "cpu ms", "GB/s", "x pinned")]
    out = []
    for (name, _), st in zip(cases, stats):
        ms = st["median_ms"]
        rows.append((name, f"{ms:.3f}", f"{st['cpu_ms']:.3f}", f"{nbytes / ms / 1e6:.2f}", f"{ceiling / ms:.2f}"))
        out.append({"case": name, **st, "bytes": nbytes})
    print(f"{nbytes / 2**20:.1f} MiB, {cpus} CPUs, {cp.cuda.runtime.getDeviceProperties(0)['name'].decode()}")
    print(table(rows))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=1))
    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        for _ in range(50):
            ours()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
