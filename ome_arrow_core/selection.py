"""Selections: which indices of T, Z, C, Y and X a view takes.

An axis selection is a ``range`` (a strided view of storage) or a tuple of indices
(gathered, so copied). Selections compose: selecting from a selection indexes the
previous one, so chained crops are relative to the previous crop.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

import numpy as np

from .arguments import whole_numbers
from .errors import SelectionError
from .frozen_types import frozen
from .layout import AXES

if TYPE_CHECKING:
    from .meta import ImageMeta

__all__ = ["AxisIndex", "IndexSpec", "Selection", "normalize_index", "parse_regions", "resolve_selection"]

#: One axis: a range (view) or explicit indices (gather).
AxisIndex = range | tuple[int, ...]
#: What a user may pass for t, z or c.
IndexSpec = int | slice | Sequence[int] | range | np.ndarray | None
RoiType = Literal["2d", "2d_timelapse", "3d", "4d"]


def _as_range(indices: tuple[int, ...]) -> AxisIndex:
    """Turn evenly spaced ascending indices into a range (a view); keep others as given."""
    if len(indices) == 1:
        return range(indices[0], indices[0] + 1)
    step = indices[1] - indices[0]
    if step > 0 and all(b - a == step for a, b in itertools.pairwise(indices)):
        return range(indices[0], indices[-1] + 1, step)
    return indices


def _axis_text(idx: AxisIndex) -> str:
    """One axis as text: ``3``, ``0:16``, ``0:16:2`` or ``0,2,5``."""
    if not isinstance(idx, range):
        return ",".join(map(str, idx))
    if len(idx) == 1:
        return str(idx.start)
    stop = idx.start + len(idx) * idx.step  # normalised, so equal ranges print alike
    return f"{idx.start}:{stop}" + (f":{idx.step}" if idx.step != 1 else "")


def normalize_index(spec: IndexSpec, n: int, axis: str) -> AxisIndex:
    """Resolve ``spec`` against an axis of length ``n``; raise SelectionError if out of range."""
    if type(spec) is int and -n <= spec < n:  # the usual case (t=0, z=5), answered first
        return range(spec % n, spec % n + 1)
    name = axis.lower()
    if spec is None:
        return range(n)
    if isinstance(spec, slice):
        try:
            out = range(n)[spec]
        except (TypeError, ValueError) as exc:  # a float bound, a zero step
            raise SelectionError(f"{name}={spec}: {exc}; a slice takes ints or None, and a non-zero step") from exc
        if len(out) == 0:
            raise SelectionError(f"{name}={spec} selects nothing; valid {name} indices are 0..{n - 1}")
        return out
    if isinstance(spec, np.ndarray) and spec.ndim != 1:  # a 0-d array is one index, as numpy takes it
        if spec.ndim != 0:
            raise SelectionError(f"{name} indices must be one-dimensional, got an array of shape {spec.shape}")
        spec = spec.item()
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        i = int(spec)
        if not -n <= i < n:
            raise SelectionError(f"{name}={i} is out of range; valid {name} indices are 0..{n - 1} (size {n})")
        i %= n
        return range(i, i + 1)
    if isinstance(spec, (str, bytes)) or not isinstance(spec, (Sequence, range, np.ndarray)):
        raise SelectionError(f"{name} must be an int, a slice or a sequence of ints, got {type(spec).__name__}")
    wrong = [v for v in spec if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer))]
    if wrong:  # int() would quietly turn a boolean mask into indices 0/1 and truncate floats
        raise SelectionError(
            f"{name} indices must be ints, got {wrong[0]!r}; for a boolean mask pass np.flatnonzero(mask)"
        )
    items = [int(v) for v in spec]
    if not items:
        raise SelectionError(f"{name}=[] selects nothing; valid {name} indices are 0..{n - 1}")
    bad = [v for v in items if not -n <= v < n]
    if bad:
        raise SelectionError(f"{name} indices {bad} are out of range; valid {name} indices are 0..{n - 1} (size {n})")
    return _as_range(tuple(v % n for v in items))


def _span(start: int, length: int, n: int, axis: str) -> range:
    """A contiguous ``[start, start+length)`` range inside ``[0, n)``."""
    if length <= 0 or start < 0 or start + length > n:
        raise SelectionError(
            f"{axis} range [{start}, {start + length}) does not fit in [0, {n}); "
            f"valid {axis} spans lie within 0..{n} with a positive length"
        )
    return range(start, start + length)


@frozen
class Selection:
    """Indices into storage along each of T, Z, C, Y, X (Y and X contiguous).

    A frozen dataclass whose ``__init__``, ``__eq__`` and ``__hash__`` are written here, as ``dataclass`` would
    generate them (it compiles them in every process: ~1 ms of a fresh process's first read; tests compare them).
    """

    t: AxisIndex
    z: AxisIndex
    c: AxisIndex
    y: range
    x: range

    def __init__(self, t: AxisIndex, z: AxisIndex, c: AxisIndex, y: range, x: range) -> None:
        put = object.__setattr__
        put(self, "t", t)
        put(self, "z", z)
        put(self, "c", c)
        put(self, "y", y)
        put(self, "x", x)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return (self.t, self.z, self.c, self.y, self.x) == (other.t, other.z, other.c, other.y, other.x)

    def __hash__(self) -> int:
        return hash((self.t, self.z, self.c, self.y, self.x))

    @classmethod
    def full(cls, sizes: Mapping[str, int]) -> Selection:
        """Everything of an image whose sizes map axis letters to lengths."""
        return cls(*(range(sizes[ax]) for ax in AXES))

    def __repr__(self) -> str:
        """Axis terms, half-open like Python slices: ``Selection(T[0:2] Z[3] C[0,2,5] Y[100:356] X[0:2048:2])``."""
        return "Selection(" + " ".join(f"{ax}[{_axis_text(self.axis(ax))}]" for ax in AXES) + ")"

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        """Length along T, Z, C, Y, X."""
        return (len(self.t), len(self.z), len(self.c), len(self.y), len(self.x))

    def axis(self, ax: str) -> AxisIndex:
        """The selection along axis letter ``ax``."""
        return getattr(self, ax.lower())  # type: ignore[no-any-return]

    @property
    def is_strided(self) -> bool:
        """True when every axis is a range, so the selection is a view of storage."""
        return all(isinstance(self.axis(ax), range) for ax in AXES)

    def select(
        self,
        *,
        t: IndexSpec = None,
        z: IndexSpec = None,
        c: IndexSpec = None,
        y: range | None = None,
        x: range | None = None,
    ) -> Selection:
        """Select within this selection; every index is relative to it."""

        def sub(cur: AxisIndex, spec: IndexSpec, ax: str) -> AxisIndex:
            rel = normalize_index(spec, len(cur), ax)
            if isinstance(cur, range) and isinstance(rel, range):
                step = cur.step * rel.step
                start = cur[rel.start]
                return range(start, start + len(rel) * step, step)
            return _as_range(tuple(cur[i] for i in rel))

        def sub_span(cur: range, span: range | None, ax: str) -> range:
            if span is None:
                return cur
            rel = _span(span.start, len(span), len(cur), ax)
            return cur[rel.start : rel.stop]

        return Selection(
            t=sub(self.t, t, "T"),
            z=sub(self.z, z, "Z"),
            c=sub(self.c, c, "C"),
            y=sub_span(self.y, y, "Y"),
            x=sub_span(self.x, x, "X"),
        )

    def with_axis(self, ax: str, idx: AxisIndex) -> Selection:
        """This selection with axis ``ax`` replaced by absolute indices ``idx``."""
        return replace(self, **{ax.lower(): idx})  # type: ignore[arg-type]

    def apply(self, canonical: np.ndarray) -> np.ndarray:
        """Index a ``TZCYX`` array; a view when :attr:`is_strided`, else a gathered copy."""
        basic = tuple(
            slice(s.start, s.stop if s.stop >= 0 else None, s.step) if isinstance(s, range) else slice(None)
            for s in (self.t, self.z, self.c, self.y, self.x)
        )
        out = canonical[basic]
        for dim, s in enumerate((self.t, self.z, self.c)):
            if not isinstance(s, range):
                out = np.take(out, s, axis=dim)
        return out


def parse_regions(
    sizes: Mapping[str, int],
    *,
    z: IndexSpec = None,
    t: IndexSpec = None,
    roi: Sequence[int] | None = None,
    roi3d: Sequence[int] | None = None,
    roi_nd: Sequence[int] | None = None,
    roi_type: RoiType | None = None,
    tile: Sequence[int] | None = None,
    tile_shape: tuple[int, int] = (256, 256),
) -> dict[str, IndexSpec | range]:
    """Turn roi / roi3d / roi_nd / tile arguments into per-axis ranges.

    - ``roi=(x, y, w, h)``: a 2-D crop.
    - ``roi3d=(x, y, z, w, h, d)``: a crop in Y, X and Z.
    - ``roi_nd``: lower bounds then exclusive upper bounds; ``"2d"``: (y0, x0, y1, x1),
      ``"2d_timelapse"``: (t0, y0, x0, t1, y1, x1), ``"3d"``: (z0, y0, x0, z1, y1, x1),
      ``"4d"``: (t0, z0, y0, x0, t1, z1, y1, x1). Six values need ``roi_type``.
    - ``tile=(ty, tx)``: tile (ty, tx) of a grid of ``tile_shape``; edge tiles are smaller.
    """
    given = [k for k, v in (("roi", roi), ("roi3d", roi3d), ("roi_nd", roi_nd), ("tile", tile)) if v is not None]
    if len(given) > 1:
        raise SelectionError(f"pass only one of roi, roi3d, roi_nd and tile; got {', '.join(given)}")
    out: dict[str, IndexSpec | range] = {"t": t, "z": z}
    ny, nx = sizes["Y"], sizes["X"]

    def ints(vals: Sequence[int], what: str) -> list[int]:
        return whole_numbers(vals, what)

    def need(vals: Sequence[int], k: int, what: str) -> list[int]:
        v = ints(vals, what)
        if len(v) != k:
            raise SelectionError(f"{what} needs {k} integers, got {len(v)}: {tuple(vals)!r}")
        return v

    if roi is not None:
        x0, y0, w, h = need(roi, 4, "roi=(x, y, w, h)")
        out["y"], out["x"] = _span(y0, h, ny, "y"), _span(x0, w, nx, "x")
    elif roi3d is not None:
        if z is not None:
            raise SelectionError("Provide either z or roi3d, not both: roi3d already selects z")
        x0, y0, z0, w, h, d = need(roi3d, 6, "roi3d=(x, y, z, w, h, d)")
        out["y"], out["x"] = _span(y0, h, ny, "y"), _span(x0, w, nx, "x")
        out["z"] = _span(z0, d, sizes["Z"], "z")
    elif roi_nd is not None:
        vals = ints(roi_nd, "roi_nd")
        kind = roi_type or {4: "2d", 8: "4d"}.get(len(vals))
        if kind is None:
            raise SelectionError(
                f"roi_nd with {len(vals)} values is ambiguous or invalid; pass roi_type= "
                "('2d': 4 values, '2d_timelapse' or '3d': 6, '4d': 8)"
            )
        axes = {"2d": "YX", "2d_timelapse": "TYX", "3d": "ZYX", "4d": "TZYX"}.get(kind)
        if axes is None:
            raise SelectionError(f"roi_type must be '2d', '2d_timelapse', '3d' or '4d', got {roi_type!r}")
        k = len(axes)
        lo, hi = need(vals, 2 * k, f"roi_nd for roi_type={kind!r}")[:k], vals[k:]
        for ax, a, b in zip(axes, lo, hi):
            if ax in "TZ" and out[ax.lower()] is not None:
                raise SelectionError(f"Provide either {ax.lower()} or roi_nd, not both")
            out[ax.lower()] = _span(a, b - a, sizes[ax], ax.lower())
    elif tile is not None:
        ty, tx = need(tile, 2, "tile=(ty, tx)")
        th, tw = tile_shape
        gy, gx = -(-ny // th), -(-nx // tw)
        if not (0 <= ty < gy and 0 <= tx < gx):
            raise SelectionError(
                f"tile=({ty}, {tx}) is outside the {gy}x{gx} grid of {th}x{tw} tiles; "
                f"valid ty is 0..{gy - 1}, tx is 0..{gx - 1}"
            )
        out["y"] = range(ty * th, min(ny, (ty + 1) * th))
        out["x"] = range(tx * tw, min(nx, (tx + 1) * tw))
    return out


def resolve_selection(
    base: Selection,
    meta: ImageMeta,
    *,
    t: IndexSpec = None,
    z: IndexSpec = None,
    c: IndexSpec = None,
    roi: Sequence[int] | None = None,
    roi3d: Sequence[int] | None = None,
    roi_nd: Sequence[int] | None = None,
    roi_type: RoiType | None = None,
    tile: Sequence[int] | None = None,
) -> Selection:
    """Narrow ``base`` by tensor_view arguments; every index is relative to ``base`` (tiles default to the
    chunk shape of ``meta``, else 256x256)."""
    sizes = dict(zip(AXES, base.shape))
    tile_shape = meta.chunk_shape[1:] if meta.chunk_shape else (256, 256)
    regions = parse_regions(
        sizes,
        t=t,
        z=z,
        roi=roi,
        roi3d=roi3d,
        roi_nd=roi_nd,
        roi_type=roi_type,
        tile=tile,
        tile_shape=tile_shape,
    )
    return base.select(c=c, **regions)  # type: ignore[arg-type]
