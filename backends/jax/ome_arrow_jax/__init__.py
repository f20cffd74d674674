"""JAX backend for ome-arrow-core.

Installed, it lets ``OMEArrow(array)`` ingest ``jax.Array`` objects and ``view.to_jax()``
hand views to JAX (zero-copy on the CPU where JAX allows it). Importing this package
does not import jax.
"""

from __future__ import annotations

from .export import is_compact
from .ingest import is_jax_array, jax_to_numpy

__version__ = "0.1.0"

__all__ = ["is_jax_array", "jax_to_numpy", "is_compact", "__version__"]
