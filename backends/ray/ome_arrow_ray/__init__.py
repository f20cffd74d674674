"""Ray Data engine for ome-arrow-core: ``read_dataset(path)`` -> ``ray.data.Dataset``.

``read_dataset`` builds the dataset on :class:`OMEArrowDatasource`, a ``ray.data.Datasource``
whose read tasks each take a range of images and read their metadata and pixels in the
Ray worker that runs them (one Parquet pass per block); filters on metadata columns and
column selections are pushed down into the read. Rows carry the image as a tensor column
plus the metadata columns you ask for; feed training with ``iter_torch_batches``, which
passes Ray's own options (``prefetch_batches``, ``local_shuffle_buffer_size``...) through.
Without a running Ray, ``read_dataset`` starts a local one with :func:`init_ray` (``ray.init``
with the object store's freed blocks reused sooner; see :mod:`.local_ray`). Importing this
package does not import ray.
"""

from __future__ import annotations

from typing import Any

from .data import iter_torch_batches, read_dataset
from .local_ray import init_ray

__version__ = "0.1.0"

__all__ = ["read_dataset", "iter_torch_batches", "init_ray", "OMEArrowDatasource", "__version__"]


def __getattr__(name: str) -> Any:
    """``OMEArrowDatasource`` subclasses ``ray.data.Datasource``, so it loads (with ray) on first use."""
    if name == "OMEArrowDatasource":
        from .datasource import OMEArrowDatasource

        return OMEArrowDatasource
    raise AttributeError(f"module 'ome_arrow_ray' has no attribute {name!r}")
