"""Bio-Formats-style stack patterns: ``E99_C<111,222>_ZS<000-021>.tif`` -> files per (t, c, z)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

from ..errors import ArgumentError

__all__ = ["is_pattern", "stack_pattern_files"]

_TOKEN = re.compile(r"<([^<>]+)>")
_RANGE = re.compile(r"^(\d+)-(\d+)(?::(\d+))?$")


def is_pattern(text: str) -> bool:
    """True for a string with ``<...>`` tokens or a ``*`` wildcard."""
    return any(ch in text for ch in "<>*")


def _values(token: str) -> list[str]:
    out: list[str] = []
    for part in token.split(","):
        part = part.strip()
        m = _RANGE.match(part)
        if m:
            lo, hi, step = int(m.group(1)), int(m.group(2)), int(m.group(3) or 1)
            width = len(m.group(1)) if m.group(1).startswith("0") else 0
            out += [str(v).zfill(width) for v in range(lo, hi + 1, step)]
        elif part:
            out.append(part)
    return out


def _axis(before: str, default: str, series: str | None) -> str:
    letters = re.search(r"([A-Za-z]+)[^A-Za-z]*$", before)
    word = letters.group(1).upper() if letters else ""
    for axis in ("T", "C", "Z"):
        if word.startswith(axis) or word.endswith(axis):
            return axis
    if word.startswith("S") and series:
        return series.upper()
    return default.upper()


def stack_pattern_files(pattern: str, default_dim: str = "C",
                        series_to: str | None = "T") -> tuple[dict[tuple[int, int, int], Path], tuple[int, int, int]]:
    """Files of ``pattern`` keyed by (t, c, z) index, and the (T, C, Z) sizes they span.

    Each ``<...>`` token takes its axis from the letters before it (``C``, ``Z``/``ZS``, ``T``;
    ``S`` maps to ``series_to``; otherwise ``default_dim``); a ``*`` pattern lists matching files
    along ``default_dim``. Every named file must exist.
    """
    path = Path(pattern)
    if "*" in pattern and not _TOKEN.search(pattern):
        files = sorted(path.parent.glob(path.name))
        if not files:
            raise FileNotFoundError(f"no file matches {pattern!r}")
        along = "TCZ".index(default_dim.upper())
        keyed = {tuple(i if k == along else 0 for k in range(3)): f for i, f in enumerate(files)}
        span = tuple(len(files) if k == along else 1 for k in range(3))
        return keyed, span  # type: ignore[return-value]
    pieces, axes, choices, last = [], [], [], 0
    for m in _TOKEN.finditer(pattern):
        pieces.append(pattern[last : m.start()])
        axes.append(_axis(pattern[: m.start()], default_dim, series_to))
        choices.append(_values(m.group(1)))
        last = m.end()
    tail = pattern[last:]
    if len(set(axes)) != len(axes):
        raise ArgumentError(f"pattern {pattern!r} maps two tokens to the same axis {axes}")
    extent = [1, 1, 1]
    for axis, vals in zip(axes, choices):
        extent["TCZ".index(axis)] = len(vals)
    out: dict[tuple[int, int, int], Path] = {}
    for combo in itertools.product(*(list(enumerate(v)) for v in choices)):
        name = "".join(p + v for p, (_, v) in zip(pieces, combo)) + tail
        file = Path(name)
        if not file.is_file():
            raise FileNotFoundError(f"pattern {pattern!r} names {file}, which does not exist")
        where = [0, 0, 0]
        for axis, (pos, _) in zip(axes, combo):
            where["TCZ".index(axis)] = pos
        out[(where[0], where[1], where[2])] = file
    return out, (extent[0], extent[1], extent[2])
