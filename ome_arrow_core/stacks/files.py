"""The files of one stacked image: a list of paths, a glob or a file pattern -> a grid of files.

A grid names its stacking axes (some of T, C, Z, slowest first), its length along each and
one file per position, the last axis varying fastest. Resolving checks that every file
exists (a ``stat``, no file is opened), so a gap is named before anything is read.
"""

from __future__ import annotations

import glob
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ArgumentError, NotFoundError
from .patterns import group_axes, is_pattern, parse_pattern

__all__ = ["FileGrid", "is_stack_input", "is_glob", "natural_key", "resolve_files"]

#: Stacking axes of a list or a glob when ``dim_order`` is not given.
DEFAULT_AXIS = "Z"
_GLOB_CHARS = re.compile(r"[*?\[]")
_DIGITS = re.compile(r"(\d+)")
_RANGE_ENDS = re.compile(r"[<,]\s*(\d+)-(\d+)")


@dataclass(frozen=True)
class FileGrid:
    """``files`` laid out along ``axes`` with lengths ``shape`` (row-major), and where they came from."""

    axes: str
    shape: tuple[int, ...]
    files: tuple[Path, ...]
    label: str
    channel_names: tuple[str, ...] | None = None

    def index(self, position: Sequence[int]) -> int:
        """The file number at ``position`` (one index per stacking axis)."""
        out = 0
        for i, n in zip(position, self.shape):
            out = out * n + i
        return out

    def position(self, number: int) -> dict[str, int]:
        """The stacking coordinates of file number ``number``."""
        out: dict[str, int] = {}
        for ax, n in zip(reversed(self.axes), reversed(self.shape)):
            number, out[ax] = divmod(number, n)
        return out


def natural_key(path: str | os.PathLike[str]) -> tuple[Any, ...]:
    """Sort key putting ``plane_2`` before ``plane_10`` (digit runs compare as numbers)."""
    text = os.fspath(path)
    parts = _DIGITS.split(text)
    return (tuple((i % 2, int(p) if i % 2 else p) for i, p in enumerate(parts)), text)


def is_glob(text: str) -> bool:
    """True when ``text`` has glob wildcards (``*``, ``?``, ``[``)."""
    return bool(_GLOB_CHARS.search(text))


def is_stack_input(source: object) -> bool:
    """True for a list or tuple of paths, or a string with a ``<...>`` group or glob wildcards that
    names no existing file (a file called ``a[1].tif`` is opened as itself)."""
    if isinstance(source, (list, tuple)):
        return bool(source) and all(isinstance(s, (str, os.PathLike)) for s in source)
    if not isinstance(source, (str, os.PathLike)):
        return False
    text = os.fspath(source)
    if "://" in text or not (is_pattern(text) or is_glob(text)):
        return False
    return not os.path.lexists(text)


def _missing(files: Sequence[Path]) -> list[Path]:
    return [f for f in files if not os.path.exists(f)]


def _missing_error(what: str, missing: Sequence[Path], grid_of: FileGrid, hint: str = "") -> NotFoundError:
    first = grid_of.files.index(missing[0])
    where = ", ".join(f"{a}={i}" for a, i in grid_of.position(first).items())
    more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
    return NotFoundError(
        f"{what} names {str(missing[0])!r} ({where}){more}, which does not exist; "
        f"every position of the stack needs its file{hint}"
    )


def _check_axes(dim_order: str) -> str:
    axes = dim_order.upper()
    if not axes or set(axes) - set("TCZ") or len(set(axes)) != len(axes):
        raise ArgumentError(
            f"dim_order={dim_order!r} must name stacking axes from T, C and Z, each once "
            "(e.g. 'Z', or 'TZ' with stack_shape=(n_t, n_z))"
        )
    return axes


def _from_list(files: list[Path], label: str, dim_order: str | None, stack_shape: Sequence[int] | None) -> FileGrid:
    axes = _check_axes(dim_order or DEFAULT_AXIS)
    if stack_shape is None:
        if len(axes) > 1:
            raise ArgumentError(
                f"dim_order={dim_order!r} stacks along {len(axes)} axes; pass stack_shape= with "
                f"their lengths (e.g. stack_shape=(n_{axes[0].lower()}, n_{axes[1].lower()})), "
                "the last varying fastest"
            )
        shape: tuple[int, ...] = (len(files),)
    else:
        shape = tuple(int(n) for n in stack_shape)
        if len(shape) != len(axes) or any(n < 1 for n in shape) or math.prod(shape) != len(files):
            raise ArgumentError(
                f"stack_shape={tuple(stack_shape)!r} must give one positive length per axis of "
                f"{axes!r} and multiply to the {len(files)} files"
            )
    grid = FileGrid(axes, shape, tuple(files), label)
    missing = _missing(files)
    if missing:
        raise _missing_error(label, missing, grid)
    return grid


def _from_pattern(text: str, dim_order: str | None) -> FileGrid:
    if is_glob(text):
        raise ArgumentError(
            f"file pattern {text!r} mixes <...> groups with glob wildcards (*, ?, [); use one or the other"
        )
    pattern = parse_pattern(text)
    axes = group_axes(pattern, dim_order)
    files = tuple(Path(name).absolute() for _, name in pattern.names())
    shape = tuple(len(g.values) for g in pattern.groups)
    names = next((g.values for g, ax in zip(pattern.groups, axes) if ax == "C" and not g.numeric), None)
    grid = FileGrid(axes, shape, files, text, names)
    missing = _missing(files)
    if missing:
        uneven = [(a, b) for a, b in _RANGE_ENDS.findall(text) if len(a) < len(b)]
        hint = (
            ""
            if not uneven
            else (
                f" (the range <{uneven[0][0]}-{uneven[0][1]}> is not zero padded, its ends differing in width; write "
                f"<{uneven[0][0].zfill(len(uneven[0][1]))}-{uneven[0][1]}> for padded names)"
            )
        )
        raise _missing_error(f"file pattern {text!r}", missing, grid, hint)
    return grid


def resolve_files(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    dim_order: str | None = None,
    stack_shape: Sequence[int] | None = None,
) -> FileGrid:
    """The file grid of ``source``: a list of paths (in the order given), a glob (naturally sorted) or a
    file pattern. ``dim_order`` names the stacking axes (default Z for lists and globs; for a pattern, one
    per group, overriding the words before them); ``stack_shape`` their lengths when there are several."""
    if isinstance(source, (list, tuple)):
        files = [Path(p).absolute() for p in source]
        label = f"{len(files)} files from {str(files[0])!r}" if files else "an empty list"
        if not files:
            raise ArgumentError("a stack needs at least one file; got an empty list")
        return _from_list(files, label, dim_order, stack_shape)
    text = os.fspath(source)  # type: ignore[arg-type]
    if is_pattern(text):
        if stack_shape is not None:
            raise ArgumentError(f"file pattern {text!r}: its groups give the stack's shape; drop stack_shape=")
        return _from_pattern(text, dim_order)
    matches = sorted(glob.glob(text, recursive=True), key=natural_key)
    if not matches:
        raise NotFoundError(
            f"no file matches {text!r} (a glob: *, ? and [...] are wildcards); check the directory and the pattern"
        )
    return _from_list([Path(m).absolute() for m in matches], text, dim_order, stack_shape)
