"""Map-style batches without a second copy: ``default_collate`` hands back the batch the rows came from.

``DataLoader(ds, batch_size=B)`` asks the dataset for a batch's samples
(``__getitems__``), then ``default_collate`` stacks them into a fresh tensor (in a worker:
a fresh shared-memory segment, filled page by page). Our ``__getitems__`` reads the whole
batch into one tensor (a pooled shared buffer in a worker, see :mod:`ome_arrow_torch.pool`)
and returns its rows as :class:`BatchRow` tensors. :func:`collate_rows`, registered in
torch's ``default_collate_fn_map`` (the extension point torch documents), recognises a
complete batch of rows, in order, and returns the batch they are views of: no copy. Any
other list of rows (another order, a subset, rows of several batches) is stacked as
``default_collate`` would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data._utils.collate import collate_tensor_fn, default_collate_fn_map

__all__ = ["BatchRow", "rows_of", "collate_rows", "register"]


class BatchRow(torch.Tensor):
    """Row ``i`` of a batch tensor read in one go (a view of it) that knows its batch.

    Operations on it give plain tensors; pickled it travels as a plain tensor.
    """

    __torch_function__ = torch._C._disabled_torch_function_impl  # type: ignore[assignment]
    _batch: torch.Tensor
    _row: int

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        return (_plain, (self.as_subclass(torch.Tensor),))


def _plain(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


def rows_of(batch: torch.Tensor) -> list[torch.Tensor]:
    """The rows of ``batch`` as :class:`BatchRow` views that :func:`collate_rows` can put back together."""
    rows: list[torch.Tensor] = []
    for i, view in enumerate(batch.as_subclass(torch.Tensor).unbind(0)):
        row = view.as_subclass(BatchRow)
        row._batch, row._row = batch, i
        rows.append(row)
    return rows


def collate_rows(
    batch: Sequence[torch.Tensor], *, collate_fn_map: dict[type | tuple[type, ...], Callable[..., Any]] | None = None
) -> torch.Tensor:
    """The batch tensor the rows came from when they are all its rows in order; else the rows stacked."""
    whole: torch.Tensor | None = getattr(batch[0], "_batch", None)
    if (
        whole is not None
        and len(batch) == whole.shape[0]
        and all(type(r) is BatchRow and r._batch is whole and r._row == i for i, r in enumerate(batch))
    ):
        return whole
    stacked: torch.Tensor = collate_tensor_fn(
        [r.as_subclass(torch.Tensor) for r in batch], collate_fn_map=collate_fn_map
    )
    return stacked


def register() -> None:
    """Teach ``default_collate`` about :class:`BatchRow` (idempotent)."""
    default_collate_fn_map.setdefault(BatchRow, collate_rows)
