"""CuPy arrays in: a host copy with the dtype kept."""

from __future__ import annotations

import numpy as np

from ome_arrow_core.plugin_api import check_dtype, is_cupy_array

from .devices import import_cupy

__all__ = ["is_cupy_array", "cupy_to_numpy"]


def cupy_to_numpy(obj: object) -> np.ndarray:
    """Copy a ``cupy.ndarray`` to the host; raise DTypeError for dtypes OME-Arrow cannot store."""
    check_dtype(obj.dtype)  # type: ignore[attr-defined]  # before the device-to-host copy
    cp = import_cupy()
    return np.asarray(cp.asnumpy(obj))
