"""DatasetViews: the same selection of every image of a dataset, as lazy views and stacked reads."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import LayoutError
from ..layout import AXES
from ..lazy import LazyTensorView
from ..selection import Selection
from ..view_spec import ViewSpec

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

    def __init__(self, dataset: OMEArrowDataset, spec: ViewSpec) -> None:
        self.dataset = dataset
        self.spec = spec

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> LazyTensorView:  # type: ignore[override]
        view = self.dataset[i].view_of(self.spec)
        if not isinstance(view, LazyTensorView):  # dataset images are opened lazily
            raise TypeError(f"image {i} of the dataset is not lazy; got {type(view).__name__}")
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
        """Dtype of the first image's view, as :attr:`shape` (of every view when the images share a dtype, as
        :meth:`read` needs); with ``dtype=``, that cast's, which every view has (no image opened)."""
        cast = self.spec.cast
        return cast if cast is not None else self[0].dtype

    @property
    def layout(self) -> str:
        """Layout of the views."""
        return self[0].layout

    @property
    def selection(self) -> dict[str, Any]:
        """The tensor_view arguments every image gets (t, z, c, roi, layout, dtype, channel_policy, casting...)."""
        spec = self.spec
        crops = {k: getattr(spec, k) for k in ("roi3d", "roi_nd", "roi_type", "tile") if getattr(spec, k) is not None}
        return {
            "t": spec.t,
            "z": spec.z,
            "c": spec.c,
            "roi": spec.roi,
            **crops,
            "layout": spec.layout,
            "dtype": spec.dtype,
            "channel_policy": spec.channel_policy,
            "casting": spec.casting,
        }

    def read(
        self, indices: Sequence[int] | np.ndarray | range | None = None, *, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Views ``indices`` (default: all) stacked on a new first axis (see OMEArrowDataset.read)."""
        return self.dataset.read(indices, spec=self.spec, out=out)

    def __repr__(self) -> str:
        return f"DatasetViews({len(self)} images, {self.selection})"
