"""TensorView: a selection of an image in a layout, as a strided view of its pixels."""

from __future__ import annotations

import math
import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
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
from .plugin_manager import BLOCK_ENV
from .registry import PluginWarning, default_registry
from .selection import AxisIndex

if TYPE_CHECKING:
    from .handlers import Exporter, ExportView, PixelSource
    from .iteration import Warned, Window
    from .registry import Registry
    from .selection import Selection

__all__ = ["TensorView", "Streamable"]

_CPU: tuple[str, int] = ("cpu", 0)


def _device(device: str | None) -> tuple[str, int]:
    """``parse_device`` with the CPU (the common case) answered without parsing."""
    return _CPU if device is None or device == "cpu" else parse_device(device)


# Exporters whose export_many has raised, by id (an entry goes with its exporter): warned once each.
_fell_back: weakref.WeakValueDictionary[int, Exporter] = weakref.WeakValueDictionary()
_fell_back_lock = threading.Lock()


def _fallback_note(handler: Exporter, exc: Exception) -> Warned | None:
    """A PluginWarning, once per exporter, that ``handler.export_many`` raised ``exc`` where its ``export`` works
    (None after the first); its stream issues it from the consuming thread."""
    from .iteration import Warned

    with _fell_back_lock:
        if _fell_back.get(id(handler)) is handler:
            return None
        _fell_back[id(handler)] = handler
    return Warned(
        f"the {handler.name!r} exporter's export_many (plugin {handler.plugin!r}) raised "
        f"{type(exc).__name__}: {exc}; each group it fails is exported tile by tile with its export instead "
        "(slower; errors raise at their tile). Report it to the plugin's authors, or block the plugin with "
        f"{BLOCK_ENV}={handler.plugin}. Warned once per exporter",
        PluginWarning,
    )


def _export_function(handler: Exporter, kind: str, mode: str | None) -> ExportView:
    """The export function of ``handler``, the exporter found for ``kind`` and ``mode`` (PluginError when it has
    none)."""
    if handler.export is None:
        raise PluginError(f"the exporter for device={kind!r}, mode={mode!r} has no export function")
    return handler.export


