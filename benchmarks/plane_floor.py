"""Where a planned box read's time goes: kernel copy, checksum, placement copy and Python, against memcpy.

    python benchmarks/plane_floor.py [--rounds 200] [--size 1024] [--chunks 256]   # --chunks 256x1024: y by x
    python benchmarks/plane_floor.py --size 2048 --hot 20     # each step 20 times in a row per round: hot caches

Image: 1x2x4xSxS uint16 of camera-like noise written with our defaults but the chunk edge, audited. For one full
plane and the whole image, interleaved round by round in one process, process CPU time (median, ms) of:

- ``api``: the public call, ``tensor_view(...).to_numpy()`` of the plane, ``to_numpy()`` of the whole image (a
  planned read after the first two; one thread, as every step);
- ``read``: ``BoxPlan.read(verify=True)`` (what a planned ``to_numpy`` runs; one thread), and ``no sums``: the same
  with ``verify=False`` (heads and lengths still checked); with ``ome-arrow-kernels`` installed these run its C
  kernel (per chunk a ``preadv``, its checks and its rows' copies in C), and ``read py`` / ``no sums py`` / ``api
  py`` are the same without it (a second plan of the box without the kernel's items; ``api py`` sets
  ``OME_ARROW_KERNELS=0`` around its call);
- ``kernel``: the plan's ``os.preadv`` calls alone, into this thread's scratch buffer (the kernel's copy from the
  page cache: no check, no placement); ``+hash``: each page's XXH3 over the scratch buffer too; ``+place``: the
  units' slice assignments into a fresh output too (the same steps as ``read`` with the least Python: its floor);
- ``rows hash`` (with the kernel): each chunk's XXH3 taken of its rows where they lie in the output (``hash_rows``,
  one streaming update per row), what checking chunks in place costs after copying them there unchecked (from a
  mapping, say): against ``+hash``'s one XXH3 per contiguous page it says why chunks are checked before placing;
- ``flat``: the box's bytes as one contiguous ``preadv`` into a fresh buffer plus one XXH3 of it: the floor of a
  layout whose chunks are runs of the output (read straight into it, hashed there; for such a plan, e.g.
  ``--chunks 256x1024``, ``flat`` is the floor and ``+place`` the scratch route its straight reads avoid);
- ``memcpy``: numpy's copy of the same pixels into fresh memory (compare_peers.py's memcpy); ``memcpy reused``: the
  same copy into an array made once (no page faults: the copy's floor).

Each round times every step once, in turn (caches as a mixed workload leaves them), or with ``--hot N`` N times in a
row (the median of those blocks: caches as a loop over one read leaves them). Prints each step, its share of ``read``
and its ratios to memcpy and to memcpy reused.
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
from box_plans_ab import plans

from ome_arrow_core import OMEArrow
from ome_arrow_core.buffers import SCRATCH_BYTES, arrow_empty
from ome_arrow_core.selection import Selection
from ome_arrow_core.typed_chunk.box_native import ENV, kernels


def steps(plan: Any, hash_: bool, place: bool) -> Callable[[], Any]:
    """The plan's reads (and its checksums, its placement) with the least Python: one thread, no head checks."""
    import ome_arrow_core.typed_chunk.box_plans as bp

    view, views, groups = plan._views()
    junk = view[SCRATCH_BYTES - bp.GAP_BYTES :]
    fd = plan.frag.fileno()
    fn = plan.opened.sums.hasher
    units = [
        (
            first,
            [view[at : at + n] if at >= 0 else junk[:n] for at, n in iovs],
            [view[at + 10 : at + n] for _, n, _, _, _, at in checks],
            [(dst, views[source])] if group < 0 else list(zip(plan.dsts[u], groups[group])),
        )
        for u, (first, iovs, checks, dst, _, group, source, _) in enumerate(plan.units)
    ]
    preadv = os.preadv

    def run() -> None:
        out = arrow_empty(plan.shape, plan.dtype)[0] if place else None
        for first, iov, pages, copies in units:
            preadv(fd, iov, first)
            if hash_:
                for p in pages:
                    fn(p)
            if out is not None:
                for dst, src in copies:
                    out[dst] = src

    return run


def flat(plan: Any) -> Callable[[], Any]:
    """One preadv of the box's bytes (from its first page) into a fresh buffer, and one XXH3 of them."""
    fd, first, fn = plan.frag.fileno(), plan.items[0][0], plan.opened.sums.hasher

    def run() -> None:
        out = arrow_empty((plan.nbytes,), np.dtype(np.uint8))[0]
        os.preadv(fd, [out.data], first)
        fn(out.data)

    return run


