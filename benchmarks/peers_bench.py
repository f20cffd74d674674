"""The cases of compare_peers.py: each library's variants timed, their pixels checked, one row per case."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _common import measure
from peers_table import LIBS, PEERS, cell_text, cpu_text

__all__ = ["Bench", "Fn", "equal_to"]

Fn = Callable[[], Any]


class Bench:
    """Collects one row per case: per library its best median (and configuration)."""

    def __init__(self, repeats: int, installed: dict[str, bool], warmup: bool) -> None:
        self.repeats, self.installed, self.warmup = repeats, installed, warmup
        self.rows: list[dict[str, Any]] = []
        self.cuda_rows: list[dict[str, Any]] = []  # peers_cuda.run_cases

    def case(
        self,
        name: str,
        variants: dict[str, list[tuple[str, Fn]]],
        check: Callable[[Any], None] | None,
        repeats: int | None = None,
        warmup: bool | None = None,
    ) -> None:
        """Time every (library, configuration) variant; keep each library's fastest.

        The first call of each variant is untimed (a warm-up; skipped for unchecked cases in --quick) and its
        result goes to ``check``.
        """
        results: dict[str, Any] = {}
        t0 = time.perf_counter()
        for lib in LIBS:
            if lib in self.installed and not self.installed[lib]:
                results[lib] = "not installed"
                continue
            best: dict[str, Any] | None = None
            for config, fn in variants.get(lib, []):
                warm = self.warmup if warmup is None else warmup
                got = fn() if check is not None or warm else None
                if check is not None and lib != "memcpy":
                    try:
                        check(got)
                    except AssertionError as exc:
                        raise AssertionError(f"{name}: {lib} [{config}] returned wrong pixels: {exc}") from exc
                del got
                m = measure(fn, repeats or self.repeats, 0)
                if best is None or m["median_ms"] < best["ms"]:
                    best = {"ms": m["median_ms"], "cpu_ms": m["cpu_ms"], "config": config}
            results[lib] = best
        self.rows.append({"case": name, "results": results, "loadavg": os.getloadavg()[0]})
        print(
            f"  {name}: "
            + ", ".join(f"{k} {cell_text(v)}{cpu_text(v)}" for k, v in results.items() if v)
            + f" ({time.perf_counter() - t0:.1f} s, load {os.getloadavg()[0]:.1f})",
            flush=True,
        )

    def add(self, name: str, results: dict[str, Any]) -> None:
        for lib in PEERS:
            if not self.installed[lib] and lib in results:
                results[lib] = "not installed"
        self.rows.append({"case": name, "results": results})
        print(f"  {name}: " + ", ".join(f"{k} {cell_text(v)}" for k, v in results.items() if v), flush=True)


def equal_to(expected: np.ndarray) -> Callable[[Any], None]:
    def check(got: Any) -> None:
        got = np.asarray(got)
        assert got.shape == expected.shape, f"shape {got.shape}, expected {expected.shape}"
        assert np.array_equal(got, expected), "pixels differ from numpy's slice of the source"

    return check