class Streamable(ABC):
    """Batch and tile iteration shared by eager and lazy views."""

    layout: str

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
    ) -> Iterator[Any]:
        from .iteration import Failed, flattened, grouped, prefetched, windows  # (a first plane streams nothing)

        items = windows(self._sizes, batch_size=batch_size, tiles=tiles, shuffle=shuffle, seed=seed)
        on_cpu = device is None or str(device).partition(":")[0] == "cpu"  # (parsed in the tasks: errors in turn)
        if not items or (not self._reads_windows and on_cpu):

            def task(w: Window) -> Callable[[], Any]:
                return lambda: self._window(w).to_dlpack(mode=mode, device=device, contiguous=contiguous)

            return prefetched([task(w) for w in items], prefetch)

        def group_task(group: list[Window]) -> Callable[[], list[Any]]:
            def run() -> list[Any]:
                views: list[TensorView] = []
                failed: Exception | None = None
                for v in self._windows(group):  # an item that fails ends its group: it raises in its turn
                    if isinstance(v, Exception):
                        failed = v
                        break
                    views.append(v)
                out: list[Any] = []
                try:  # the exporter is looked up once a group (one dtype)
                    kind, index = _device(device)
                    export_mode = "arrow" if mode is None and kind == "cpu" else mode
                    handler = views[0]._export_handler(kind, export_mode) if views else None
                    got: list[Any] | None = None
                    many_failed: Exception | None = None
                    if handler is not None and handler.export_many is not None and kind != "cpu":
                        try:  # one copy for the group
                            got = list(handler.export_many(views, contiguous=contiguous, device_index=index))
                        except Exception as exc:  # tile by tile below: good tiles kept, an error lands on its tile
                            many_failed = exc
                        if got is not None and len(got) != len(views):  # a tile dropped or made up: a shift
                            raise PluginError(
                                f"the {handler.name!r} exporter's export_many returned {len(got)} tensors for "
                                f"{len(views)} views; its plugin ({handler.plugin!r}) is broken"
                            )
                    if got is not None:
                        out = got
                    elif handler is not None:
                        export = _export_function(handler, kind, export_mode)
                        for v in views:
                            out.append(export(v, contiguous=contiguous, device_index=index))
                            if many_failed is not None:  # export works where export_many failed: said once
                                note = _fallback_note(handler, many_failed)
                                if note is not None:  # ahead of the group's tiles
                                    out.insert(0, note)
                                many_failed = None
                except Exception as exc:
                    return [*out, Failed(exc)]
                return out if failed is None else [*out, Failed(failed)]

            return run

        sizes = self._sizes  # windows that read: in groups, one batched read each (see iteration.grouped)
        item_bytes = self.dtype.itemsize * math.prod(len(items[0].get(ax, range(n))) for ax, n in sizes.items())
        groups = grouped(items, item_bytes)
        return flattened(prefetched([group_task(g) for g in groups], prefetch))

    #: Whether windows are read from storage (then streamed in groups read together) rather than sliced.
    _reads_windows = False

    def _windows(self, items: list[Window]) -> list[TensorView | Exception]:
        """The parts of this view inside each of ``items`` (as :meth:`_window`; subclasses read them together);
        the list ends early with the exception of the first item that cannot be read."""
        from .iteration import windows_one_by_one

        return windows_one_by_one(self._window, items)

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
    ) -> Iterator[Any]:
        """Yield DLPack-capable tensors: batches over T, and tiles over Y and X.

        ``batch_size`` T indices go in each item (layouts without T: one item per tile).
        ``tile_size=(h, w)`` (or one int: square tiles) also splits Y and X; edge tiles are smaller (not padded), so
        every pixel is yielded exactly once. ``shuffle`` with ``seed`` permutes T indices
        (gathered) and tile order reproducibly. ``prefetch=N`` prepares the next N items
        in background threads while the current one is consumed.
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
    ) -> Iterator[Any]:
        """Yield DLPack-capable 3-D tiles of ``tile_size=(d, h, w)`` over Z, Y and X."""
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
        kind, index = _device(device)
        if mode is None and kind == "cpu":
            mode = "arrow"
        return self._exporter(kind, mode)(self, contiguous=contiguous, device_index=index, **options)

    def _export_handler(self, kind: str, mode: str | None) -> Exporter:
        """The exporter for ``kind``, this view's dtype and ``mode`` (a cached lookup; always available)."""
        return (self._registry or default_registry()).resolve_exporter(kind, self._array.dtype, mode)

    def _exporter(self, kind: str, mode: str | None) -> ExportView:
        """The export function of the exporter for ``kind`` and ``mode`` (a cached lookup)."""
        return _export_function(self._export_handler(kind, mode), kind, mode)

    def to_torch(self, device: str | None = "cpu", contiguous: bool = False, mode: str | None = None) -> Any:
        """A torch.Tensor shaped like this view (needs ``ome-arrow-core[torch]``).

        On the CPU the tensor owns a copy of the pixels (C order with ``contiguous=True``),
        so writing to it never changes the image. ``mode="arrow"`` asks for zero-copy
        instead: the tensor aliases the image's Arrow memory and must not be written to
        (torch has no read-only tensors). ``device="cuda"`` always copies to the GPU.
        """
        kind, index = _CPU if device == "cpu" or device is None else parse_device(device)
        export = (self._registry or default_registry()).resolve_exporter(kind, self._array.dtype, "torch").export
        if export is None:
            raise PluginError(f"the exporter for device={kind!r}, mode='torch' has no export function")
        return export(self, contiguous=contiguous, device_index=index, source_mode=mode)  # _exporter, inlined

    def to_jax(self, device: str | None = None, contiguous: bool = False) -> Any:
        """A jax.Array shaped like this view (needs ``ome-arrow-core[jax]``)."""
        kind, index = _device(device)
        return self._exporter(kind, "jax")(self, contiguous=contiguous, device_index=index)

    def to_cupy(self, device: str | None = "cuda", contiguous: bool = False) -> Any:
        """A cupy.ndarray on the GPU shaped like this view (needs ``ome-arrow-core[cupy]``)."""
        kind, index = _device(device)
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
