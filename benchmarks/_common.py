"""Shared helpers for the benchmarks: timing, temporary files, peak RSS."""

from __future__ import annotations

import json
import os
import random
import resource
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def measure(fn: Callable[[], Any], repeats: int, warmup: int) -> dict[str, float]:
    """Run ``fn`` warmup + repeats times; milliseconds (median, min, max) of the timed runs, and the median CPU
    time of this process (all its threads) per run (``cpu_ms``: below ``median_ms`` when the run waited, for the
    CPU on a shared machine or for I/O; above it when it ran threads in parallel)."""
    for _ in range(warmup):
        fn()
    times, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    return {
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "max_ms": max(times),
        "cpu_ms": statistics.median(cpu),
        "repeats": repeats,
    }


def per_call(fn: Callable[[], Any], number: int, repeats: int) -> dict[str, float]:
    """Median over ``repeats`` of the mean time of ``number`` back-to-back calls (for µs-scale work)."""
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter() - t0) * 1e3 / number)
    return {"median_ms": statistics.median(runs), "min_ms": min(runs), "max_ms": max(runs), "repeats": repeats}


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def table(rows: list[tuple[str, ...]]) -> str:
    """Left-aligned text table."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def fresh_env(**extra: str) -> dict[str, str]:
    """This process's environment for a child that runs from bytecode, as installed packages do.

    ``PYTHONDONTWRITEBYTECODE`` (set by some test runners) is dropped so peers and we alike import
    compiled modules; ``extra`` entries are added (e.g. ``PYTHONPYCACHEPREFIX``).
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(extra)
    return env


def tree_path(tree: Path) -> str:
    """PYTHONPATH putting checkout ``tree``'s core and backends first (the ``CASE@DIR`` cases of the A/B scripts)."""
    return os.pathsep.join([str(tree), *(str(b) for b in sorted((tree / "backends").glob("*")) if b.is_dir())])


def tree_child_json(tree: Path, argv: list[str], what: str = "") -> Any:
    """Run ``argv`` in checkout ``tree`` (working directory, and :func:`tree_path` as PYTHONPATH); the JSON of
    the last line it printed. A child that fails raises RuntimeError with ``what`` and its stderr."""
    env = {**os.environ, "PYTHONPATH": tree_path(tree)}
    out = subprocess.run(argv, env=env, cwd=tree, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{tree} {what}: {out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def interleaved(fns: list[Callable[[], Any]], repeats: int, seed: int = 0) -> list[dict[str, float]]:
    """``repeats`` rounds, each timing one run of every one of ``fns`` in a new seeded shuffled order (no case
    always first or after the same neighbour: a noisy machine's drift lands on all alike); per fn as
    ``measure``: wall ms (median, min, max) and the median CPU ms of this process (all its threads)."""
    rng = random.Random(seed)
    wall: list[list[float]] = [[] for _ in fns]
    cpu: list[list[float]] = [[] for _ in fns]
    order = list(range(len(fns)))
    for _ in range(repeats):
        rng.shuffle(order)
        for i in order:
            c0, t0 = time.process_time(), time.perf_counter()
            fns[i]()
            wall[i].append((time.perf_counter() - t0) * 1e3)
            cpu[i].append((time.process_time() - c0) * 1e3)
    return [
        {
            "median_ms": statistics.median(w),
            "min_ms": min(w),
            "max_ms": max(w),
            "cpu_ms": statistics.median(c),
            "repeats": repeats,
        }
        for w, c in zip(wall, cpu)
    ]
