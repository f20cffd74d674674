"""TensorView: a selection of an image in a layout, as a strided view of its pixels."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .arguments import tile_shape
from .buffers import arrow_base
from .devices import parse_device
from .display.mixins import Thumbnailed
from .display.subjects import array_source
from .dlpack import CPU_DEVICE, caller_module, handed_over
from .errors import PluginError, SelectionError
from .layout import normalize_axes
from .registry import default_registry
from .selection import AxisIndex
from .streaming import Stacking, device_key, export_function

if TYPE_CHECKING:
    from .handlers import Exporter, ExportView, PixelSource
    from .iteration import Window
    from .registry import Registry
    from .selection import Selection

__all__ = ["TensorView", "Streamable"]


class Streamable(ABC):
    """Batch and tile iteration shared by eager and lazy views."""

    layout: str
    _registry: Registry | None

    @property
    @abstractmethod
    def dtype(self) -> np.dtype:
        """Pixel dtype of the view."""

    @property
    @abstractmethod
    def _sizes(self) -> dict[str, int]:
        """Length of each layout axis (canonical letters)."""

    @abstractmethod
    def _window(self, window: Window) -> TensorView:
        """The part of this view inside ``window`` (indices relative to this view)."""

    def _stream(
        self,
        *,
        batch_size: int | None,
        tiles: Mapping[str, int] | None,
        shuffle: bool,
        seed: int | None,
        prefetch: int,
        mode: str | None,
        device: str | None,
        contiguous: bool,
        stack: int | None = None,
        with_index: bool = False,
    ) -> Iterator[Any]:
        from .iteration import windows  # (a first plane streams nothing)
        from .streaming import stream

        sizes = self._sizes
        items = windows(sizes, batch_size=batch_size, tiles=tiles, shuffle=shuffle, seed=seed)
        on_cpu = device is None or str(device).partition(":")[0] == "cpu"  # (parsed in the tasks: errors in turn)
        item_bytes = 0  # windows that read: in groups, one batched read each (see iteration.grouped)
        if items:
            item_bytes = self.dtype.itemsize * math.prod(len(items[0].get(ax, range(n))) for ax, n in sizes.items())
        return stream(
            items,
            self._windows,
            sizes=sizes,
            item_bytes=item_bytes,
            in_groups=self._reads_windows or not on_cpu,
            prefetch=prefetch,
            mode=mode,
            device=device,
            contiguous=contiguous,
            stack=stack,
            stacking=Stacking(self.dtype, self._windows_into, self._stacked, self._export_handler),
            with_index=with_index,
        )

    #: Whether windows are read from storage (then streamed in groups read together) rather than sliced.
    _reads_windows = False

    def _windows(self, items: list[Window]) -> list[TensorView | Exception]:
        """The parts of this view inside each of ``items`` (as :meth:`_window`; subclasses read them together);
        the list ends early with the exception of the first item that cannot be read."""
        from .iteration import windows_one_by_one

        return windows_one_by_one(self._window, items)

    def _windows_into(self, items: list[Window], out: np.ndarray) -> bool:
        """Read windows ``items`` straight into ``out[i]`` (a stack's buffer) where a subclass can (True); here
        never: the windows of pixels in memory are views, copied into a stack once."""
        return False

    def _export_handler(self, kind: str, mode: str | None) -> Exporter:
        """The exporter for ``kind``, this view's dtype and ``mode`` (a cached lookup; always available)."""
        return (self._registry or default_registry()).resolve_exporter(kind, self.dtype, mode)

    def _stacked(self, pixels: np.ndarray) -> TensorView:
        """A stack of this view's items (its layout after a leading ``N``: the stack; exported, never windowed)."""
        return TensorView(pixels, "N" + self.layout, self._registry)

    def iter_dlpack(
        self,
        batch_size: int | None = 1,
        tile_size: int | tuple[int, int] | None = None,
        *,
        shuffle: bool = False,
        seed: int | None = None,
        prefetch: int = 0,
        mode: str | None = None,
        device: str | None = "cpu",
        contiguous: bool = False,
        stack: int | None = None,
        with_index: bool = False,
    ) -> Iterator[Any]:
        """Yield DLPack-capable tensors: batches over T, and tiles over Y and X.

        ``batch_size`` T indices go in each item (layouts without T: one item per tile).
        ``tile_size=(h, w)`` (or one int: square tiles) also splits Y and X; edge tiles are smaller (not padded), so
        every pixel is yielded exactly once. ``shuffle`` with ``seed`` permutes T indices
        (gathered) and tile order reproducibly. ``prefetch=N`` prepares the next N items
        in background threads while the current one is consumed. ``stack=N`` yields up to N items of one shape as
        one tensor with a new leading axis (tiles that are whole chunks read straight into it, others copied; one
        hand-over instead of N, see docs/lazy.md).
        ``with_index=True`` yields ``(index, tensor)``: ``view.to_numpy()[index]`` are the item's pixels (a tuple of
        a slice or a list of T indices per axis; for a stack, a list of its items' indices).
        """
        tiles = None
        if tile_size is not None:
            h, w = tile_shape(tile_size, 2, "tile_size=(h, w)")
            tiles = {"Y": h, "X": w}
        return self._stream(
            batch_size=batch_size,
            tiles=tiles,
            shuffle=shuffle,
            seed=seed,
            prefetch=prefetch,
            mode=mode,
            device=device,
            contiguous=contiguous,
            stack=stack,
            with_index=with_index,
        )

    def iter_tiles_3d(
        self,
        tile_size: int | tuple[int, int, int],
        *,
        batch_size: int | None = None,
        shuffle: bool = False,
        seed: int | None = None,
        prefetch: int = 0,
        mode: str | None = None,
        device: str | None = "cpu",
        contiguous: bool = False,
        stack: int | None = None,
        with_index: bool = False,
    ) -> Iterator[Any]:
        """Yield DLPack-capable 3-D tiles of ``tile_size=(d, h, w)`` over Z, Y and X (``stack``, ``with_index``: as
        :meth:`iter_dlpack`)."""
        d, h, w = tile_shape(tile_size, 3, "tile_size=(d, h, w)")
        return self._stream(
            batch_size=batch_size,
            tiles={"Z": d, "Y": h, "X": w},
            shuffle=shuffle,
            seed=seed,
            prefetch=prefetch,
            mode=mode,
            device=device,
            contiguous=contiguous,
            stack=stack,
            with_index=with_index,
        )


class TensorView(Streamable, Thumbnailed):
    """Pixels of a selection in a layout: a numpy view over Arrow memory where possible.

    ``shape``, ``strides`` (in elements) and ``dtype`` describe the tensor exactly as it is
    exported. Exports go through the registry's exporters, chosen by device, dtype and mode.
    """

    __slots__ = ("_array", "_registry", "layout")

    def __init__(self, array: np.ndarray, layout: str, registry: Registry | None = None) -> None:
        if array.ndim != len(layout):
            raise ValueError(f"layout {layout!r} has {len(layout)} axes, array has {array.ndim}")
        if array.flags.writeable:
            array = array.view()
            array.flags.writeable = False
        self._array = array
        self.layout = layout
        self._registry = registry

    # -- description ----------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """Shape in :attr:`layout` order."""
        return self._array.shape

    @property
    def strides(self) -> tuple[int, ...]:
        """Strides in elements (not bytes), as DLPack and torch report them."""
        return tuple(s // self._array.itemsize for s in self._array.strides)

    @property
    def dtype(self) -> np.dtype:
        """Pixel dtype, exactly as stored (never cast unless ``dtype=`` asked for it)."""
        return self._array.dtype

    @property
    def ndim(self) -> int:
        """Number of axes."""
        return self._array.ndim

    @property
    def nbytes(self) -> int:
        """Bytes the selected pixels occupy."""
        return int(self._array.nbytes)

    @property
    def device(self) -> str:
        """Where the pixels live (always ``"cpu"`` for a view of host memory)."""
        return "cpu"

    @property
    def is_contiguous(self) -> bool:
        """True when the view is C-contiguous."""
        return bool(self._array.flags.c_contiguous)

    @property
    def is_arrow_backed(self) -> bool:
        """True when the pixels are a view of an Arrow buffer (zero-copy exports)."""
        return arrow_base(self._array) is not None

    @property
    def _sizes(self) -> dict[str, int]:
        return dict(zip(normalize_axes(self.layout), self.shape))

    def _shown(self) -> tuple[PixelSource, Selection]:
        return array_source(self._array, self.layout)

    def __repr__(self) -> str:
        return (
            f"TensorView(layout={self.layout!r}, shape={self.shape}, dtype={self.dtype}, "
            f"device='cpu', arrow_backed={self.is_arrow_backed})"
        )

    # -- conversion -----------------------------------------------------------------------
    def to_numpy(self, contiguous: bool = False) -> np.ndarray:
        """The pixels as a read-only numpy array; ``contiguous=True`` copies only if needed."""
        if contiguous and not self._array.flags.c_contiguous:
            out = np.ascontiguousarray(self._array)
            out.flags.writeable = False
            return out
        return self._array

    def to_dlpack(
        self, mode: str | None = None, device: str | None = "cpu", contiguous: bool = False, **options: Any
    ) -> Any:
        """An object with ``__dlpack__`` / ``__dlpack_device__`` holding this view.

        On the CPU, ``mode="arrow"`` (default) is zero-copy from Arrow memory, read-only,
        and keeps that memory alive; ``mode="numpy"`` hands over a writable numpy copy.
        ``torch.from_dlpack`` ignores the read-only flag, so it gets a copy unless called
        with ``copy=False`` (see ``docs/zero-copy.md``).
        ``device="cuda"`` copies to the GPU through the best installed backend.
        """
        kind, index = device_key(device)
        if mode is None and kind == "cpu":
            mode = "arrow"
        return self._exporter(kind, mode)(self, contiguous=contiguous, device_index=index, **options)

    def _export_handler(self, kind: str, mode: str | None) -> Exporter:
        """The exporter for ``kind``, this view's dtype and ``mode`` (a cached lookup; always available)."""
        return (self._registry or default_registry()).resolve_exporter(kind, self._array.dtype, mode)

    def _exporter(self, kind: str, mode: str | None) -> ExportView:
        """The export function of the exporter for ``kind`` and ``mode`` (a cached lookup)."""
        return export_function(self._export_handler(kind, mode), kind, mode)

    def to_torch(self, device: str | None = "cpu", contiguous: bool = False, mode: str | None = None) -> Any:
        """A torch.Tensor shaped like this view (needs ``ome-arrow-core[torch]``).

        On the CPU the tensor owns a copy of the pixels (C order with ``contiguous=True``),
        so writing to it never changes the image. ``mode="arrow"`` asks for zero-copy
        instead: the tensor aliases the image's Arrow memory and must not be written to
        (torch has no read-only tensors). ``device="cuda"`` always copies to the GPU.
        """
        kind, index = ("cpu", 0) if device == "cpu" or device is None else parse_device(device)  # (inlined)
        export = (self._registry or default_registry()).resolve_exporter(kind, self._array.dtype, "torch").export
        if export is None:
            raise PluginError(f"the exporter for device={kind!r}, mode='torch' has no export function")
        return export(self, contiguous=contiguous, device_index=index, source_mode=mode)  # _exporter, inlined

    def to_jax(self, device: str | None = None, contiguous: bool = False) -> Any:
        """A jax.Array shaped like this view (needs ``ome-arrow-core[jax]``)."""
        kind, index = device_key(device)
        return self._exporter(kind, "jax")(self, contiguous=contiguous, device_index=index)

    def to_cupy(self, device: str | None = "cuda", contiguous: bool = False) -> Any:
        """A cupy.ndarray on the GPU shaped like this view (needs ``ome-arrow-core[cupy]``)."""
        kind, index = device_key(device)
        return self._exporter(kind, "cupy")(self, contiguous=contiguous, device_index=index)

    def __dlpack__(self, **kwargs: Any) -> Any:
        return handed_over(self.to_dlpack(), caller_module(), **kwargs)  # the consumer is our caller

    def __dlpack_device__(self) -> tuple[int, int]:
        return CPU_DEVICE

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if copy or dtype is not None:
            return np.array(self._array, dtype=dtype)
        return self._array

    # -- windows --------------------------------------------------------------------------
    def _window(self, window: Window) -> TensorView:
        order = normalize_axes(self.layout)
        arr = self._array
        index: list[slice] = []
        for ax in order:
            sel: AxisIndex | None = window.get(ax)
            index.append(slice(sel.start, sel.stop, sel.step) if isinstance(sel, range) else slice(None))
        arr = arr[tuple(index)]
        for dim, ax in enumerate(order):
            sel = window.get(ax)
            if sel is not None and not isinstance(sel, range):
                arr = np.take(arr, sel, axis=dim)
        return TensorView(arr, self.layout, self._registry)

    def select_window(self, **axes: range) -> TensorView:
        """Sub-view by axis letter, e.g. ``view.select_window(Y=range(0, 64))`` (a view)."""
        order = normalize_axes(self.layout)
        bad = [k for k in axes if normalize_axes(k) not in order]
        if bad:
            raise SelectionError(f"axes {bad} are not in layout {self.layout!r}")
        return self._window({normalize_axes(k): v for k, v in axes.items()})
