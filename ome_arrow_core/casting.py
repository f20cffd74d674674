"""Explicit ``dtype=`` casts: checked by default, so a value that does not fit is refused, not wrapped.

``casting="checked"`` (the default) refuses a cast that would change a value beyond
numpy's truncation of fractions: integers outside the target's range, NaN or infinity
into an integer type, finite floats that overflow a smaller float type. The check costs
one min/max pass over the pixels (none when every value of the source type fits; a
narrowing float cast checks its result for new infinities instead).
``casting="unsafe"`` casts as numpy does (300 -> 44 as uint8).
"""

from __future__ import annotations

from typing import Literal, TypeAlias, get_args

import numpy as np

from .errors import ArgumentError, DTypeError

__all__ = ["Casting", "CASTINGS", "check_casting", "cast_pixels", "copy_cast"]

#: How ``dtype=`` casts: ``"checked"`` refuses values the target cannot hold, ``"unsafe"`` wraps like numpy.
Casting: TypeAlias = Literal["checked", "unsafe"]
CASTINGS: tuple[str, ...] = get_args(Casting)


def check_casting(casting: object) -> Casting:
    """``casting`` if it is one of :data:`CASTINGS`, else ArgumentError."""
    if casting not in CASTINGS:
        raise ArgumentError(f"casting must be one of {list(CASTINGS)}, got {casting!r}")
    return casting  # type: ignore[return-value]


def _refuse(src: np.ndarray, dtype: np.dtype, found: str, holds: str) -> DTypeError:
    return DTypeError(
        f"casting {src.dtype} pixels to {dtype} would change values: {found}, {dtype} holds {holds}. Clip or "
        "scale first, or pass casting='unsafe' to convert as numpy does (out-of-range values wrap)"
    )


def _check_fits(src: np.ndarray, dtype: np.dtype) -> None:
    """Raise DTypeError when a value of ``src`` does not survive ``astype(dtype)`` (fractions aside)."""
    if src.size == 0 or np.can_cast(src.dtype, dtype, "safe") or src.dtype == np.bool_:
        return
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = src.min(), src.max()
        if src.dtype.kind == "f":
            if not (np.isfinite(lo) and np.isfinite(hi)):
                raise _refuse(src, dtype, "they include NaN or infinity", f"finite values {info.min}..{info.max}")
            if lo <= info.min - 1 or hi >= info.max + 1:
                raise _refuse(src, dtype, f"they range from {lo} to {hi}", f"{info.min}..{info.max}")
        elif int(lo) < info.min or int(hi) > info.max:
            raise _refuse(src, dtype, f"they range from {int(lo)} to {int(hi)}", f"{info.min}..{info.max}")
    elif dtype.kind == "b":
        lo, hi = src.min(), src.max()
        if not (0 <= lo and hi <= 1 and (src.dtype.kind in "iu" or np.isin(src, (0, 1)).all())):
            raise _refuse(src, dtype, f"they range from {lo} to {hi}", "only 0 and 1")


def _check_overflow(src: np.ndarray, out: np.ndarray) -> None:
    """Raise DTypeError when a finite float of ``src`` became infinite in ``out`` (a narrower float)."""
    if src.dtype.kind == "f" and out.dtype.kind == "f" and out.dtype.itemsize < src.dtype.itemsize:
        grew = np.isinf(out) & np.isfinite(src)
        if grew.any():
            big = np.finfo(out.dtype).max
            raise _refuse(src, out.dtype, f"{src[grew].flat[0]} is among them", f"finite values up to {big}")


def cast_pixels(src: np.ndarray, dtype: np.dtype | None, casting: Casting = "checked") -> np.ndarray:
    """``src`` as ``dtype`` (itself when it already is, or ``dtype`` is None), checked per ``casting``."""
    if dtype is None or src.dtype == dtype:
        return src
    checked = check_casting(casting) == "checked"
    if checked:
        _check_fits(src, np.dtype(dtype))
    with np.errstate(over="ignore" if checked else "warn"):
        out = src.astype(dtype)
    if checked:
        _check_overflow(src, out)
    return out


def copy_cast(dst: np.ndarray, src: np.ndarray, casting: Casting = "checked") -> None:
    """Copy ``src`` into ``dst`` (of another dtype), checked per ``casting``."""
    checked = check_casting(casting) == "checked"
    if checked:
        _check_fits(src, dst.dtype)
    with np.errstate(over="ignore" if checked else "warn"):
        np.copyto(dst, src, casting="unsafe")
    if checked:
        _check_overflow(src, dst)
