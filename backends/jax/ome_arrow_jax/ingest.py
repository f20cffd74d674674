"""Ingest of ``jax.Array``: a host numpy array with the array's dtype."""

from __future__ import annotations

from typing import Any

import numpy as np

from ome_arrow_core import DTypeError
from ome_arrow_core.plugin_api import SUPPORTED, is_jax_array

__all__ = ["is_jax_array", "jax_to_numpy"]

_SUGGEST = {
    "float16": "jnp.float32",
    "bfloat16": "jnp.float32",
    "int64": "jnp.int32",
    "uint64": "jnp.uint32",
}


def jax_to_numpy(array: Any) -> np.ndarray:
    """``array`` as a numpy array of the same dtype, copied to the host if on a GPU.

    Raises DTypeError, before any transfer, for dtypes OME-Arrow cannot store
    (bfloat16, float16, int64, complex, float8, ...).
    """
    name = np.dtype(array.dtype).name
    if name not in SUPPORTED:
        target = _SUGGEST.get(name, "one of them, e.g. jnp.abs(x).astype(jnp.float32)")
        raise DTypeError(
            f"jax array dtype {name} cannot be stored as OME-Arrow; supported dtypes are "
            f"{', '.join(SUPPORTED)}. Convert explicitly first, e.g. to {target}."
        )
    return np.asarray(array)
