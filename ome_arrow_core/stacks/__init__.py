"""Image stacks: one image from many files (a list of paths, a glob, or a Bio-Formats file pattern).

``OMEArrow(["z0.tif", "z1.tif"])``, ``OMEArrow("planes/*.tif", dim_order="Z")`` and
``OMEArrow.scan("E99_C<111,222>_ZS<000-021>.tif")`` give one image; each file is read by the
reader its path gets (TIFF, .npy, OME-Arrow Parquet, any plugin's). See docs/formats.md.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .files import FileGrid, is_stack_input, natural_key, resolve_files
from .patterns import AXIS_WORDS, SERIES_WORDS, Pattern, group_axes, is_pattern, parse_pattern
from .source import StackSource

if TYPE_CHECKING:
    from ..registry import Registry

__all__ = [
    "open_stack",
    "is_stack_input",
    "resolve_files",
    "FileGrid",
    "StackSource",
    "natural_key",
    "parse_pattern",
    "group_axes",
    "is_pattern",
    "Pattern",
    "AXIS_WORDS",
    "SERIES_WORDS",
]


def open_stack(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    registry: Registry,
    *,
    dim_order: str | None = None,
    stack_shape: Sequence[int] | None = None,
    format: str | None = None,
    name: str | None = None,
    check_files: bool = False,
    **options: Any,
) -> StackSource:
    """The lazy stacked image of ``source`` (see :func:`resolve_files`); opens the first file's metadata only,
    or with ``check_files=True`` every file's, checking their shapes and dtypes now (still no pixels)."""
    grid = resolve_files(source, dim_order=dim_order, stack_shape=stack_shape)
    src = StackSource(grid, registry, format=format, name=name, **options)
    if check_files:
        src.check_files()
    return src
