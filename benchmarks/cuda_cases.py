"""CUDA cases checked against numpy, then timed interleaved: the device, a case, the timing and the report.

The machinery of ``peers_cuda.py`` (issue 12's plane and tile-stream cases) and ``cuda_views.py``: ``find_device``
says whether CuPy or torch sees a device, ``Gpu`` holds the libraries that reach it, a ``Case`` is one named run
with the arrays it must deliver, ``time_cases`` checks each case's pixels once and times them in shuffled rounds,
and ``report`` prints the rows with the goal (ours >= ``GOAL`` x a pinned buffer's copy) marked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved, table

__all__ = ["GOAL", "SKIP", "Case", "Fn", "Gpu", "find_device", "interleaved", "report", "time_cases"]

SKIP = "no CUDA device: CUDA cases skipped"
GOAL = 0.8
Fn = Callable[[], Any]


def find_device() -> tuple[str | None, str]:
    """(the GPU's name, "") when CuPy or torch sees a CUDA device; else (None, why not)."""
    why = []
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            return str(cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()), ""
        why.append("cupy sees 0 devices")
    except ImportError:
        why.append("cupy is not installed")
    except Exception as exc:  # CUDARuntimeError without a driver
        why.append(f"cupy: {type(exc).__name__}: {exc}")
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0), ""
        why.append(f"torch {torch.__version__} sees no CUDA device")
    except ImportError:
        why.append("torch is not installed")
    return None, "; ".join(why)


class Gpu:
    """The libraries on this machine that can reach the device (CuPy and/or torch), and what the cases need."""

    def __init__(self) -> None:
        self.cp: Any = None
        self.torch: Any = None
        with contextlib.suppress(Exception):
            import cupy

            if cupy.cuda.runtime.getDeviceCount() > 0:
                self.cp = cupy
        with contextlib.suppress(ImportError):
            import torch

            if torch.cuda.is_available():
                self.torch = torch

    def sync(self) -> None:
        if self.cp is not None:
            self.cp.cuda.Device(0).synchronize()
        if self.torch is not None:
            self.torch.cuda.synchronize()

    def take(self, obj: Any) -> Any:
        """Ours: the consumer's import of a DLPack device array (CuPy's, else torch's)."""
        return self.cp.from_dlpack(obj) if self.cp is not None else self.torch.from_dlpack(obj)

    def host(self, obj: Any) -> np.ndarray:
        """A device array (CuPy's or torch's) copied back to numpy."""
        if self.cp is not None and isinstance(obj, self.cp.ndarray):
            return np.asarray(self.cp.asnumpy(obj))
        return np.asarray(obj.cpu().numpy())

    def pinned_copy(self, nbytes: int) -> Fn:
        """One copy of ``nbytes`` from a pinned buffer to a device buffer (both made once), synchronised."""
        if self.torch is not None:
            src = self.torch.ones(nbytes, dtype=self.torch.uint8, pin_memory=True)
            dst = self.torch.empty(nbytes, dtype=self.torch.uint8, device="cuda")
            return lambda: (dst.copy_(src, non_blocking=True), self.torch.cuda.synchronize())
        cp = self.cp
        src = np.frombuffer(cp.cuda.alloc_pinned_memory(nbytes), np.uint8, nbytes)
        src[:] = 1
        dev, stream = cp.empty(nbytes, np.uint8), cp.cuda.Stream(non_blocking=True)
        return lambda: (dev.set(src, stream=stream), stream.synchronize())


@dataclasses.dataclass
class Case:
    group: str  # "plane" or "stream"
    name: str
    run: Fn  # returns the device arrays (or one), synchronised
    expected: list[np.ndarray] | None  # None: a host-only or ceiling case (nothing to check)


def _checked(gpu: Gpu, case: Case) -> None:
    got = case.run()
    if case.expected is None:
        return
    got = got if isinstance(got, list) else [got]
    if len(got) != len(case.expected):
        raise AssertionError(f"{case.name}: {len(got)} arrays, expected {len(case.expected)}")
    for i, (g, e) in enumerate(zip(got, case.expected)):
        h = gpu.host(g)
        if h.shape != e.shape or not np.array_equal(h, e):
            raise AssertionError(f"{case.name}: array {i} differs from numpy's (shape {h.shape}, {e.shape})")


def time_cases(gpu: Gpu, cases: list[Case], nbytes: dict[str, int], repeats: int) -> list[dict[str, Any]]:
    """Check each of ``cases`` (its warm-up run), then time them interleaved; a row a case, its GB/s counting the
    ``nbytes`` of its group and "x pinned" dividing by the group's ceiling case."""
    for case in cases:
        _checked(gpu, case)
    rows: list[dict[str, Any]] = []
    for c, m in zip(cases, interleaved([c.run for c in cases], repeats)):
        n = nbytes[c.group]
        rows.append({"group": c.group, "case": c.name, "bytes": n, **m, "gbps": n / m["median_ms"] / 1e6})
    for group in nbytes:
        ceiling = next((r["gbps"] for r in rows if r["group"] == group and r["case"].startswith("ceiling")), None)
        for r in rows:
            if r["group"] == group:
                r["x_pinned"] = r["gbps"] / ceiling if ceiling else None
    return rows


def report(rows: list[dict[str, Any]], device: str) -> str:
    """The rows as a text table, with the goal (ours >= 0.8 x pinned) marked."""
    head = ("case", "MiB", "ms", "cpu ms", "GB/s", "x pinned", "goal")
    body = []
    for r in rows:
        ratio = r.get("x_pinned")
        ours = r["case"].startswith(("read+copy: ours", "copy: ours")) and "before" not in r["case"]
        goal = "" if not ours or ratio is None else ("met" if ratio >= GOAL else "not met")
        cells = (r["bytes"] / 2**20, r["median_ms"], r["cpu_ms"], r["gbps"])
        nums = [f"{v:.{d}f}" for v, d in zip(cells, (1, 3, 3, 2))]
        body.append((f"{r['group']}: {r['case']}", *nums, "" if ratio is None else f"{ratio:.2f}", goal))
    return f"CUDA cases on {device} (goal: ours >= {GOAL} x pinned host-to-device bandwidth)\n" + table([head, *body])
