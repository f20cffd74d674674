"""Dask engine for ome-arrow-core: ``to_dask(view_or_dataset)``.

A dataset (or its ``tensor_views(...)``) becomes one dask array ``(image, *layout)``; an
image or a lazy view becomes a dask array in its layout. Chunks follow the storage chunks
(one block per chunk, ``images_per_chunk`` images per block), and each block is read
through the lazy views when dask computes it, so only what a computation touches is read.
Importing this package does not import dask.
"""

from __future__ import annotations

from .array import storage_chunks, to_dask

__version__ = "0.1.0"

__all__ = ["to_dask", "storage_chunks", "__version__"]
