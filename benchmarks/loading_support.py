"""Helpers of benchmark_loading.py: the synthetic plate, CPU time of a process tree, raw pyarrow reads, and the
summaries, table and verdicts of the report."""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "make_plate",
    "rss",
    "process_tree",
    "tree_cpu",
    "epochs",
    "raw_reader",
    "summary",
    "table_rows",
    "verdicts",
]


def make_plate(out: Path, images: int, channels: int, size: int) -> dict[str, Any]:
    """Stream a synthetic plate into ``out``; returns write rate and peak RSS."""
    from ome_arrow_core import write_dataset

    rng = np.random.default_rng(0)
    rows = "ABCDEFGHIJKLMNOP"

    def gen() -> Any:
        for _ in range(images):
            yield rng.integers(0, 4096, (channels, size, size), dtype=np.uint16)

    meta = ({"well": f"{rows[(i // 90) % 16]}{(i // 9) % 24 + 1:02d}", "site": i % 9} for i in range(images))
    t0 = time.perf_counter()
    write_dataset(gen(), out, dim_order="CYX", metadata=meta, progress=False)
    dt = time.perf_counter() - t0
    nbytes = images * channels * size * size * 2
    return {"seconds": dt, "MB_per_s": nbytes / dt / 1e6, "peak_rss_mib": rss()}


def rss(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def process_tree() -> Iterator[tuple[int, list[str], bytes]]:
    """(pid, its /proc stat fields after the command name, its command line) of this process and every live process
    under it."""
    todo, seen = [os.getpid()], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        yield pid, fields, cmd
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue


def tree_cpu() -> float:
    """CPU seconds of this process and every process under it, live or exited and reaped.

    This process's and its reaped children's come from ``getrusage`` (microseconds); only live descendants'
    come from /proc, in clock ticks (10 ms): an epoch shorter than a tick must not read as no CPU at all.
    """
    tick = os.sysconf("SC_CLK_TCK")
    me = os.getpid()
    own = sum(
        u.ru_utime + u.ru_stime for u in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    )
    # each live descendant's own and its reaped children's
    return own + sum(sum(int(v) for v in fields[11:15]) / tick for pid, fields, _ in process_tree() if pid != me)


def epochs(run: Any, count: int) -> list[tuple[float, int, int, float]]:
    """Per epoch: seconds, images, bytes, CPU seconds of the process tree."""
    out = []
    for epoch in range(count):
        c0, t0 = tree_cpu(), time.perf_counter()
        n, nbytes = run(epoch)
        out.append((time.perf_counter() - t0, n, nbytes, tree_cpu() - c0))
    return out


def raw_reader(pf: Any, images: int, batch: int) -> Any:
    """Raw pyarrow: the pixel column of ``batch`` images' row groups per call, no decoding."""
    per_image = pf.num_row_groups // images
    step = per_image * batch

    def run(_: int) -> tuple[int, int]:
        nbytes = 0
        for g in range(0, pf.num_row_groups, step):
            t = pf.read_row_groups(
                list(range(g, min(g + step, pf.num_row_groups))), columns=["pixel_bytes"], use_threads=False
            )
            nbytes += t.column(0).nbytes - 8 * (t.num_rows + t.column(0).num_chunks)  # minus offsets
        return images, nbytes

    return run


def _ratios(got: list[dict[str, Any]], base: list[dict[str, Any]], key: str) -> list[float]:
    """``key`` of each run of ``got`` over that of the run of ``base`` in the same round."""
    by_round = {r["round"]: r[key] for r in base}
    # a base of 0 (no CPU measured, no bytes) has no ratio: that round is left out, not divided by
    return [r[key] / by_round[r["round"]] for r in got if by_round.get(r["round"])]


def summary(runs: dict[str, list[dict[str, Any]]], cases: list[str]) -> list[dict[str, Any]]:
    """Per case: medians over its rounds, and its ratios to the raw (and s3-raw) run of the same round."""
    out = []
    for case in cases:
        got = runs[case]
        ratios = _ratios(got, runs.get("raw", []), "MB_per_s")
        cpu = _ratios(got, runs.get("raw", []), "cpu_s_per_GB")
        s3 = _ratios(got, runs.get("s3-raw", []), "MB_per_s") if case.startswith("s3-") else []
        med = {k: statistics.median(r[k] for r in got) for k in got[0] if isinstance(got[0][k], (int, float))}
        out.append(
            {
                **med,
                "case": case,
                "rounds": len(got),
                "ratio": statistics.median(ratios) if ratios else None,
                "ratio_min": min(ratios, default=None),
                "ratio_max": max(ratios, default=None),
                "cpu_ratio": statistics.median(cpu) if cpu else None,
                "s3_ratio": statistics.median(s3) if s3 else None,
                "runs": got,
            }
        )
    return out


TARGETS = {"map-w2": 0.8, "mapb-w2": 0.8, "ray": 0.5}
"""Issue 14's targets: the least rate over raw's of these cases."""


def table_rows(results: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """The report's table of ``summary``'s results: a header, then a row per case ("-" where it has no ratio)."""
    rows = [
        (
            "case",
            "images/s",
            "MB/s",
            "first epoch MB/s",
            "x raw",
            "x raw range",
            "CPU x raw",
            "CPU us/image",
            "x s3-raw",
            "load",
            "RSS MiB",
            "workers MiB",
        )
    ]
    for r in results:
        rows.append(
            (
                r["case"],
                f"{r['images_per_s']:.0f}",
                f"{r['MB_per_s']:.0f}",
                f"{r['first_MB_per_s']:.0f}",
                f"{r['ratio']:.2f}" if r["ratio"] is not None else "-",
                f"{r['ratio_min']:.2f}-{r['ratio_max']:.2f}" if r["ratio"] is not None else "-",
                f"{r['cpu_ratio']:.2f}" if r["cpu_ratio"] is not None else "-",
                f"{r['cpu_us_per_image']:.0f}",
                f"{r['s3_ratio']:.2f}" if r["s3_ratio"] is not None else "-",
                f"{r['load']:.1f}",
                f"{r['peak_rss_mib']:.0f}",
                f"{r['peak_rss_workers_mib']:.0f}",
            )
        )
    return rows


def verdicts(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per case with a target in ``TARGETS``: its ratio to raw (None if none) and that target."""
    return {r["case"]: {"ratio": r["ratio"], "target": TARGETS[r["case"]]} for r in results if r["case"] in TARGETS}
