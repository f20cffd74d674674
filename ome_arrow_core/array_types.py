"""Which framework an array object belongs to, without importing any framework.

The checks are array-api-compat's (``is_torch_array``, ``is_jax_array``, ``is_cupy_array``),
which look at the object's type by name. They run only when the framework is already
imported (an object of its type cannot exist otherwise), so plain numpy input never loads
array-api-compat either.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import cache

__all__ = ["is_cupy_array", "is_jax_array", "is_torch_array"]


@cache
def _check(name: str) -> Callable[[object], bool]:
    import array_api_compat

    check: Callable[[object], bool] = getattr(array_api_compat, name)
    return check


def is_torch_array(obj: object) -> bool:
    """True for a ``torch.Tensor``."""
    return "torch" in sys.modules and _check("is_torch_array")(obj)


def is_jax_array(obj: object) -> bool:
    """True for a ``jax.Array`` (tracers included, as array-api-compat counts them)."""
    return "jax" in sys.modules and _check("is_jax_array")(obj)


def is_cupy_array(obj: object) -> bool:
    """True for a ``cupy.ndarray``."""
    return "cupy" in sys.modules and _check("is_cupy_array")(obj)
