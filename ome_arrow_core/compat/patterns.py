"""ome-arrow's stack patterns on the core's parser: ``E99_C<111,222>_ZS<000-021>.tif`` -> files per (t, c, z).

The syntax and file resolution are :mod:`ome_arrow_core.stacks`'; this module keeps the
reference's fallbacks: a group after a word that names no axis goes to ``default_dim``, one
after a series word to ``series_to``, and a ``*`` glob lists its files along ``default_dim``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ArgumentError
from ..stacks import SERIES_WORDS, group_axes, parse_pattern, resolve_files

__all__ = ["is_pattern", "stack_pattern_files"]


def is_pattern(text: str) -> bool:
    """True for a string with ``<...>`` tokens or a ``*`` wildcard."""
    return any(ch in text for ch in "<>*")


def _axes(text: str, default_dim: str, series_to: str | None) -> str:
    """Each group's axis: its word's, else ``series_to`` after a series word, else ``default_dim``."""
    out = ""
    for g in parse_pattern(text).groups:
        axis = g.guessed_axis
        if axis is None and g.word.lower() in SERIES_WORDS:
            if not series_to:
                raise ArgumentError(f"pattern {text!r} has a series group <{g.spec}> but map_series_to=None")
            axis = series_to.upper()
        out += axis or default_dim.upper()
    return group_axes(parse_pattern(text), out)


def stack_pattern_files(
    pattern: str, default_dim: str = "C", series_to: str | None = "T"
) -> tuple[dict[tuple[int, int, int], Path], tuple[int, int, int]]:
    """Files of ``pattern`` keyed by (t, c, z) index, and the (T, C, Z) sizes they span; every named file
    must exist (a missing one is named)."""
    if "<" in pattern or ">" in pattern:
        grid = resolve_files(pattern, dim_order=_axes(pattern, default_dim, series_to))
    else:
        grid = resolve_files(pattern, dim_order=default_dim)
    sizes = dict(zip(grid.axes, grid.shape))
    keyed: dict[tuple[int, int, int], Path] = {}
    for number, file in enumerate(grid.files):
        at = grid.position(number)
        keyed[(at.get("T", 0), at.get("C", 0), at.get("Z", 0))] = file
    return keyed, (sizes.get("T", 1), sizes.get("C", 1), sizes.get("Z", 1))
