"""What the torch datasets share: samples (images, or tiles of images), crops, targets, epochs and batch reads.

:class:`Samples` reads through :meth:`ome_arrow_core.OMEArrowDataset.read`; in a DataLoader worker a batch is read
straight into the worker's pooled shared memory (see :mod:`.pool`). Made in the parent process, it opens the files
and loads its images' row groups there, for every worker forked later to inherit (see
:meth:`~ome_arrow_core.OMEArrowDataset.open_files`).
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from collections.abc import Callable, Sequence
from multiprocessing.context import get_spawning_popen
from typing import Any, Literal

import numpy as np
import numpy.random  # imported once here: every DataLoader worker seeds it, and would import it anew
import torch
from torch.utils.data import default_collate, get_worker_info

from ome_arrow_core import OMEArrowDataset, SelectionError, ViewSpec
from ome_arrow_core.plugin_api import ArgumentError, ChannelPolicy, gc_held

from .collate import rows_of
from .pool import BatchPool
from .prefault import prepare

__all__ = ["Samples", "Transform", "torch_dtype"]

Transform = Callable[[torch.Tensor], Any]


def _as_dataset(source: OMEArrowDataset | str | os.PathLike[str], filter: Any) -> OMEArrowDataset:
    if isinstance(source, OMEArrowDataset):
        return source.filter(filter) if filter is not None else source
    return OMEArrowDataset.scan(source, filter=filter)


class _Epoch:
    """An epoch counter shared with DataLoader workers, persistent ones included."""

    def __init__(self, value: int = 0) -> None:
        self.shared: Any = multiprocessing.RawValue("q", value)

    @property
    def value(self) -> int:
        return int(self.shared.value)

    @value.setter
    def value(self, epoch: int) -> None:
        self.shared.value = int(epoch)

    def __getstate__(self) -> dict[str, Any]:
        # Handed to a starting worker process: share the memory. Otherwise (deepcopy,
        # pickling to disk) take a snapshot of the value.
        return {"shared": self.shared} if get_spawning_popen() is not None else {"value": self.value}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.shared = state["shared"] if "shared" in state else multiprocessing.RawValue("q", state["value"])


class Samples:
    """What both datasets share: samples (images, or tiles of images), crops, targets, reads."""

    def __init__(
        self,
        source: OMEArrowDataset | str | os.PathLike[str],
        *,
        filter: Any = None,
        t: Any = None,
        z: Any = None,
        c: Any = None,
        roi: Sequence[int] | None = None,
        layout: str | None = None,
        channel_policy: ChannelPolicy = "error",
        tile: tuple[int, int] | None = None,
        crop: tuple[int, int] | None = None,
        random_crop: bool = False,
        seed: int = 0,
        transform: Transform | None = None,
        target: str | Sequence[str] | None = None,
        dtype: Any = None,
        casting: Literal["checked", "unsafe"] = "checked",
    ) -> None:
        _check_options(random_crop, crop, seed, transform)  # before the files are opened
        self.dataset = _as_dataset(source, filter)
        #: The copies on disk the samples and targets are taken from (before they are): reads check them (see _read).
        self._copies = self.dataset.copies()
        # before any DataLoader forks workers: they share what their reads check, and inherit the row groups loaded
        self.dataset.open_files(load=True)
        prepare()  # the workers' first batches look up nothing (see prefault)
        #: Names this dataset's workers' buffer pools: each epoch's new worker adopts its predecessor's (see pool).
        self._pool_key = os.urandom(8).hex()
        given = [k for k, v in (("roi", roi), ("tile", tile), ("crop", crop)) if v is not None]
        if len(given) > 1:
            raise SelectionError(f"pass only one of roi, tile and crop; got {', '.join(given)}")
        self.view = ViewSpec(t=t, z=z, c=c, layout=layout, channel_policy=channel_policy, dtype=dtype, casting=casting)
        self.roi: tuple[int, int, int, int] | None = None
        if roi is not None:
            x, y, w, h = _ints(roi, 4, "roi", "(x, y, w, h)")
            self.roi = (x, y, w, h)
        self.tile = None if tile is None else _pair(tile, "tile")
        self.crop = None if crop is None else _pair(crop, "crop")
        self.random_crop = bool(random_crop)
        self.seed = int(seed)
        self.transform = transform
        self._epoch = _Epoch()
        self._target_names = [target] if isinstance(target, str) else list(target or [])
        missing = [n for n in self._target_names if n not in self.dataset.column_names]
        if missing:
            raise ArgumentError(
                f"target columns {missing} are not in the dataset; columns: {self.dataset.column_names}"
            )
        self._targets = {n: self.dataset.table.column(n).to_pylist() for n in self._target_names}
        self._target: str | Sequence[str] | None = target
        self._yx = self._image_sizes() if (self.tile or self.crop) else None
        if self.tile is not None:
            assert self._yx is not None
            th, tw = self.tile
            per = (self._yx[:, 0] // th) * (self._yx[:, 1] // tw)
            self._grid_x = self._yx[:, 1] // tw
            self._starts: np.ndarray | None = np.concatenate([[0], np.cumsum(per)])
        else:
            self._starts = None  # sample i is image i (nothing per image to pickle to every worker)
        for name, size in (("crop", self.crop), ("tile", self.tile)):  # a tile too: the image would make no sample
            if size is not None:
                assert self._yx is not None
                small = np.nonzero((self._yx[:, 0] < size[0]) | (self._yx[:, 1] < size[1]))[0]
                if len(small):
                    raise SelectionError(
                        f"{name} {size} (h, w) is larger than image {int(small[0])} "
                        f"({int(self._yx[small[0], 0])}x{int(self._yx[small[0], 1])}); use a smaller {name}"
                    )

    # -- epochs and sizes ---------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Set the epoch: it seeds shuffling and random crops, in every worker (persistent ones too)."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ArgumentError(f"set_epoch takes an int >= 0 (the epoch number), got {epoch!r}")
        self._epoch.value = epoch

    @property
    def epoch(self) -> int:
        """The current epoch (see :meth:`set_epoch`)."""
        return self._epoch.value

    @property
    def num_samples(self) -> int:
        """Samples in the dataset: images, or full tiles of images with ``tile=``."""
        return len(self.dataset) if self._starts is None else int(self._starts[-1])

    def _image_sizes(self) -> np.ndarray:
        """(Y, X) of each image: from the table when it has size columns, else from each image."""
        ds = self.dataset
        if {"size_y", "size_x"} <= set(ds.column_names):
            y = ds.table.column("size_y").to_numpy(zero_copy_only=False)
            x = ds.table.column("size_x").to_numpy(zero_copy_only=False)
            if not (np.isnan(y.astype(float)).any() or np.isnan(x.astype(float)).any()):
                return np.stack([y, x], axis=1).astype(np.int64)
        return np.array([[img.sizes["Y"], img.sizes["X"]] for img in ds], dtype=np.int64)

    # -- samples ------------------------------------------------------------------------------
    def _locate(self, sample: int) -> tuple[int, tuple[int, int, int, int] | None]:
        """(image index, roi (x, y, w, h) or None) of ``sample``."""
        n = self.num_samples
        if not -n <= sample < n:
            raise SelectionError(f"sample {sample} is out of range; there are {n} samples")  # an IndexError
        sample %= n
        if self._starts is not None:  # tiles
            assert self.tile is not None
            k = int(np.searchsorted(self._starts, sample, side="right")) - 1
            ty, tx = divmod(sample - int(self._starts[k]), int(self._grid_x[k]))
            th, tw = self.tile
            return k, (tx * tw, ty * th, tw, th)
        if self.crop is not None:
            assert self._yx is not None
            (h, w), (ny, nx) = self.crop, (int(v) for v in self._yx[sample])
            if self.random_crop:
                rng = np.random.default_rng([self.seed, self.epoch, sample])
                y0, x0 = int(rng.integers(0, ny - h + 1)), int(rng.integers(0, nx - w + 1))
            else:
                y0, x0 = (ny - h) // 2, (nx - w) // 2
            return sample, (x0, y0, w, h)
        return sample, self.roi

    def _target_of(self, k: int) -> Any:
        if isinstance(self._target, str):
            return self._targets[self._target][k]
        return {n: v[k] for n, v in self._targets.items()}

    def _read(self, samples: Sequence[int], out: Any = None) -> np.ndarray:
        """Samples stacked; ``out``: an array, or ``(shape, dtype) -> array`` (see OMEArrowDataset.read).

        Raises StorageError (ESTALE) when a member (a dataset directory, a table, an image file) was overwritten
        since this dataset was made: the images read may be other images than those its samples, sizes and targets
        were taken from (also when that made the read fail: a file of another shape)."""
        return self.dataset.read_checked(
            self._copies,
            lambda: self._images(samples),
            f"this {type(self).__name__} (and its DataLoader)",
            lambda: self._read_samples(samples, out),
        )

    def _images(self, samples: Sequence[int]) -> Any:
        """The images of ``samples`` (sample i is image i, but for tiles)."""
        if self._starts is None:
            return samples
        return np.searchsorted(self._starts, np.asarray(samples) % self.num_samples, side="right") - 1

    def _read_samples(self, samples: Sequence[int], out: Any) -> np.ndarray:
        if self._starts is None and self.crop is None:  # sample i is image i, all with one view: checked at once
            images = [int(s) for s in samples]
            n = self.num_samples
            for s in images if images and not (-n <= min(images) and max(images) < n) else ():
                self._locate(s)  # raises SelectionError for the first out of range
            same = None if self.roi is None else [self.roi] * len(images)
            return self.dataset.read(images, rois=same, out=out, spec=self.view)
        where = [self._locate(int(s)) for s in samples]
        rois = [r for _, r in where]
        return self.dataset.read(
            [k for k, _ in where], rois=rois if any(r is not None for r in rois) else None, out=out, spec=self.view
        )

    def _items(self, samples: Sequence[int]) -> list[Any]:
        """Samples as (tensor[, target]) items, read together."""
        batch = torch.from_numpy(self._read(samples))
        items: list[Any] = []
        for s, x in zip(samples, batch):
            x = self.transform(x) if self.transform is not None else x
            items.append(x if self._target is None else (x, self._target_of(self._locate(int(s))[0])))
        return items

    def _batch(self, samples: list[int]) -> Any:
        """Samples read as one batch tensor (``(batch, targets)`` with ``target``).

        In a DataLoader worker the batch is read straight into a pooled shared-memory
        buffer (see :mod:`ome_arrow_torch.pool`); with a ``transform`` the transformed
        samples are collated instead.
        """
        if self.transform is not None:
            return default_collate(self._items(samples))
        batch = self._read_batch(samples)
        if self._target is None:
            return batch
        return batch, default_collate([self._target_of(self._locate(s)[0]) for s in samples])

    def _read_batch(self, samples: list[int]) -> torch.Tensor:
        """Samples as one tensor: in a pooled shared buffer in a DataLoader worker, else in fresh memory.

        The read sizes the buffer itself (``out=`` a function), so no image is opened twice.
        """
        pool = self._worker_pool() if get_worker_info() is not None else None
        if pool is None:
            # numpy's allocations reuse freed pages; torch.empty's fault in fresh ones for every
            # batch (measured: ~1.5x slower batch reads on a 2-core machine)
            return torch.from_numpy(self._read(samples))
        got: list[tuple[torch.Tensor, int | None]] = []

        def pooled(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
            got.append(pool.empty(shape, torch_dtype(dtype)))
            return got[-1][0].numpy()

        with gc_held():  # the read's temporaries are freed before the collector would look (see ome_arrow_core.gc_hold)
            self._read(samples, out=pooled)
        return pool.lease(*got[-1])

    def _rows(self, samples: list[int]) -> list[Any]:
        """Samples as items whose tensors are rows of one batch read (see :mod:`ome_arrow_torch.collate`).

        ``default_collate`` gives that batch back without copying it.
        """
        if self.transform is not None:
            return self._items(samples)
        rows = rows_of(self._read_batch(samples))
        if self._target is None:
            return rows
        return [(x, self._target_of(self._locate(s)[0])) for s, x in zip(samples, rows)]

    def _worker_pool(self) -> BatchPool:
        """This worker process's shared-memory buffers (made on first use in each process)."""
        pool = self.__dict__.get("_pool")
        if pool is None or pool[0] != os.getpid():
            info = get_worker_info()
            owner = (self._pool_key, info.id) if info is not None else None
            if info is not None:
                # a DataLoader worker, forked (new every epoch by default): its collections leave the objects it
                # inherited alone instead of writing to each one's header, a copy-on-write fault per page
                gc.freeze()
            pool = self.__dict__["_pool"] = (os.getpid(), BatchPool(owner=owner))
        return pool[1]

    def __getstate__(self) -> dict[str, Any]:
        if self.transform is not None and get_spawning_popen() is not None:
            _check_sendable(self.transform)
        state = self.__dict__.copy()
        state.pop("_pool", None)  # buffers belong to the process that made them
        return state


