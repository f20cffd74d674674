"""Layout algebra over the axes T, Z, C, Y, X.

Storage order is canonical ``TZCYX`` (internal). Every 5-D array that enters or leaves the
library without a named order is ``TCZYX`` (:data:`ARRAY_AXES`). A *layout* is any permutation
of any subset of those axes (``"YXC"``, ``"ZCYX"``, ``"CYX"``); ``H`` and ``W`` are aliases of
``Y`` and ``X``. Going from storage to a layout is a strided numpy view, never a copy.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Final, Literal

import numpy as np

from .errors import LayoutError

__all__ = [
    "AXES",
    "ARRAY_AXES",
    "ALIASES",
    "normalize_axes",
    "default_dim_order",
    "to_canonical",
    "default_layout",
    "apply_layout",
    "stored_view",
]

#: Canonical storage order, slowest axis first (internal: selections, sources, chunk placement).
AXES: Final[str] = "TZCYX"
#: The one public 5-D order: arrays given to the library and arrays it returns by default.
ARRAY_AXES: Final[str] = "TCZYX"
#: Accepted aliases and the axis each stands for.
ALIASES: Final[dict[str, str]] = {"H": "Y", "W": "X"}

ChannelPolicy = Literal["error", "first"]

_DEFAULT_DIM_ORDER: Final[dict[int, str]] = {2: "YX", 3: "ZYX", 4: "TCYX", 5: ARRAY_AXES}


def normalize_axes(order: str, *, what: str = "layout") -> str:
    """Return ``order`` upper-cased with aliases resolved; raise LayoutError if invalid.

    >>> normalize_axes("hwc")
    'YXC'
    """
    if not isinstance(order, str) or not order:
        raise LayoutError(f"{what} must be a non-empty string of axes from TZCYX, got {order!r}")
    return _normalize(order, what)


@lru_cache(maxsize=256)
def _normalize(order: str, what: str) -> str:
    out = "".join(ALIASES.get(ch, ch) for ch in order.upper())
    bad = sorted(set(out) - set(AXES))
    if bad:
        batch = ""
        if len(bad) == 1 and bad[0] in "NB" and "T" not in out:  # NHWC, NCHW: the batch is T
            batch = f"; a batch of images is T: {what}={order.upper().replace(bad[0], 'T')!r}"
        raise LayoutError(
            f"{what} {order!r} has unknown axes {''.join(bad)!r}; use letters from TZCYX "
            f"(H and W are aliases of Y and X){batch}"
        )
    if len(set(out)) != len(out):
        raise LayoutError(f"{what} {order!r} repeats an axis; each of TZCYX may appear once")
    return out


def default_dim_order(ndim: int) -> str:
    """Axis order assumed for an ingested array of ``ndim`` dimensions without ``dim_order``."""
    try:
        return _DEFAULT_DIM_ORDER[ndim]
    except KeyError:
        raise LayoutError(
            f"cannot infer the axes of a {ndim}-D array; expected 2-D (YX), 3-D (ZYX), "
            "4-D (TCYX) or 5-D (TCZYX), or pass dim_order= (e.g. dim_order='TYXC')"
        ) from None


def to_canonical(arr: np.ndarray, dim_order: str | None = None) -> np.ndarray:
    """View ``arr`` as 5-D ``TZCYX`` (missing axes become length 1); no copy.

    ``dim_order`` names the axes of ``arr`` (default by ndim: YX, ZYX, TCYX, TCZYX).
    A batch axis has no letter of its own: name it ``T``.
    """
    order = default_dim_order(arr.ndim) if dim_order is None else normalize_axes(dim_order, what="dim_order")
    if len(order) != arr.ndim:
        raise LayoutError(
            f"dim_order {dim_order!r} names {len(order)} axes but the array has {arr.ndim} "
            f"(shape {tuple(arr.shape)}); give one letter per axis"
        )
    if "Y" not in order or "X" not in order:
        raise LayoutError(f"dim_order {dim_order!r} must contain Y and X")
    missing = [ax for ax in AXES if ax not in order]
    full = arr.reshape(arr.shape + (1,) * len(missing))
    return full.transpose([(order + "".join(missing)).index(ax) for ax in AXES])


def default_layout(n_t: int, n_z: int) -> str:
    """``CYX`` when one T and one Z are selected, otherwise ``TCZYX`` (:data:`ARRAY_AXES`)."""
    return "CYX" if n_t == 1 and n_z == 1 else ARRAY_AXES


def apply_layout(canonical: np.ndarray, layout: str, *, channel_policy: ChannelPolicy = "error") -> np.ndarray:
    """View a 5-D ``TZCYX`` array in ``layout``; dropped axes must have length 1.

    With ``channel_policy="first"`` a dropped C axis of several channels keeps channel 0.
    """
    if canonical.ndim != 5:
        raise LayoutError(f"expected a 5-D TZCYX array, got {canonical.ndim}-D")
    shape = canonical.shape
    key = (layout, channel_policy, shape[0] == 1, shape[1] == 1, shape[2] == 1, shape[3] == 1, shape[4] == 1)
    plan = _PLANS.get(key) if isinstance(layout, str) else None  # (not a string: LayoutError below)
    if plan is None:
        plan = _layout_plan(shape, layout, channel_policy)
        if len(_PLANS) >= 1024:
            _PLANS.clear()
        _PLANS[key] = plan
    return canonical[plan[0]].transpose(plan[1])


#: :func:`_layout_plan` answers by (layout, policy, which axes have length 1): all they depend on.
_PLANS: dict[tuple[object, ...], tuple[tuple[int | slice, ...], tuple[int, ...]]] = {}


def _layout_plan(
    shape: tuple[int, ...], layout: str, channel_policy: ChannelPolicy
) -> tuple[tuple[int | slice, ...], tuple[int, ...]]:
    """(the index, then the axis order) that views a TZCYX array of ``shape`` in ``layout``."""
    order = normalize_axes(layout)
    index: list[int | slice] = []
    for ax, n in zip(AXES, shape):
        if ax in order:
            index.append(slice(None))
        elif n == 1 or (ax == "C" and channel_policy == "first"):
            index.append(0)
        else:
            hint = " or pass channel_policy='first'" if ax == "C" else ""
            raise LayoutError(
                f"layout {layout!r} drops non-singleton axis {ax} (size {n}); select one "
                f"{ax.lower()} (e.g. {ax.lower()}=0), keep {ax} in the layout{hint}"
            )
    if channel_policy not in ("error", "first"):
        raise LayoutError(f"channel_policy must be 'error' or 'first', got {channel_policy!r}")
    kept = "".join(ax for ax in AXES if ax in order)
    return tuple(index), tuple(kept.index(ax) for ax in order)


def stored_view(
    out: np.ndarray, shape: tuple[int, ...], layout: str, channel_policy: ChannelPolicy
) -> np.ndarray | None:
    """A TZCYX array of ``shape`` over the memory of ``out`` (C-contiguous) in stored order (its TCZYX transpose
    C-contiguous, as a chunk's bytes lie) that :func:`apply_layout` views in ``layout`` as ``out`` exactly (same
    memory, shape and strides), so pixels read into it are ``out``'s; None when there is none."""
    if not out.flags.c_contiguous or len(shape) != 5 or math.prod(shape) != out.size:
        return None
    t, z, c, y, x = shape
    tczyx = out.reshape(-1).reshape(t, c, z, y, x)  # (a view: out is C-contiguous)
    canonical = tczyx.transpose(0, 2, 1, 3, 4)
    try:
        seen = apply_layout(canonical, layout, channel_policy=channel_policy)
    except LayoutError:
        return None
    if seen.shape != out.shape or seen.ctypes.data != out.ctypes.data:
        return None
    strides = zip(out.shape, seen.strides, out.strides)
    return canonical if all(n == 1 or a == b for n, a, b in strides) else None
