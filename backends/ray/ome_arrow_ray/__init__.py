"""Ray Data engine for ome-arrow-core: ``read_dataset(path)`` -> ``ray.data.Dataset``.

The metadata table is scanned once (filter pushed down), split into blocks of images,
and each block is decoded in ``map_batches`` by the worker that runs it, through
:meth:`ome_arrow_core.OMEArrowDataset.read` (one Parquet pass per block). Rows carry
the image as a tensor column plus the metadata columns you ask for; feed training with
``ds.iter_torch_batches(...)``. Importing this package does not import ray.
"""

from __future__ import annotations

from .data import iter_torch_batches, read_dataset

__version__ = "0.1.0"

__all__ = ["read_dataset", "iter_torch_batches", "__version__"]
