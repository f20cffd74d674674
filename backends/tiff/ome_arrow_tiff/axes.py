"""Mapping between a tifffile series' axes and canonical TZCYX.

tifffile names each series dimension with a letter (``series.axes``, length-1 axes
squeezed). They map to TZCYX as follows:

- ``T``, ``Z``, ``C``, ``Y`` and ``X`` keep their meaning;
- ``S`` (samples, e.g. RGB) belongs to C;
- any other letter (``I`` a sequence of pages, ``Q`` unknown, ``E`` lambda, ``A`` angle, ...)
  maps as an array of the same rank does (ome-arrow-core's ingest rule, counting the axes
  other than Y, X and S): one such axis is Z (``IYX`` -> ZYX), two are T, C, three T, C, Z;
  more fold into T. An axis whose default a known letter already uses takes the first free
  of T, C, Z (``CQYX`` -> CTYX), and T when none is free.

Several series axes mapped to one canonical axis are flattened in C order, e.g. ``CYXS``
with 2 channels of 3 samples gives C = 6 with index ``c * 3 + s``. The series is a stack
of pages: the leading axes index pages (row-major), the trailing axes are one page. A page
usually holds whole YX planes; a channels-last array written by tifffile as ``YXC`` (not as
samples) is stored one image row per page (pages of X by C): Y is then a stack axis
(:attr:`AxisMap.rows_paged`) and :meth:`AxisMap.locate` takes the row too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import PurePath
from typing import Any, Final

from ome_arrow_core import SchemaError
from ome_arrow_core.plugin_api import DamagedFileError

__all__ = ["AxisMap", "canonical_targets", "guess_note", "series_axes"]

_KNOWN: Final[dict[str, str]] = {"T": "T", "Z": "Z", "C": "C", "S": "C", "Y": "Y", "X": "X"}
#: The axes in front of YX of a numpy array of 0, 1, 2, 3 more dimensions (YX, ZYX, TCYX, TCZYX).
_BY_RANK: Final[tuple[str, ...]] = ("", "Z", "TC", "TCZ")


def canonical_targets(axes: str) -> str:
    """The canonical axis each letter of ``axes`` maps to (same length as ``axes``).

    >>> canonical_targets("IYX"), canonical_targets("QQYX"), canonical_targets("TIYX"), canonical_targets("YXS")
    ('ZYX', 'TCYX', 'TCYX', 'YXC')
    """
    stack = [a for a in axes if a not in "YXS"]
    extra = max(0, len(stack) - 3)
    default = "T" * extra + _BY_RANK[len(stack) - extra]
    taken = {_KNOWN[a] for a in axes if a in _KNOWN}
    out, j = [], 0
    for a in axes:
        if a in _KNOWN:
            out.append(_KNOWN[a])
            j += a not in "YXS"
            continue
        want = default[j]
        if want in taken and not (want == "T" and j <= extra):  # extra leading axes fold into T
            want = next((t for t in "TCZ" if t not in taken), "T")
        taken.add(want)
        out.append(want)
        j += 1
    return "".join(out)


@dataclass(frozen=True)
class AxisMap:
    """Where each canonical (t, z, c) index lies in a page stack.

    ``axes``/``shape`` are the series' axes and shape; the last ``len(axes) - n_stack``
    axes are one page (``page_axes``/``page_shape``).
    """

    axes: str
    shape: tuple[int, ...]
    n_stack: int

    @classmethod
    def from_series(cls, axes: str, shape: Sequence[int], page_size: int) -> AxisMap:
        """Split ``axes`` into stack and page axes, the page holding ``page_size`` elements."""
        shape = tuple(int(n) for n in shape)
        if len(axes) != len(shape):
            raise SchemaError(f"series axes {axes!r} do not match its shape {shape}")
        if "Y" not in axes or "X" not in axes:
            raise SchemaError(f"series axes {axes!r} lack Y or X; expected a TIFF image with rows and columns")
        k, size = len(shape), 1
        while k > 0 and size < page_size:
            k -= 1
            size *= shape[k]
        while k > axes.index("Y") and shape[k - 1] == 1:  # a page holds the plane's length-1 axes (a 1x1 image)
            k -= 1
        if size != page_size or axes.index("X") < k:
            raise SchemaError(
                f"cannot split series axes {axes!r} (shape {shape}) into pages of "
                f"{page_size} elements; the file's series metadata looks inconsistent"
            )
        return cls(axes, shape, k)

    @cached_property
    def targets(self) -> str:
        """Canonical axis of each series axis."""
        return canonical_targets(self.axes)

    @property
    def rows_paged(self) -> bool:
        """True when Y is a stack axis: each page holds (part of) one row of the planes."""
        return self.axes.index("Y") < self.n_stack

    @property
    def page_axes(self) -> str:
        """Axes of one page (holding X; Y too unless :attr:`rows_paged`)."""
        return self.axes[self.n_stack :]

    @property
    def page_shape(self) -> tuple[int, ...]:
        """Shape of one page."""
        return self.shape[self.n_stack :]

    @property
    def n_pages(self) -> int:
        """Pages in the stack."""
        return math.prod(self.shape[: self.n_stack])

    @property
    def sizes(self) -> dict[str, int]:
        """Length of each canonical axis."""
        out = dict.fromkeys("TZCYX", 1)
        for target, n in zip(self.targets, self.shape, strict=True):
            out[target] *= n
        return out

    def locate(self, t: int, z: int, c: int, y: int = 0) -> tuple[int, tuple[int | slice, ...]]:
        """Page number of canonical ``(t, z, c)`` and the index of its YX plane in that page.

        When :attr:`rows_paged`, the page of row ``y`` of that plane and the index of the row (X) in it.
        """
        index = [0] * len(self.axes)
        if self.rows_paged:
            index[self.axes.index("Y")] = y
        for ax, value in zip("TZC", (t, z, c), strict=True):
            positions = [i for i, tg in enumerate(self.targets) if tg == ax]
            for i in reversed(positions):
                value, index[i] = divmod(value, self.shape[i])
        page = 0
        for i in range(self.n_stack):
            page = page * self.shape[i] + index[i]
        plane = tuple(slice(None) if self.axes[i] in "YX" else index[i] for i in range(self.n_stack, len(self.axes)))
        return page, plane


def guess_note(axes: AxisMap) -> tuple[str, ...]:
    """The ``info()["notes"]`` entry of a series whose file leaves axes unnamed (none when it names them all)."""
    unnamed = [a for a in axes.axes if a not in _KNOWN]
    if not unnamed:
        return ()
    return (
        f"the file does not name its axes {axes.axes!r} (tifffile calls them {''.join(dict.fromkeys(unnamed))!r}): "
        f"read as {axes.targets!r}, as an array of the same rank; to read them otherwise, name them when writing, "
        "e.g. tifffile.imwrite(path, data, metadata={'axes': 'YXC'})",
    )


def series_axes(series: Any, path: PurePath) -> AxisMap:
    """The AxisMap of a tifffile series; DamagedFileError naming ``path`` when its axes and pages disagree."""
    try:
        return AxisMap.from_series(series.axes, series.shape, math.prod(series.keyframe.shape))
    except SchemaError as exc:
        raise DamagedFileError(f"{path}: {exc}") from None
