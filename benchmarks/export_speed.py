"""Per-call cost of to_torch() and to_jax(), as ratios against torch and JAX on the same pixels, in one run.

    python benchmarks/export_speed.py [--rounds 30] [--json-out out.json]
    python benchmarks/export_speed.py --quick        # seconds: fewer rounds

Views of an in-memory 2x2048x2048 uint16 image (Arrow memory): a 64x64 and a 256x256 ROI crop of one plane
(strided: rows 4096 bytes apart) and a whole 2048x2048 plane (C-contiguous, 64-byte aligned). The peers get
``a``: the same pixels as a writable numpy array in the same layout (a crop of a 64-byte aligned plane for the
crops, the aligned plane itself for the plane), what a user holding numpy would hand them.

- zero-copy torch: ``to_torch(mode="arrow")`` against ``torch.from_numpy(a)`` and ``torch.from_dlpack(a)``;
- the default torch export (a private copy, so in-place edits never reach the image) against
  ``torch.from_numpy(a.copy())`` (numpy's copy handed to torch) and against ``torch.from_numpy(a)``;
- ``to_jax()`` against ``jnp.from_dlpack(c)`` (``c``: an aligned C-order copy of ``a`` made beforehand, so
  JAX imports it without copying: the zero-copy floor), ``jnp.from_dlpack(np.ascontiguousarray(a))`` (JAX's
  DLPack import refuses strided arrays, so a crop needs a copy first), ``jax.device_put(a)`` and
  ``jnp.asarray(a)`` (JAX copies a strided ``a``, as it copies our strided crops; the plane is zero-copy).

Each case is the best per-call µs over ``--rounds`` rounds; in every round each case runs one batch in turn,
so a busy machine slows ours and its peers alike. The clock is this process's CPU time (all its threads) by
default: on a shared machine wall time mostly measures the waits for a core; ``--clock wall`` for wall time.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

Fn = Callable[[], Any]

#: (name, ROI (x, y, w, h) or None for the whole plane, torch calls per batch, JAX calls per batch).
VIEWS: tuple[tuple[str, tuple[int, int, int, int] | None, int, int], ...] = (
    ("64x64 crop", (100, 200, 64, 64), 2000, 100),
    ("256x256 crop", (100, 200, 256, 256), 1000, 100),
    ("1024x1024 crop", (100, 200, 1024, 1024), 100, 20),
    ("2048x2048 plane", None, 200, 100),
)


def best_us(cases: dict[str, tuple[Fn, int]], rounds: int, clock: Callable[[], float]) -> dict[str, float]:
    """Best per-call µs of each case over ``rounds`` rounds, each timing one batch of every case in turn."""
    best = {k: float("inf") for k in cases}
    for fn, _ in cases.values():
        fn()
    for _ in range(rounds):
        for name, (fn, number) in cases.items():
            t0 = clock()
            for _ in range(number):
                fn()
            best[name] = min(best[name], (clock() - t0) / number * 1e6)
    return best


def aligned_like(arr: np.ndarray) -> np.ndarray:
    """A writable, 64-byte aligned C-order copy of ``arr`` (JAX imports such memory without copying)."""
    import pyarrow as pa

    buf = pa.allocate_buffer(arr.nbytes)
    out = np.frombuffer(buf, dtype=arr.dtype).reshape(arr.shape)
    out[...] = arr
    return out


def view_cases(
    name: str, roi: tuple[int, int, int, int] | None, n_torch: int, n_jax: int, rounds: int, clock: Callable[[], float]
) -> list[dict]:
    """Rows (view, case, ours, µs, peer, peer µs) for one view."""
    import jax
    import jax.numpy as jnp
    import torch

    from ome_arrow_core import OMEArrow

    pixels = np.random.default_rng(0).integers(0, 4096, size=(2, 2048, 2048), dtype=np.uint16)
    img = OMEArrow(pixels, "CYX")
    kw: dict[str, Any] = {"c": 1, "layout": "YX"}
    plane = aligned_like(pixels[1])
    if roi is not None:
        kw["roi"] = roi
        x, y, w, h = roi
        a = plane[y : y + h, x : x + w]
    else:
        a = plane
    view = img.tensor_view(**kw)
    c = aligned_like(a)  # JAX imports only compact strides: its zero-copy baseline is a C-order copy, made untimed
    np.testing.assert_array_equal(view.to_numpy(), a)
    ptr = view.to_numpy().ctypes.data
    assert view.to_torch(mode="arrow").data_ptr() == ptr and view.to_torch().data_ptr() != ptr
    cases: dict[str, tuple[Fn, int]] = {
        "to_torch(mode='arrow')": (lambda: view.to_torch(mode="arrow"), n_torch),
        "to_torch()": (lambda: view.to_torch(), n_torch),
        "torch.from_numpy(a)": (lambda: torch.from_numpy(a), n_torch),
        "torch.from_dlpack(a)": (lambda: torch.from_dlpack(a), n_torch),
        "torch.from_numpy(a.copy())": (lambda: torch.from_numpy(a.copy()), n_torch),
        "to_jax()": (lambda: view.to_jax(), n_jax),
        "jnp.from_dlpack(c)": (lambda: jnp.from_dlpack(c), n_jax),
        "jnp.from_dlpack(contig(a))": (lambda: jnp.from_dlpack(np.ascontiguousarray(a)), n_jax),
        "jax.device_put(a)": (lambda: jax.device_put(a), n_jax),
        "jnp.asarray(a)": (lambda: jnp.asarray(a), n_jax),
    }
    t = best_us(cases, rounds, clock)
    pairs = (
        ("to_torch(mode='arrow')", "torch.from_numpy(a)"),
        ("to_torch(mode='arrow')", "torch.from_dlpack(a)"),
        ("to_torch()", "torch.from_numpy(a.copy())"),
        ("to_torch()", "torch.from_numpy(a)"),
        ("to_jax()", "jnp.from_dlpack(c)"),
        ("to_jax()", "jnp.from_dlpack(contig(a))"),
        ("to_jax()", "jax.device_put(a)"),
        ("to_jax()", "jnp.asarray(a)"),
    )
    return [
        {"view": name, "case": ours, "ours_us": t[ours], "peer": peer, "peer_us": t[peer], "ratio": t[ours] / t[peer]}
        for ours, peer in pairs
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--quick", action="store_true", help="5 rounds")
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="process CPU time (default) or wall time")
    p.add_argument("--json-out", type=Path)
    args = p.parse_args(argv)
    rounds = 5 if args.quick else args.rounds
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    rows: list[dict] = []
    print(f"{'view':16s} {'case':24s} {'ours µs':>9s}  {'peer':28s} {'peer µs':>9s} {'ratio':>7s}")
    for name, roi, n_torch, n_jax in VIEWS:
        for r in view_cases(name, roi, n_torch, n_jax, rounds, clock):
            rows.append(r)
            print(
                f"{r['view']:16s} {r['case']:24s} {r['ours_us']:9.2f}  {r['peer']:28s} {r['peer_us']:9.2f} "
                f"{r['ratio']:7.2f}"
            )
    if args.json_out:
        args.json_out.write_text(json.dumps({"rounds": rounds, "clock": args.clock, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