def rows_hash(plan: Any, out: np.ndarray) -> Callable[[], Any]:
    """XXH3 of each chunk's rows where they lie in the output (the kernel's ``hash_rows``: a streaming XXH3 per
    chunk, one update per row): the cost of checking chunks in place, after copying them there unchecked."""
    kern = kernels()
    items = [plan.native.fields[i] for i in range(len(plan.native.fields))]
    buf = out.reshape(-1).view(np.uint8)

    def run() -> None:
        for it in items:
            kern.hash_rows(it, buf)

    return run


def python_only(fn: Callable[[], Any]) -> Any:
    """``fn()`` with the C kernel turned off."""
    os.environ[ENV] = "0"
    try:
        return fn()
    finally:
        del os.environ[ENV]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--chunks", default="256", help="chunk edge, or YxX")
    p.add_argument("--hot", type=int, default=1, help="calls of each step in a row per round (timed together)")
    args = p.parse_args()
    import ome_arrow_core.typed_chunk.box_plans as bp

    bp.spare_core = lambda: False  # one thread: CPU time is the work
    with tempfile.TemporaryDirectory(prefix="plane_floor_") as tmp:
        s = args.size
        arr = L.camera_image((1, 2, 4, s, s))
        path = Path(tmp) / "ours.ome.parquet"
        cy, _, cx = args.chunks.partition("x")
        OMEArrow(arr).export("parquet", path, chunk_shape=(int(cy), int(cx or cy)))
        img = OMEArrow.scan(path)
        img.to_numpy()  # audited
        full = Selection.full(img._source.meta.sizes)
        cases = {
            f"one full {s}x{s} plane": ((0, 1, 2, slice(None), slice(None)), full.select(c=range(1, 2), z=range(2, 3))),
            "the whole image": ((slice(None),) * 5, full),
        }
        apis: dict[str, Callable[[], Any]] = {
            f"one full {s}x{s} plane": lambda: img.tensor_view(t=0, c=1, z=2, layout="YX").to_numpy(),
            "the whole image": lambda: img.to_numpy(layout="TCZYX"),
        }
        print(f"{args.rounds} rounds of {args.hot}, 1x2x4x{s}x{s} uint16, chunks {args.chunks}, load {os.getloadavg()}")
        print("case | step | CPU ms | share of read | / memcpy | / memcpy reused")
        for name, (idx, sel) in cases.items():
            plan = plans(img, sel, bp)
            np.testing.assert_array_equal(plan.read(True), sel.apply(arr.transpose(0, 2, 1, 3, 4)))
            for _ in range(2):  # its second read plans it
                np.testing.assert_array_equal(apis[name](), arr[idx])
            kept = np.empty_like(arr[idx])
            py = plans(img, sel, bp)
            py.native = None  # the Python steps
            api = apis[name]
            fns: dict[str, Callable[[], Any]] = {
                "api": api,
                "read": lambda: plan.read(True),
                "no sums": lambda: plan.read(False),
            }
            if plan.native is not None and kernels() is not None:
                fns["api py"] = lambda: python_only(api)
                fns["read py"] = lambda: py.read(True)
                fns["no sums py"] = lambda: py.read(False)
                calls = plan.native.calls
                np.testing.assert_array_equal(plan.read(True), py.read(True))
                assert plan.native.calls > calls, "the kernel was not called"
            if plan.native is not None and kernels() is not None:
                fns["rows hash"] = rows_hash(plan, kept)
            fns |= {
                "kernel": steps(plan, False, False),
                "+hash": steps(plan, True, False),
                "+place": steps(plan, True, True),
                "flat": flat(plan),
                "memcpy": lambda: arr[idx].copy(),
                "memcpy reused": lambda: np.copyto(kept, arr[idx]),
            }
            times: dict[str, list[float]] = {k: [] for k in fns}
            order = list(fns.items())
            for r in range(args.rounds):
                for k, fn in order if r % 2 else order[::-1]:
                    c0 = time.process_time()
                    for _ in range(args.hot):
                        fn()
                    times[k].append((time.process_time() - c0) * 1e3 / args.hot)
            med = {k: float(np.median(v)) for k, v in times.items()}
            for k, v in med.items():
                print(
                    f"{name} | {k} | {v:.3f} | {v / med['read']:.2f} | {v / med['memcpy']:.2f} | "
                    f"{v / med['memcpy reused']:.2f}",
                    flush=True,
                )
        print(f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
