"""What one Ray read task runs: its images' pixels and metadata rows, as Arrow blocks.

A task's pixels are read into a buffer the worker keeps (:mod:`.buffers`) when the
image shape the driver planned holds; the block's tensor column is a zero-copy view of it,
copied once, into Ray's object store, when the task yields the block.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from ome_arrow_core import OMEArrowDataset
from ome_arrow_core.plugin_api import DamagedFileError, gc_held

from .buffers import block_buffers

__all__ = ["ReadImages", "tensor_column"]


def tensor_column(pixels: np.ndarray) -> pa.Array:
    """One fixed-shape tensor per row (zero-copy from ``pixels``); Ray hands them back as ndarrays."""
    from ray.data.extensions import ArrowTensorArray

    return ArrowTensorArray.from_numpy(pixels)


class ReadImages:
    """One read task: its images' pixels, ``step`` per block, with their rows of the metadata columns.

    ``meta`` (the task's rows, cut on the driver) travels with the task: a dataset
    pickles without its table, and reading the table again in every task cost more than
    the pixels of a small block. ``image`` is the (shape, dtype) the driver expects of one
    image; a block that turns out otherwise is read into a fresh array instead.
    """

    def __init__(
        self,
        dataset: OMEArrowDataset,
        meta: pa.Table,
        image_column: str | None,
        view: dict[str, Any],
        rois: list[tuple[int, int, int, int]] | None,
        step: int,
        image: tuple[tuple[int, ...], np.dtype] | None = None,
        made: list[tuple[str, int, int]] | None = None,
    ) -> None:
        self.dataset, self.meta, self.image_column = dataset, meta, image_column
        self.view, self.rois, self.step, self.image = view, rois, step, image
        #: The copies on disk the driver planned from (``OMEArrowDataset.copies``): each block checks its images'.
        self.made = made

    def __call__(self) -> Iterator[pa.Table]:
        n, meta = len(self.dataset), self.meta
        for a in range(0, n, self.step):
            b = min(n, a + self.step)
            block = meta.slice(a, b - a)
            if self.image_column is not None:
                block = block.append_column(self.image_column, tensor_column(self.pixels(a, b)))
            yield block

    def pixels(self, a: int, b: int) -> np.ndarray:
        """Images ``a:b`` of the task, stacked (in a kept buffer when the planned shape holds), read with the
        garbage collector held off (``plugin_api.gc_held``)."""
        with gc_held():  # overwritten since planned: other images than the task's metadata rows describe, refused
            return self.dataset.read_checked(
                self.made, lambda: range(a, b), "this Ray dataset", lambda: self._pixels(a, b)
            )

    def _pixels(self, a: int, b: int) -> np.ndarray:
        rois = self.rois[a:b] if self.rois is not None else None
        if self.image is None:
            return self.dataset.read(range(a, b), rois=rois, **self.view)
        shape, dtype = self.image
        out = block_buffers().empty((b - a, *shape), dtype)
        try:
            return self.dataset.read(range(a, b), rois=rois, out=out, **self.view)
        except DamagedFileError:  # the files are damaged: no second read, the error goes to the caller
            raise
        except ValueError:  # out= of another shape than planned (ArgumentError), or a real error the plain read raises
            del out
            return self.dataset.read(range(a, b), rois=rois, **self.view)
