"""Tensor views under the reference's names (``ome_arrow.tensor``), on ome-arrow-core's views.

Layouts take ``TZCYX`` letters (``H``/``W`` accepted for Y/X) and report ``H``/``W`` as the
reference does. Views of a lazily scanned image stay lazy until executed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa

from .. import LazyTensorView as CoreLazyView
from .. import OMEArrow as CoreImage
from .. import TensorView as CoreView
from ..arguments import tile_shape
from ..errors import ArgumentError, LayoutError
from .errors import selection_as_value_error
from .records import record_array

__all__ = ["LazyTensorView", "TensorView", "ViewArgs", "check_chunk_policy"]

_CHUNK_POLICIES = ("auto", "combine", "keep")


def check_chunk_policy(policy: str) -> str:
    """``policy`` if it is one of auto/combine/keep; ValueError otherwise."""
    if policy not in _CHUNK_POLICIES:
        raise ArgumentError(f"Unsupported chunk_policy {policy!r}; expected one of {', '.join(_CHUNK_POLICIES)}")
    return policy


#: The reference's default layout of a view of several T or Z (its tensor views are storage order).
_REFERENCE_LAYOUT = "TZCYX"


def _core_layout(layout: str | None) -> str | None:
    return None if layout is None else layout.upper().replace("H", "Y").replace("W", "X")


def _ref_layout(layout: str) -> str:
    return layout.replace("Y", "H").replace("X", "W")


@dataclass(frozen=True)
class ViewArgs:
    """The selection and layout of a view (reference keywords)."""

    t: Any = None
    z: Any = None
    c: Any = None
    roi: Any = None
    roi3d: Any = None
    roi_nd: Any = None
    roi_type: Any = None
    tile: Any = None
    layout: str | None = None
    dtype: Any = None
    channel_policy: str = "error"

    def build(self, image: CoreImage) -> Any:
        """ome-arrow-core's view of ``image`` for these arguments (the reference's default layout: CYX, else TZCYX)."""
        with selection_as_value_error():
            view = self._view(image, _core_layout(self.layout))
            if self.layout is None and view.layout != "CYX":  # ome-arrow-core's default there is TCZYX
                view = self._view(image, _REFERENCE_LAYOUT)
            return view.collect() if isinstance(view, CoreLazyView) else view  # a scanned image reads here

    def _view(self, image: CoreImage, layout: str | None) -> Any:
        return image.tensor_view(
            t=self.t,
            z=self.z,
            c=self.c,
            roi=self.roi,
            roi3d=self.roi3d,
            roi_nd=self.roi_nd,
            roi_type=self.roi_type,
            tile=self.tile,
            layout=layout,
            dtype=self.dtype,
            channel_policy=self.channel_policy,  # type: ignore[arg-type]
        )


def _first_record(data: Any) -> pa.StructArray:
    if isinstance(data, pa.ChunkedArray):
        data = data.chunk(0) if data.num_chunks else data.combine_chunks()
    if isinstance(data, pa.StructArray):
        return data.slice(0, 1)
    return record_array(data)


def _check_mode(mode: str) -> None:
    if mode not in ("arrow", "numpy"):
        raise ArgumentError(f"Unsupported mode {mode!r}; expected 'arrow' or 'numpy'")


class _Exports:
    """DLPack, torch, JAX and iteration, shared by eager and lazy views (on ``self.collect()``)."""

    def collect(self) -> TensorView:
        raise NotImplementedError

    def to_numpy(self, *, contiguous: bool = False) -> np.ndarray:
        """The view as numpy (a strided view of the pixels unless ``contiguous``)."""
        return self.collect().to_numpy(contiguous=contiguous)

    def to_dlpack(self, *, device: str = "cpu", contiguous: bool = True, mode: str = "arrow") -> Any:
        """A DLPack-capable tensor of the view (shaped as the view for both modes)."""
        _check_mode(mode)
        return self.collect().core.to_dlpack(device=device, contiguous=contiguous, mode=mode)

    def to_torch(self, *, device: str = "cpu", contiguous: bool = True, mode: str = "arrow") -> Any:
        """The view as a torch tensor."""
        _check_mode(mode)
        return self.collect().core.to_torch(device=device, contiguous=contiguous)

    def to_jax(self, *, device: str = "cpu", contiguous: bool = True, mode: str = "arrow") -> Any:
        """The view as a JAX array."""
        _check_mode(mode)
        return self.collect().core.to_jax(device=device, contiguous=contiguous)

    def iter_dlpack(
        self,
        *,
        batch_size: int | None = None,
        tile_size: tuple[int, int] | None = None,
        tiles: tuple[int, int] | None = None,
        shuffle: bool = False,
        seed: int | None = None,
        prefetch: int = 0,
        device: str = "cpu",
        contiguous: bool = True,
        mode: str = "arrow",
        stack: int | None = None,
        with_index: bool = False,
    ) -> Iterator[Any]:
        """Batches over T (``batch_size``) and YX tiles (``tile_size``, alias ``tiles``) as DLPack tensors;
        ``stack`` and ``with_index`` (ours, not the reference's) as in ``ome_arrow_core.TensorView.iter_dlpack``."""
        _check_mode(mode)
        if tiles is not None and tile_size is not None and tuple(tiles) != tuple(tile_size):
            raise ArgumentError("pass tile_size= or tiles= (the same thing), not two different sizes")
        return self.collect().core.iter_dlpack(
            batch_size=batch_size,
            tile_size=tile_size if tile_size is not None else tiles,
            shuffle=shuffle,
            seed=seed,
            prefetch=prefetch,
            device=device,
            contiguous=contiguous,
            mode=mode,
            stack=stack,
            with_index=with_index,
        )

    def iter_tiles_3d(
        self,
        *,
        tile_size: tuple[int, int, int],
        shuffle: bool = False,
        seed: int | None = None,
        prefetch: int = 0,
        device: str = "cpu",
        contiguous: bool = True,
        mode: str = "numpy",
        stack: int | None = None,
        with_index: bool = False,
    ) -> Iterator[Any]:
        """(z, y, x) tiles of one time point each as DLPack tensors, as the reference's (a view without Z: (y, x)
        tiles); only ``mode='numpy'``. ``stack`` and ``with_index`` (ours) as in
        ``ome_arrow_core.TensorView.iter_tiles_3d``."""
        if mode != "numpy":
            raise ArgumentError("iter_tiles_3d supports only mode='numpy'")
        d, h, w = tile_shape(tile_size, 3, "tile_size=(d, h, w)")
        if min(d, h, w) < 1:
            raise ArgumentError(f"tile_size entries must be positive, got {(d, h, w)}")
        core = self.collect().core
        if "Z" not in core.layout:
            return core.iter_dlpack(
                1,
                (h, w),
                shuffle=shuffle,
                seed=seed,
                prefetch=prefetch,
                device=device,
                contiguous=contiguous,
                stack=stack,
                with_index=with_index,
            )
        return core.iter_tiles_3d(
            (d, h, w),
            batch_size=1,
            shuffle=shuffle,
            seed=seed,
            prefetch=prefetch,
            device=device,
            contiguous=contiguous,
            stack=stack,
            with_index=with_index,
        )


class TensorView(_Exports):
    """A selection of an image in a layout (reference API over ome-arrow-core's TensorView).

    ``data`` is a record (dict, StructScalar, one-row StructArray or ChunkedArray: its first
    row). ``chunk_policy`` is accepted (auto/combine/keep) and has no effect: records are
    decoded once, whatever their chunking.
    """

    def __init__(
        self,
        data: Any,
        *,
        t: Any = None,
        z: Any = None,
        c: Any = None,
        roi: Any = None,
        roi3d: Any = None,
        roi_nd: Any = None,
        roi_type: Any = None,
        tile: Any = None,
        layout: str | None = None,
        dtype: Any = None,
        chunk_policy: str = "auto",
        channel_policy: str = "error",
    ) -> None:
        check_chunk_policy(chunk_policy)
        args = ViewArgs(t, z, c, roi, roi3d, roi_nd, roi_type, tile, layout, dtype, channel_policy)
        self._bind(CoreImage(_first_record(data)), args)

    def _bind(self, image: CoreImage, args: ViewArgs) -> None:
        self._image = image
        self._args = args
        self._built: CoreView | None = None
        try:
            self._built = args.build(image)  # a bad selection raises here, as in the reference
        except LayoutError:
            pass  # a layout that drops an axis raises where the view is used, as in the reference

    @classmethod
    def over(cls, image: CoreImage, args: ViewArgs) -> TensorView:
        """The view ``args`` of an ome-arrow-core image."""
        view = cls.__new__(cls)
        view._bind(image, args)
        return view

    @property
    def core(self) -> CoreView:
        """The ome-arrow-core TensorView behind this one."""
        if self._built is None:
            self._built = self._args.build(self._image)
        return self._built

    def collect(self) -> TensorView:
        """This view (already concrete)."""
        return self

    @property
    def layout(self) -> str:
        """Axis letters of the view, with H/W for Y/X (as the reference)."""
        return _ref_layout(self.core.layout)

    @property
    def dtype(self) -> np.dtype:
        """Pixel dtype (as stored, unless ``dtype=`` was given)."""
        return self.core.dtype

    @property
    def device(self) -> str:
        """Where the pixels are (``"cpu"``)."""
        return str(self.core.device)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape in the view's layout."""
        return tuple(self.core.shape)

    @property
    def strides(self) -> tuple[int, ...]:
        """Byte strides in the view's layout (numpy's, as the reference's; ome-arrow-core's are in elements)."""
        return tuple(s * self.core.dtype.itemsize for s in self.core.strides)

    def with_layout(self, layout: str) -> TensorView:
        """The same selection in another layout."""
        return TensorView.over(self._image, replace(self._args, layout=layout))

    def to_numpy(self, *, contiguous: bool = False) -> np.ndarray:
        """The view as numpy (a strided view of the pixels unless ``contiguous``)."""
        return self.core.to_numpy(contiguous=contiguous)


class LazyTensorView(_Exports):
    """A view of a lazily scanned image: nothing is read until it is executed."""

    def __init__(self, opener: Any, args: ViewArgs) -> None:
        self._opener = opener
        self._args = args

    def collect(self) -> TensorView:
        """Read the selection now (the scanned image itself stays lazy)."""
        return TensorView.over(self._opener(), self._args)

    def with_layout(self, layout: str) -> LazyTensorView:
        """The same selection in another layout, still lazy."""
        return LazyTensorView(self._opener, replace(self._args, layout=layout))

    def select(self, **changes: Any) -> LazyTensorView:
        """A narrower lazy view: given keywords (t, z, c, roi, ...) replace this view's."""
        unknown = set(changes) - set(ViewArgs.__dataclass_fields__)
        if unknown:
            raise TypeError(f"select() got unexpected keyword(s) {sorted(unknown)}")
        return LazyTensorView(self._opener, replace(self._args, **changes))

    @property
    def layout(self) -> str:
        """The requested layout (H/W for Y/X); executed when none was given."""
        if self._args.layout is not None:
            return self._args.layout
        return self.collect().layout

    @property
    def dtype(self) -> np.dtype:
        """Pixel dtype (executes the view)."""
        return self.collect().dtype

    @property
    def device(self) -> str:
        """``"cpu"``."""
        return "cpu"

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape (executes the view)."""
        return self.collect().shape

    @property
    def strides(self) -> tuple[int, ...]:
        """Strides (executes the view)."""
        return self.collect().strides
