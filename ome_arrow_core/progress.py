"""The one progress bar of the library and the CLI: tqdm when installed, one plain stderr line otherwise.

Both show the same thing (work done of the total, rate, current item), only on a terminal
unless asked, and both let a message be printed on its own line above the bar.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any, TextIO

__all__ = ["Progress"]

#: Seconds between two redraws of the plain line (the last update always draws).
_REDRAW = 0.1


def _amount(n: float, unit: str) -> str:
    return f"{n / 2**20:.1f} MiB" if unit == "B" else f"{int(n)} {unit}"


class Progress:
    """Work done out of ``total`` (None: unknown) in ``unit`` ("B": bytes, shown in MiB; or a
    noun such as "img"). ``enabled=None`` shows it only when ``stream`` (stderr) is a terminal."""

    def __init__(
        self,
        total: int | None,
        desc: str = "",
        *,
        unit: str = "B",
        enabled: bool | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.total = total
        self.done = 0
        self.count = 0
        self.desc = desc
        self.unit = unit
        self.stream = stream or sys.stderr
        self.enabled = bool(self.stream.isatty()) if enabled is None else enabled
        self._start = time.perf_counter()
        self._drawn = 0.0
        self._stale = False  # the plain line does not show the last update yet
        self._bar: Any = None
        if self.enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                return
            scale = unit == "B"
            self._bar = tqdm(
                total=total,
                desc=desc,
                unit=unit,
                unit_scale=scale,
                unit_divisor=1024 if scale else 1000,
                file=self.stream,
            )

    def update(self, amount: int, label: str = "") -> None:
        """Record ``amount`` more done (``label`` names the item just finished)."""
        self.done += amount
        self.count += 1
        if not self.enabled:
            return
        if self._bar is not None:
            if label:
                self._bar.set_postfix_str(label[:40], refresh=False)
            self._bar.update(amount)
            return
        now = time.perf_counter()
        self._stale = True
        if now - self._drawn >= _REDRAW or (self.total is not None and self.done >= self.total):
            self._drawn = now
            self._draw(label)

    def _draw(self, label: str) -> None:
        self._stale = False
        rate = self.done / max(time.perf_counter() - self._start, 1e-9)
        pct = f"{100.0 * self.done / self.total:5.1f}% " if self.total else ""
        of = f" of {_amount(self.total, self.unit)}" if self.total else ""
        print(
            f"\r\033[K{self.desc}: {pct}{_amount(self.done, self.unit)}{of}, {_amount(rate, self.unit)}/s"
            f"{'  ' + label[:40] if label else ''}",
            end="",
            file=self.stream,
            flush=True,
        )

    def note(self, message: str) -> None:
        """Print ``message`` on a line of its own (above the bar when one is shown)."""
        if self._bar is not None:
            self._bar.write(message, file=self.stream)
            return
        if self.enabled and self._drawn:
            print("\r\033[K", end="", file=self.stream)
        print(message, file=self.stream, flush=True)
        if self.enabled and self._drawn:
            self._draw("")

    def close(self) -> None:
        """Finish the bar (the plain line ends with a newline)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._drawn:
            if self._stale:
                self._draw("")
            print(file=self.stream, flush=True)
        self.enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
