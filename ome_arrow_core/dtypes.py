"""Pixel dtypes: the mapping between numpy dtypes and OME pixel type names."""

from __future__ import annotations

import sys
from typing import Final

import numpy as np

from .errors import DTypeError

__all__ = ["OME_TYPES", "SUPPORTED", "to_ome_type", "from_ome_type", "check_dtype", "in_stored_order"]

_LITTLE: Final[bool] = sys.byteorder == "little"

#: OME ``PixelType`` name for each supported numpy dtype (little-endian storage).
OME_TYPES: Final[dict[str, str]] = {
    "uint8": "uint8",
    "int8": "int8",
    "uint16": "uint16",
    "int16": "int16",
    "uint32": "uint32",
    "int32": "int32",
    "float32": "float",
    "float64": "double",
    "bool": "bit",
}

_FROM_OME: Final[dict[str, str]] = {v: k for k, v in OME_TYPES.items()}
_FROM_OME.update({name: name for name in OME_TYPES})  # numpy names are accepted too

#: Supported numpy dtype names, in a stable order for messages.
SUPPORTED: Final[tuple[str, ...]] = tuple(OME_TYPES)


def check_dtype(dtype: object) -> np.dtype:
    """Return ``dtype`` as a native numpy dtype; raise DTypeError if it cannot be stored."""
    try:
        dt = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError as exc:
        raise DTypeError(f"{dtype!r} is not a dtype; expected one of {', '.join(SUPPORTED)}") from exc
    if dt.name not in OME_TYPES:
        raise DTypeError(
            f"pixel dtype {dt.name} cannot be stored as OME-Arrow; supported dtypes are "
            f"{', '.join(SUPPORTED)}. Convert explicitly first, e.g. arr.astype('float32')."
        )
    out: np.dtype = dt.newbyteorder("=")
    return out


def to_ome_type(dtype: object) -> str:
    """OME pixel type name for ``dtype`` (``float32`` -> ``"float"``)."""
    return OME_TYPES[check_dtype(dtype).name]


def from_ome_type(name: str) -> np.dtype:
    """Numpy dtype for an OME pixel type name; accepts numpy names too."""
    key = _FROM_OME.get(str(name).lower())
    if key is None:
        raise DTypeError(f"unknown OME pixel type {name!r}; expected one of {', '.join(sorted(set(_FROM_OME)))}")
    return np.dtype(key)


def in_stored_order(dtype: np.dtype) -> bool:
    """Whether values of ``dtype`` are in the byte order files store pixels in (little-endian), so that stored
    bytes read as they are; False where each must be swapped (big-endian, or native on a big-endian machine)."""
    return not (dtype.byteorder == ">" or (dtype.byteorder == "=" and not _LITTLE))
