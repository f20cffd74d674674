"""Dask engine for ome-arrow-core: ``to_dask(view_or_dataset)``.

A dataset (or its ``tensor_views(...)``) becomes one dask array ``(image, *layout)``; an
image or a lazy view becomes a dask array in its layout. Blocks are made of whole storage
chunks, about dask's ``array.chunk-size`` each (``chunks="auto"``), and each block is read
through the lazy views when dask computes it, so only what a computation touches is read.
``to_xarray`` wraps the same array in an ``xarray.DataArray`` with named dimensions and
coordinates. Importing this package does not import dask or xarray.
"""

from __future__ import annotations

from .array import storage_chunks, to_dask
from .labelled import to_xarray

__version__ = "0.1.0"

__all__ = ["to_dask", "to_xarray", "storage_chunks", "__version__"]
