"""DatasetViews: the same selection of every image of a dataset, as lazy views and stacked reads."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..casting import Casting, cast_pixels, copy_cast
from ..errors import LayoutError
from ..layout import AXES, ChannelPolicy
from ..lazy import LazyTensorView
from ..selection import Selection

if TYPE_CHECKING:
    from .collection import OMEArrowDataset

__all__ = ["DatasetViews", "layout_shape", "canonical_view"]


def layout_shape(sel: Selection, layout: str) -> tuple[int, ...]:
    """The shape of ``sel`` in ``layout`` order; a dropped axis must have size 1."""
    sizes = dict(zip(AXES, sel.shape))
    dropped = [ax for ax in AXES if ax not in layout and sizes[ax] != 1]
    if dropped:
        ax = dropped[0]
        raise LayoutError(
            f"layout {layout!r} drops non-singleton axis {ax} (size {sizes[ax]}); select one "
            f"{ax.lower()} (e.g. {ax.lower()}=0) or keep {ax} in the layout"
        )
    return tuple(sizes[ax] for ax in layout)


def canonical_view(arr: np.ndarray, layout: str, *, batch: bool = False) -> np.ndarray:
    """A TZCYX view of ``arr`` (in ``layout`` order; after a batch axis with ``batch``).

    Axes missing from the layout become length 1. No copy.
    """
    lead = 1 if batch else 0
    order = layout + "".join(ax for ax in AXES if ax not in layout)
    full = np.expand_dims(arr, tuple(range(arr.ndim, 5 + lead))) if arr.ndim < 5 + lead else arr
    return full.transpose([*range(lead), *(lead + order.index(ax) for ax in AXES)])


class DatasetViews(Sequence[LazyTensorView]):
    """The same selection of every image of a dataset: lazy views, and stacked reads."""

    def __init__(
        self,
        dataset: OMEArrowDataset,
        select: dict[str, Any],
        layout: str | None,
        dtype: Any,
        channel_policy: ChannelPolicy,
        casting: Casting = "checked",
    ) -> None:
        self.dataset = dataset
        self._select = select
        self._layout = layout
        self._dtype = dtype
        self._policy: ChannelPolicy = channel_policy
        self._casting: Casting = casting

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> LazyTensorView:  # type: ignore[override]
        view = self.dataset[i].tensor_view(
            **self._select, layout=self._layout, dtype=self._dtype, channel_policy=self._policy, casting=self._casting
        )
        assert isinstance(view, LazyTensorView)
        return view

    def __iter__(self) -> Iterator[LazyTensorView]:
        for i in range(len(self)):
            yield self[i]

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the first image's view (of every view, for a dataset of equal images)."""
        return self[0].shape

    @property
    def dtype(self) -> np.dtype:
        """Dtype of the views."""
        return self[0].dtype

    @property
    def layout(self) -> str:
        """Layout of the views."""
        return self[0].layout

    @property
    def selection(self) -> dict[str, Any]:
        """The tensor_view arguments every image gets (t, z, c, roi, layout, dtype, channel_policy, casting)."""
        return {
            **self._select,
            "layout": self._layout,
            "dtype": self._dtype,
            "channel_policy": self._policy,
            "casting": self._casting,
        }

    def read(
        self, indices: Sequence[int] | np.ndarray | range | None = None, *, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Views ``indices`` (default: all) stacked on a new first axis (see OMEArrowDataset.read)."""
        arr = self.dataset.read(
            indices,
            **self._select,
            layout=self._layout,
            channel_policy=self._policy,
            out=None if self._dtype is not None else out,
        )
        if self._dtype is not None and arr.dtype != np.dtype(self._dtype):
            if out is not None:
                copy_cast(out, arr, self._casting)
                return out
            return cast_pixels(arr, np.dtype(self._dtype), self._casting)
        return arr

    def __repr__(self) -> str:
        return f"DatasetViews({len(self)} images, {self.selection})"
