"""OME-Arrow datasets as Ray datasets: metadata rows in, image tensors decoded in map_batches."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ome_arrow_core import OMEArrowDataset, SchemaError

if TYPE_CHECKING:
    import ray.data

__all__ = ["read_dataset", "iter_torch_batches"]

_INDEX = "__ome_arrow_index"


class _Decode:
    """The map_batches function: pixels of a batch of image indices, read in one pass."""

    def __init__(self, dataset: OMEArrowDataset, view: dict[str, Any], column: str) -> None:
        self.dataset = dataset
        self.view = view
        self.column = column

    def __call__(self, batch: pa.Table) -> pa.Table:
        indices = batch.column(_INDEX).to_numpy()
        pixels = self.dataset.read(indices, **self.view)
        out = {self.column: list(pixels)} if pixels.ndim == 1 else {self.column: _tensor_column(pixels)}
        table = batch.drop_columns([_INDEX])
        for name, values in out.items():
            table = table.append_column(name, values)
        return table


def _tensor_column(pixels: np.ndarray) -> pa.Array:
    """A fixed-shape tensor column (one tensor per row) that Ray converts back to ndarrays."""
    from ray.data.extensions import ArrowTensorArray

    return ArrowTensorArray.from_numpy(pixels)


def read_dataset(
    source: OMEArrowDataset | str | os.PathLike[str],
    *,
    filter: Any = None,
    columns: Sequence[str] | None = None,
    image_column: str = "image",
    images_per_block: int = 32,
    t: Any = None,
    z: Any = None,
    c: Any = None,
    roi: Sequence[int] | None = None,
    layout: str | None = None,
    channel_policy: str = "error",
) -> ray.data.Dataset:
    """A ``ray.data.Dataset`` of an OME-Arrow dataset: one row per image.

    Each row has ``image_column`` (the selected pixels in ``layout``, dtype kept) and the
    metadata ``columns`` (default: the dataset's extra columns, e.g. plate, well, label).
    ``filter`` (a pyarrow expression or ``{"well": "A01"}``) is pushed down when the
    metadata is scanned; pixels are read by the Ray workers, ``images_per_block`` per
    task. Ray starts locally when no cluster is connected (``ray.init(address=...)`` first
    to use one).
    """
    import ray.data

    ds = OMEArrowDataset.scan(source, filter=filter) if not isinstance(source, OMEArrowDataset) else (
        source.filter(filter) if filter is not None else source)
    if len(ds) == 0:
        raise SchemaError(f"no images match filter {filter!r}; nothing to read")
    keep = list(columns) if columns is not None else ds.extra_columns
    missing = [n for n in keep if n not in ds.column_names]
    if missing:
        raise SchemaError(f"columns {missing} are not in the dataset; its columns: {ds.column_names}")
    if image_column in keep:
        raise SchemaError(f"image_column {image_column!r} collides with a metadata column; pick another name")
    table = ds.table.select(keep).append_column(_INDEX, pa.array(np.arange(len(ds), dtype=np.int64)))
    step = max(1, int(images_per_block))
    blocks = [table.slice(i, step) for i in range(0, table.num_rows, step)]
    view = {"t": t, "z": z, "c": c, "roi": roi, "layout": layout, "channel_policy": channel_policy}
    decode = _Decode(ds, view, image_column)
    return ray.data.from_arrow(blocks).map_batches(decode, batch_format="pyarrow", batch_size=step)


def iter_torch_batches(source: OMEArrowDataset | str | os.PathLike[str], *, batch_size: int = 32,
                       filter: Any = None, columns: Sequence[str] | None = None,
                       **options: Any) -> Iterator[dict[str, Any]]:
    """Batches as dicts of torch tensors: ``read_dataset(...).iter_torch_batches(batch_size=...)``.

    Torch tensors hold numbers only, so ``columns`` defaults to the numeric extra columns
    (labels, sites...); name string columns explicitly only with a ``collate_fn`` of your own.
    """
    ds = OMEArrowDataset.scan(source, filter=filter) if not isinstance(source, OMEArrowDataset) else (
        source.filter(filter) if filter is not None else source)
    if columns is None:
        types = ds.table.schema
        columns = [n for n in ds.extra_columns
                   if pa.types.is_integer(types.field(n).type) or pa.types.is_floating(types.field(n).type)
                   or pa.types.is_boolean(types.field(n).type)]
    return iter(read_dataset(ds, columns=columns, **options).iter_torch_batches(batch_size=batch_size))
