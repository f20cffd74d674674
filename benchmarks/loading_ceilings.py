"""The ceilings and floors of benchmark_loading.py's cases: what replaces a case's reads to find what the rest costs.

- :func:`filled_datasource` (``ray-send``, and ray_epochs.py): a Ray datasource whose read tasks fill blocks of the
  same size in the kept per-worker buffers ``ray``'s read tasks read into;
- :func:`ready_dataset` (``mapnp-send-*``): a map-style dataset whose items are one ready tensor of an image's size;
- :func:`filling_dataset` (``mapnp-fill-*``): ``OMEArrowTorchDataset`` whose batches are filled instead of read.

Their classes are made inside the functions, so Ray pickles them by value (its workers need not import this file).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["filled_datasource", "ready_dataset", "filling_dataset"]


def filled_datasource(n: int, shape: tuple[int, ...], per: int) -> Any:
    """A Ray datasource of ``n`` uint16 images of ``shape``, ``per`` a block, made, not read."""
    import pyarrow as pa
    from ray.data import Datasource
    from ray.data.block import BlockMetadata
    from ray.data.datasource import ReadTask
    from ray.data.extensions import ArrowTensorArray

    def read(k: int) -> list[Any]:
        from ome_arrow_ray.buffers import block_buffers

        block = block_buffers().empty((k, *shape), np.dtype(np.uint16))  # the kept buffers read tasks fill
        block.fill(7)
        return [pa.table({"image": ArrowTensorArray.from_numpy(block)})]

    class Filled(Datasource):  # type: ignore[misc]
        def estimate_inmemory_data_size(self) -> int:
            return n * int(np.prod(shape)) * 2

        def get_read_tasks(self, parallelism: int, **_: Any) -> list[Any]:
            sizes = [min(per, n - a) for a in range(0, n, per)]
            meta = [BlockMetadata(num_rows=k, size_bytes=None, input_files=None, exec_stats=None) for k in sizes]
            return [ReadTask(lambda k=k: read(k), m) for k, m in zip(sizes, meta)]

    return Filled()


def ready_dataset(n: int, shape: tuple[int, ...]) -> Any:
    """A map-style dataset of ``n`` items, each the same ready uint16 tensor of ``shape`` (``mapnp-send-*``)."""
    import torch
    from torch.utils.data import Dataset

    ready = torch.from_numpy(np.full(shape, 7, dtype=np.uint16))

    class Ready(Dataset):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return n

        def __getitem__(self, i: int) -> Any:
            return ready

        def set_epoch(self, epoch: int) -> None:
            pass

    return Ready()


def filling_dataset(ds: Any) -> Any:
    """``OMEArrowTorchDataset(ds)`` whose batches are filled, not read (``mapnp-fill-*``)."""
    from ome_arrow_torch import OMEArrowTorchDataset

    shape = tuple(ds.tensor_views()[0].shape)

    class Filling(OMEArrowTorchDataset):
        def _read(self, samples: Any, out: Any = None) -> np.ndarray:
            want = (len(samples), *shape)
            arr = out(want, np.dtype(np.uint16)) if callable(out) else np.empty(want, np.uint16)
            arr.fill(7)
            return arr  # type: ignore[no-any-return]

    return Filling(ds)
