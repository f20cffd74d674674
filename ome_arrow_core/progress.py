"""A progress bar for long conversions: tqdm when installed, a plain stderr line otherwise."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any

__all__ = ["Progress"]


class Progress:
    """Counts bytes processed and shows throughput; ``disable=True`` prints nothing."""

    def __init__(self, total_bytes: int, desc: str = "", disable: bool = False) -> None:
        self.total = total_bytes
        self.done = 0
        self.desc = desc
        self.disable = disable
        self._start = time.perf_counter()
        self._bar: Any = None
        if not disable:
            try:
                from tqdm import tqdm

                self._bar = tqdm(total=total_bytes, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr)
            except ImportError:
                self._bar = None

    def update(self, nbytes: int, label: str = "") -> None:
        """Record ``nbytes`` more processed (``label`` names the current item)."""
        self.done += nbytes
        if self.disable:
            return
        if self._bar is not None:
            if label:
                self._bar.set_postfix_str(label, refresh=False)
            self._bar.update(nbytes)
            return
        rate = self.done / max(time.perf_counter() - self._start, 1e-9) / 2**20
        pct = 100.0 * self.done / self.total if self.total else 100.0
        print(f"\r{self.desc} {pct:5.1f}% {self.done / 2**20:8.1f} MiB {rate:8.1f} MiB/s {label[:40]:<40}",
              end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        """Finish the bar."""
        if self.disable:
            return
        if self._bar is not None:
            self._bar.close()
        else:
            print(file=sys.stderr)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