def _check_options(random_crop: bool, crop: Any, seed: Any, transform: Any) -> None:
    """Raise ArgumentError for options that would otherwise be ignored, truncated or fail only at the first read."""
    if random_crop and crop is None:
        raise ArgumentError(
            "random_crop=True needs crop=(h, w), the size of the crop it places at random: without it every sample "
            "is the whole image (or its roi, or tile), the same every epoch; pass crop=(h, w)"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ArgumentError(f"seed must be an int >= 0 (it seeds shuffling and random crops), got {seed!r}")
    if transform is not None and not callable(transform):
        raise ArgumentError(f"transform must be a function of a sample tensor, got {transform!r}")


def _check_sendable(transform: Transform) -> None:
    """Raise ArgumentError when ``transform`` cannot reach a worker process that is started afresh ("spawn",
    "forkserver": the default on macOS and Windows), instead of pickle's error or the worker's failed import."""
    import pickle
    import sys

    why = None
    try:
        pickle.dumps(transform)
    except Exception as exc:  # PicklingError, AttributeError, TypeError: whatever the object raises
        why = f"it cannot be pickled ({type(exc).__name__}: {exc})"
    else:
        main = sys.modules.get("__main__")
        if getattr(transform, "__module__", None) == "__main__" and not getattr(main, "__file__", None):
            why = "it is defined in an interactive session (a notebook), which a new process cannot import"
    if why is not None:
        raise ArgumentError(
            f"transform={transform!r} cannot be sent to a DataLoader worker started with 'spawn' or 'forkserver': "
            f"{why}. Define it in a module (a .py file) at top level (functools.partial of such a function works "
            "too), or pass multiprocessing_context='fork' to the DataLoader"
        )


def torch_dtype(dtype: np.dtype) -> torch.dtype:
    """The torch dtype of numpy ``dtype`` (uint16 stays ``torch.uint16``)."""
    known = _DTYPES.get(dtype)
    if known is None:
        known = _DTYPES[dtype] = torch.from_numpy(np.empty(0, dtype=dtype)).dtype
    return known


_DTYPES: dict[np.dtype, torch.dtype] = {}


def _ints(v: Sequence[int], n: int, what: str, form: str) -> tuple[int, ...]:
    """``v`` as ``n`` ints, refusing floats and other non-integers instead of truncating them."""
    vals = tuple(v)
    if len(vals) != n or not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in vals):
        raise SelectionError(f"{what} must be {form} of {n} ints, got {vals!r}")
    return tuple(int(i) for i in vals)


def _pair(v: Sequence[int], what: str) -> tuple[int, int]:
    h, w = _ints(v, 2, what, "(h, w)")
    if min(h, w) < 1:
        raise SelectionError(f"{what} must be (h, w) of positive ints, got {tuple(v)!r}")
    return h, w
