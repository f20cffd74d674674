"""``OMEArrowDatasource``: a ``ray.data.Datasource`` whose read tasks each read a range of images.

The driver holds the dataset's metadata table (scanned once, filter pushed down to its
row groups) and cuts the epoch's image order into ranges; each read task carries only its
own images' rows and, in the Ray worker that runs it, opens the files, reads the images'
chunk metadata and pixels (``OMEArrowDataset.read``, one pass per block) and returns
Arrow blocks: the metadata columns plus the pixels as a tensor column. Ray's optimizer
pushes ``ds.filter(expr=...)`` on metadata columns into the scan (images that fail it are
never read) and ``select_columns`` into the read (without the image column no pixel is
read). This module imports ray; ``ome_arrow_ray`` loads it on first use.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from ray.data import Datasource
from ray.data.block import BlockMetadata
from ray.data.datasource import ReadTask

from ome_arrow_core import OMEArrowDataset
from ome_arrow_core.plugin_api import ArgumentError

from .read_task import ReadImages
from .sampling import check_crop, crop_boxes, epoch_order, image_sizes

__all__ = ["OMEArrowDatasource", "BLOCK_BYTES", "BATCH_SIZE", "block_ranges"]

#: Pixel bytes per block when ``images_per_block`` is not given: Ray Data's own default
#: largest block (``DataContext.target_max_block_size``). Measured on the loading benchmark's
#: plate (524 MB, 2 CPUs): 8 MiB blocks ran at about half the rate of 32 MiB ones; 128 MiB
#: ones took Ray's CPU time per warm epoch (driver and workers) from about 1.1 s to 0.8 s.
BLOCK_BYTES = 128 << 20
#: Default blocks hold a multiple of this many images (the batch size read with) when they hold more.
BATCH_SIZE = 32


class OMEArrowDatasource(Datasource):
    """Images of an :class:`~ome_arrow_core.OMEArrowDataset` as rows: metadata ``columns`` plus the pixels.

    ``view`` holds the ``t``/``z``/``c``/``roi``/``layout``/``channel_policy`` every image
    gets; ``crop=(h, w)`` takes a centre crop, or with ``random_crop`` one drawn from
    ``(seed, epoch, image)``; ``shuffle`` puts the images in an order drawn from
    ``(seed, epoch)`` (a new one for each ``epoch``). Read tasks get whole blocks of
    ``images_per_block`` images (default: as many as make about :data:`BLOCK_BYTES`, but no
    more than leave one block for each CPU of the cluster, rounded down to a multiple of
    ``batch_size`` when that is more than one batch, so that batches of that size do not
    straddle blocks), so there are fewer tasks than Ray asks for when there are few images.
    """

    def __init__(
        self,
        dataset: OMEArrowDataset,
        *,
        columns: Sequence[str],
        image_column: str,
        view: dict[str, Any],
        crop: tuple[int, int] | None = None,
        random_crop: bool = False,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,
        images_per_block: int | None = None,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        if random_crop and crop is None:
            raise ArgumentError(
                "random_crop=True needs crop=(h, w), the size of the crop it places at random: without it every "
                "image is read whole, the same every epoch; pass crop=(h, w)"
            )
        for name, value in (("seed", seed), ("epoch", epoch)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ArgumentError(f"{name} must be an int >= 0 (it seeds shuffling and random crops), got {value!r}")
        super().__init__()  # type: ignore[no-untyped-call]
        self._projection_map: dict[str, str] | None = None
        #: (shape, dtype) of the first image, by the predicate that selected it (None: all images).
        self._shapes: dict[str | None, tuple[tuple[int, ...], np.dtype]] = {}
        self.dataset = dataset
        self.columns = list(columns)
        self.image_column = image_column
        self.view = dict(view)
        self.crop = None if crop is None else check_crop(crop, image_sizes(dataset))
        self.random_crop, self.shuffle = bool(random_crop), bool(shuffle)
        self.seed, self.epoch = int(seed), int(epoch)
        self.images_per_block = None if images_per_block is None else max(1, int(images_per_block))
        self.batch_size = max(1, int(batch_size))

    def get_name(self) -> str:
        return "OMEArrow"

    # -- pushdown ------------------------------------------------------------------------------
    def supports_projection_pushdown(self) -> bool:
        return True

    def supports_predicate_pushdown(self) -> bool:
        return True

    def apply_predicate(self, predicate_expr: Any) -> Datasource:
        """Take a filter on the metadata columns into the scan; any other stays a Ray filter."""
        try:
            expr = predicate_expr.to_pyarrow()
            self.dataset.table.select(self.columns).slice(0, 0).filter(expr)
        except (ValueError, TypeError, pa.ArrowInvalid, pa.ArrowTypeError, NotImplementedError):
            return self
        return super().apply_predicate(predicate_expr)

    def _predicate(self) -> pc.Expression | None:
        expr = self.get_current_predicate()
        return None if expr is None else expr.to_pyarrow()

    def _outputs(self) -> tuple[list[str], str | None]:
        """(metadata columns, image column or None) that the projection keeps."""
        keep = self.get_projection_map()
        if keep is None:
            return self.columns, self.image_column
        return [n for n in self.columns if n in keep], self.image_column if self.image_column in keep else None

    # -- reads ---------------------------------------------------------------------------------
    def _selected(self) -> tuple[OMEArrowDataset, str | None]:
        """The images the predicate keeps, and the predicate as a key (None: no predicate)."""
        expr = self._predicate()
        return (self.dataset, None) if expr is None else (self.dataset.filter(expr), str(expr))

    def _image_shape(self, ds: OMEArrowDataset, key: str | None) -> tuple[tuple[int, ...], np.dtype]:
        """(shape, dtype) of ``ds``'s first image as read, found once per ``key``: the driver opens the
        files when the dataset is made, not again for each execution (Ray plans again on each)."""
        if key not in self._shapes:
            view = dict(self.view)
            if self.crop is not None:
                view["roi"] = (0, 0, self.crop[1], self.crop[0])
            first = ds.tensor_views(**view)[0]
            self._shapes[key] = (first.shape, np.dtype(first.dtype))
        return self._shapes[key]

    def estimate_inmemory_data_size(self) -> int | None:
        n = len(self.dataset)
        if n == 0 or self._outputs()[1] is None:
            return 0
        shape, dtype = self._image_shape(self.dataset, None)
        return n * int(np.prod(shape, dtype=np.int64)) * dtype.itemsize

    def _step(
        self, ds: OMEArrowDataset, key: str | None, image_column: str | None
    ) -> tuple[int, int, tuple[tuple[int, ...], np.dtype] | None]:
        """(images per block, pixel bytes per image, (shape, dtype) of the first image) of ``ds``'s blocks."""
        per_image, image = 0, None
        if image_column is not None and len(ds):
            image = self._image_shape(ds, key)
            per_image = int(np.prod(image[0], dtype=np.int64)) * image[1].itemsize
        if self.images_per_block is not None:
            return self.images_per_block, per_image, image
        step = max(1, min(BLOCK_BYTES // max(1, per_image), math.ceil(len(ds) / cluster_cpus())))
        if step > self.batch_size:  # whole batches per block: a batch cut by a block boundary is a copy more
            step -= step % self.batch_size
        return step, per_image, image

    def planned_images_per_block(self) -> int:
        """Images each block of the whole dataset holds (the last may hold fewer)."""
        return self._step(self.dataset, None, self._outputs()[1])[0]

    def planned_blocks(self) -> int:
        """Blocks of the whole dataset: ``read_dataset`` asks Ray for this many, so Ray does not cut them up.

        (Asked for more blocks than there are read tasks, Ray splits each task's output into
        pieces: measured, that took Ray's CPU time per epoch on the loading benchmark's plate
        from about 1.9 to 4.5 s.)
        """
        return max(1, math.ceil(len(self.dataset) / self.planned_images_per_block()))

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[ReadTask]:
        """Ranges of the epoch's image order, at least ``images_per_block`` images each (see :func:`block_ranges`)."""
        ds, key = self._selected()
        n = len(ds)
        if n == 0:
            return []
        columns, image_column = self._outputs()
        order = epoch_order(n, shuffle=self.shuffle, seed=self.seed, epoch=self.epoch)
        rois = None
        if self.crop is not None and image_column is not None:
            rois = crop_boxes(
                range(n), image_sizes(ds), self.crop, random=self.random_crop, seed=self.seed, epoch=self.epoch
            )
        step, per_image, image = self._step(ds, key, image_column)
        made = ds.copies()  # the copies on disk the plan comes from: each task checks its images' still are
        tasks = []
        for part in block_ranges(order, step, parallelism):
            sub = ds.select(part)
            read = ReadImages(
                sub,
                sub.table.select(columns),
                image_column,
                self._view_without_roi() if rois else self.view,
                None if rois is None else [rois[int(k)] for k in part],
                step,
                image,
                made,
            )
            meta = BlockMetadata(
                num_rows=len(part), size_bytes=len(part) * per_image, input_files=None, exec_stats=None
            )
            tasks.append(ReadTask(read, meta, per_task_row_limit=per_task_row_limit))
        return tasks

    def _view_without_roi(self) -> dict[str, Any]:
        return {k: v for k, v in self.view.items() if k != "roi"}


def cluster_cpus() -> int:
    """CPUs of the connected Ray cluster (this machine's when none is connected yet: a local Ray gets those)."""
    import ray

    if ray.is_initialized():
        resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        return max(1, int(resources.get("CPU", 1)))
    return max(1, os.cpu_count() or 1)


def block_ranges(order: np.ndarray, step: int, parallelism: int) -> list[np.ndarray]:
    """``order`` cut into read tasks: ``step`` images each, the rest last; fewer, even ones when
    ``parallelism`` (> 0) asks for fewer tasks than that."""
    n = len(order)
    blocks = math.ceil(n / step)
    if 0 < parallelism < blocks:
        return list(np.array_split(order, max(1, int(parallelism))))
    return [order[a : a + step] for a in range(0, n, step)]
