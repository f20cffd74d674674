"""Export overhead and first-plane start-up, as ratios against torch, JAX and tifffile measured in the same run.

    python benchmarks/export_overhead.py [--rounds 40] [--processes 7] [--json-out out.json]
    python benchmarks/export_overhead.py --quick      # a few seconds: fewer rounds and processes

Per-call cases (µs; each the best of ``--rounds`` batches, every case's batch interleaved with its peer's in every
round, so a busy machine slows both alike): an Arrow-backed view of a 64x64 uint16 plane (and of a 2048x2048 one,
for what the torch copy costs at size), exported

- to torch: ``to_torch(mode="arrow")`` and ``torch.from_dlpack(view.to_dlpack(), copy=False)`` (zero-copy, asked
  for) against ``torch.from_numpy`` of a numpy array; ``to_torch()`` and ``torch.from_dlpack(view)`` (the safe
  defaults: a private copy) against ``torch.from_numpy(np.array(a))`` (a numpy copy handed to torch);
- to numpy: ``np.from_dlpack(view.to_dlpack())`` against ``np.from_dlpack`` of a numpy array;
- to JAX: ``to_jax()`` against ``jnp.from_dlpack`` of the same pixels in a writable numpy array (64-byte aligned,
  so JAX imports it without copying, as it does ours) and of a plain ``np.array`` copy.

Fresh processes (ms, median over ``--processes`` runs after one warm-up run each; bytecode cached as an installed
package has it): ``import ome_arrow_core`` + scan + first plane of a 1x2x4x512x512 uint16 dataset against
``import tifffile`` + ``imread(key=0)`` of the same image as an OME-TIFF, and the import alone, each timed from the
first line of the process (numpy's import included for all, as in compare_peers.py); wall and CPU time are both
reported (CPU time is steadier on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import fresh_env

Fn = Callable[[], Any]


def best_us(cases: dict[str, tuple[Fn, int]], rounds: int) -> dict[str, float]:
    """Best per-call µs of each case: ``rounds`` rounds, each timing one batch of every case in turn."""
    best = {k: float("inf") for k in cases}
    for fn, _ in cases.values():
        fn()
    for _ in range(rounds):
        for name, (fn, number) in cases.items():
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / number * 1e6)
    return best


def export_cases(rounds: int) -> list[tuple[str, float, str, float]]:
    """Rows (case, ours µs, peer, peer µs) of the per-call export cases."""
    import torch

    from ome_arrow_core import OMEArrow

    rows: list[tuple[str, float, str, float]] = []
    for size, number in ((64, 2000), (2048, 20)):
        img = OMEArrow(np.arange(2 * size * size, dtype=np.uint16).reshape(2, size, size), "CYX")
        view = img.tensor_view(c=1, layout="YX")
        ro = view.to_numpy()
        a = np.array(ro)
        assert view.to_torch(mode="arrow").data_ptr() == ro.ctypes.data and view.to_torch().data_ptr() != ro.ctypes.data
        t = best_us(
            {
                "to_torch(mode='arrow')": (lambda: view.to_torch(mode="arrow"), number),
                "torch.from_dlpack(view.to_dlpack(), copy=False)": (
                    lambda: torch.from_dlpack(view.to_dlpack(), copy=False),
                    number,
                ),
                "torch.from_numpy(a)": (lambda: torch.from_numpy(a), number),
                "to_torch()": (lambda: view.to_torch(), number),
                "torch.from_dlpack(view)": (lambda: torch.from_dlpack(view), number),
                "torch.from_numpy(np.array(a))": (lambda: torch.from_numpy(np.array(a)), number),
                "np.from_dlpack(view.to_dlpack())": (lambda: np.from_dlpack(view.to_dlpack()), number),
                "np.from_dlpack(a)": (lambda: np.from_dlpack(a), number),
            },
            rounds,
        )
        tag = f"{size}x{size} uint16"
        for ours, peer in (
            ("to_torch(mode='arrow')", "torch.from_numpy(a)"),
            ("torch.from_dlpack(view.to_dlpack(), copy=False)", "torch.from_numpy(a)"),
            ("to_torch()", "torch.from_numpy(np.array(a))"),
            ("torch.from_dlpack(view)", "torch.from_numpy(np.array(a))"),
            ("to_torch()", "torch.from_numpy(a)"),
            ("np.from_dlpack(view.to_dlpack())", "np.from_dlpack(a)"),
        ):
            rows.append((f"{ours} [{tag}]", t[ours], peer, t[peer]))
    rows += jax_cases(rounds)
    return rows


def jax_cases(rounds: int) -> list[tuple[str, float, str, float]]:
    """``to_jax()`` against ``jnp.from_dlpack`` of aligned (zero-copy) and plain numpy arrays."""
    try:
        import jax.numpy as jnp
    except ImportError:
        return []
    import pyarrow as pa

    from ome_arrow_core import OMEArrow

    rows = []
    for size, number in ((64, 200), (2048, 50)):
        img = OMEArrow(np.arange(2 * size * size, dtype=np.uint16).reshape(2, size, size), "CYX")
        view = img.tensor_view(c=1, layout="YX")
        buf = pa.allocate_buffer(size * size * 2)  # 64-byte aligned and writable: JAX takes it without copying
        aligned = np.frombuffer(buf, dtype=np.uint16).reshape(size, size)
        aligned[...] = view.to_numpy()
        plain = np.array(view.to_numpy())
        t = best_us(
            {
                "to_jax()": (lambda: view.to_jax(), number),
                "jnp.from_dlpack(aligned)": (lambda: jnp.from_dlpack(aligned), number),
                "jnp.from_dlpack(np.array)": (lambda: jnp.from_dlpack(plain), number),
            },
            rounds,
        )
        tag = f"{size}x{size} uint16"
        rows.append((f"to_jax() [{tag}]", t["to_jax()"], "jnp.from_dlpack(aligned)", t["jnp.from_dlpack(aligned)"]))
        rows.append((f"to_jax() [{tag}]", t["to_jax()"], "jnp.from_dlpack(np.array)", t["jnp.from_dlpack(np.array)"]))
    return rows


_CHILD = """
import time, json
t0, c0 = time.perf_counter(), time.process_time()
import numpy
{body}
print(json.dumps({{"ms": (time.perf_counter() - t0) * 1e3, "cpu_ms": (time.process_time() - c0) * 1e3}}))
"""

FIRST_PLANE = {
    "import ome_arrow_core + first plane": (
        "from ome_arrow_core import OMEArrow\n"
        "p = OMEArrow.scan({ours!r}).tensor_view(t=0, c=0, z=0, layout='YX').to_numpy()\n"
        "assert int(p.sum(dtype='int64')) == {checksum}"
    ),
    "import tifffile + first plane": (
        "import tifffile\np = tifffile.imread({tiff!r}, key=0)\nassert int(p.sum(dtype='int64')) == {checksum}"
    ),
    "import ome_arrow_core": "import ome_arrow_core",
}


def first_plane_cases(tmp: Path, processes: int) -> dict[str, dict[str, float]]:
    """Median wall and CPU ms of each FIRST_PLANE body in fresh processes."""
    from ome_arrow_core import OMEArrow

    a = np.random.default_rng(0).integers(0, 4096, size=(1, 2, 4, 512, 512), dtype=np.uint16)
    ours, tiff = tmp / "img.ome.parquet", tmp / "img.ome.tif"
    OMEArrow(a, "TCZYX").export("parquet", ours)
    have_tiff = True
    try:
        import tifffile

        tifffile.imwrite(tiff, a, ome=True, metadata={"axes": "TCZYX"})
    except ImportError:
        have_tiff = False
    env = fresh_env(PYTHONPYCACHEPREFIX=str(tmp / "pycache"))
    out: dict[str, dict[str, float]] = {}
    for name, body in FIRST_PLANE.items():
        if "tifffile" in name and not have_tiff:
            continue
        code = _CHILD.format(
            body=body.format(ours=str(ours), tiff=str(tiff), checksum=int(a[0, 0, 0].sum(dtype=np.int64)))
        )
        runs = []
        for i in range(processes + 1):
            done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
            if i:  # the first run compiles bytecode and warms the page cache
                runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        out[name] = {k: statistics.median(r[k] for r in runs) for k in ("ms", "cpu_ms")}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--processes", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="5 rounds, 2 processes")
    p.add_argument("--json-out", type=Path)
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.processes = 5, 2
    report: dict[str, Any] = {"exports": [], "first_plane": {}}
    print(f"{'case':62s} {'ours µs':>9s}  {'peer':34s} {'peer µs':>9s} {'ratio':>7s}")
    for case, ours, peer, theirs in export_cases(args.rounds):
        print(f"{case:62s} {ours:9.2f}  {peer:34s} {theirs:9.2f} {ours / theirs:7.2f}")
        report["exports"].append({"case": case, "ours_us": ours, "peer": peer, "peer_us": theirs})
    with tempfile.TemporaryDirectory() as d:
        firsts = first_plane_cases(Path(d), args.processes)
    report["first_plane"] = firsts
    print()
    tif = firsts.get("import tifffile + first plane")
    for name, r in firsts.items():
        ratio = (
            ""
            if tif is None
            else f"  ratio vs tifffile: wall {r['ms'] / tif['ms']:.2f}, cpu {r['cpu_ms'] / tif['cpu_ms']:.2f}"
        )
        print(f"{name:40s} wall {r['ms']:7.1f} ms  cpu {r['cpu_ms']:7.1f} ms{ratio}")
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
