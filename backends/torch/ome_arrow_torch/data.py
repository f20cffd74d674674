"""PyTorch datasets over OME-Arrow datasets: map-style (random access) and iterable (sharded).

Both read through :meth:`ome_arrow_core.OMEArrowDataset.read`, so a batch of images of a
chunk dataset costs one Parquet read and one copy per chunk; the dtype is kept (uint16
stays ``torch.uint16``). Neither holds open files: each DataLoader worker (and each DDP
rank) opens its own on first read, or takes over what its parent process opened and
loaded when the dataset was made (forked workers, for files unchanged since).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from ome_arrow_core import OMEArrowDataset
from ome_arrow_core.plugin_api import ArgumentError, SelectionError, SelectionTypeError

from .collate import register
from .samples import Samples, Transform, torch_dtype

__all__ = ["OMEArrowTorchDataset", "OMEArrowIterableDataset", "shard_indices", "torch_dtype", "Transform"]

register()  # default_collate gives a map-style batch back without copying it


class OMEArrowTorchDataset(Samples, Dataset):  # type: ignore[type-arg]
    """Map-style dataset: sample ``i`` is image ``i`` (or a tile of one), read on access.

    ``t``, ``z``, ``c``, ``roi=(x, y, w, h)`` and ``layout`` select the same part of every
    image; ``tile=(h, w)`` makes each full tile of each image a sample (edge remainders are
    left out; an image smaller than a tile is refused, as for ``crop``); ``crop=(h, w)``
    takes a centre crop, or with ``random_crop=True`` one at a position drawn from
    ``(seed, epoch, sample)``. ``dtype`` (with ``casting``) casts as ``tensor_view(dtype=)``
    does: images stored in several dtypes read as one batch only with it. ``transform`` is applied to each sample
    tensor; ``target`` names metadata column(s) returned next to it: ``(tensor, target)``.
    Batches from a DataLoader are read together (``__getitems__``), in a worker straight
    into reused shared memory, and ``default_collate`` hands that batch on without copying
    it (:mod:`ome_arrow_torch.collate`). ``ds[[i, j, ...]]`` reads samples as one batch
    tensor too, for ``DataLoader(ds, sampler=BatchSampler(...), batch_size=None)``. Once the dataset on
    disk is overwritten (a new copy swapped in; appends and compactions are not), every read raises
    ``StorageError``: samples and targets are the old copy's.
    """

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, i: int | Sequence[int] | slice) -> Any:
        """Sample ``i`` (an int, or a 0-d tensor or array); or, for a sequence of indices (a 1-d tensor or array, a
        slice), those samples as one batch (see the class docstring)."""
        if isinstance(i, (torch.Tensor, np.ndarray)):
            if i.ndim > 1:
                raise SelectionError(f"sample indices take one axis, got an array of shape {tuple(i.shape)}")
            i = i.tolist()  # a 0-d one: an int
        if isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_)):
            return self._items([int(i)])[0]
        if isinstance(i, slice):
            return self._batch(list(range(*i.indices(len(self)))))
        if isinstance(i, (str, bytes)) or not isinstance(i, Sequence):
            raise SelectionTypeError(
                f"a sample index must be an integer or a sequence of integers, got {i!r} ({type(i).__name__})"
            )
        return self._batch(_sample_indices(i))

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        """Many samples with one read (the DataLoader calls this for each batch).

        Their tensors are rows of one batch tensor (in a worker, a pooled shared buffer);
        ``default_collate`` returns that tensor instead of copying the rows into a new one.
        """
        return self._rows(_sample_indices(indices))


def _sample_indices(indices: Sequence[Any]) -> list[int]:
    """``indices`` as ints; SelectionTypeError for one that is not an integer (a float, a bool, a str: ``int()``
    would read another sample)."""
    out = []
    for i in indices:
        if type(i) is not int and (isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer))):
            raise SelectionTypeError(f"a sample index must be an integer, got {i!r} ({type(i).__name__})")
        out.append(int(i))
    return out


def shard_indices(
    n: int, *, shuffle: bool, seed: int, epoch: int, rank: int, world_size: int, drop_last: bool = False
) -> np.ndarray:
    """The sample indices one rank reads in one epoch: a permutation (or 0..n-1) split by rank.

    Ranks take every ``world_size``-th sample, so together they read each exactly once;
    their counts differ by at most one unless ``drop_last`` trims all to the same count.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ArgumentError(
            f"rank must be in 0..world_size-1 and world_size >= 1, got rank={rank}, world_size={world_size}"
        )
    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    if drop_last:
        order = order[: n - n % world_size]
    return order[rank::world_size]


class OMEArrowIterableDataset(Samples, IterableDataset):  # type: ignore[type-arg]
    """Iterable dataset sharded by DDP rank and DataLoader worker: no sample read twice or skipped.

    Every epoch the samples are put in one order (a permutation from ``(seed, epoch)`` with
    ``shuffle=True``: call :meth:`set_epoch` each epoch), split between ranks (``rank`` and
    ``world_size``, or ``torch.distributed`` when it is initialised), then between the
    DataLoader workers of each rank. With ``batch_size`` the dataset yields whole batches
    (use ``DataLoader(ds, batch_size=None)``), each read with one pass over the files
    straight into shared memory; without it, single samples read ``read_size`` at a time.
    Other arguments are those of :class:`OMEArrowTorchDataset`.
    """

    def __init__(
        self,
        source: OMEArrowDataset | str | os.PathLike[str],
        *,
        batch_size: int | None = None,
        shuffle: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        drop_last: bool = False,
        read_size: int = 32,
        **options: Any,
    ) -> None:
        for name, value in (("batch_size", batch_size), ("read_size", read_size)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
                none = " or None" if name == "batch_size" else ""
                raise ArgumentError(f"{name} must be an int >= 1{none}, got {value!r}")
        if (rank is None) != (world_size is None):
            raise ArgumentError("pass both rank and world_size, or neither (then torch.distributed decides)")
        super().__init__(source, **options)
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.rank, self.world_size = rank, world_size
        self.drop_last = bool(drop_last)
        self.read_size = int(read_size)

    def _dist(self) -> tuple[int, int]:
        if self.rank is not None and self.world_size is not None:
            return int(self.rank), int(self.world_size)
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def shard(self) -> np.ndarray:
        """The samples this rank reads this epoch, in order (all of its workers together)."""
        rank, world = self._dist()
        return shard_indices(
            self.num_samples,
            shuffle=self.shuffle,
            seed=self.seed,
            epoch=self.epoch,
            rank=rank,
            world_size=world,
            drop_last=self.drop_last,
        )

    def __len__(self) -> int:
        """Items this rank yields per epoch: samples, or batches with ``batch_size``."""
        n = len(self.shard())
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _groups(self) -> list[np.ndarray]:
        mine = self.shard()
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        if self.batch_size is None:
            mine = mine[wid::nw]
            return [mine[i : i + self.read_size] for i in range(0, len(mine), self.read_size)]
        b = self.batch_size
        batches = [mine[i : i + b] for i in range(0, len(mine), b)]
        if self.drop_last and batches and len(batches[-1]) < b:
            batches.pop()
        return batches[wid::nw]  # batch j comes from worker j % nw: the DataLoader keeps the order

    def __iter__(self) -> Iterator[Any]:
        for group in self._groups():
            samples = [int(s) for s in group]
            if self.batch_size is None:
                yield from self._items(samples)
            else:
                yield self._batch(samples)
