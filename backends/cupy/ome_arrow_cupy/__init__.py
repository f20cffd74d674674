"""CuPy backend for ome-arrow-core: views to CUDA arrays, CuPy arrays in.

Importing this package (or its plugin) never imports CuPy; the handlers do on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
