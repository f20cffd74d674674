"""LazyTensorView: a tensor view of a scanned source that reads nothing until executed."""

from __future__ import annotations

import errno
import math
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from .casting import Casting, cast_pixels, check_casting
from .devices import parse_device
from .display.mixins import Thumbnailed
from .dlpack import CPU_DEVICE, caller_module, handed_over
from .errors import StorageError
from .handlers import PixelSource
from .host_memory import host_memory
from .layout import ChannelPolicy, apply_layout, normalize_axes, stored_view
from .registry import default_registry
from .selection import AxisIndex, Selection, resolve_selection
from .view import Streamable, TensorView
from .view_spec import channels_read

if TYPE_CHECKING:
    from .iteration import Window
    from .registry import Registry

__all__ = ["LazyTensorView", "materialize", "layout_shape", "ChangedSource", "plan_kept", "plan_checked"]

#: The position of each axis letter among Selection's fields.
_FIELD = {"T": 0, "Z": 1, "C": 2, "Y": 3, "X": 4}
#: The one byte every zero-stride shape probe views.
_ONE_BYTE = bytes(1)


def materialize(
    source: PixelSource,
    sel: Selection,
    layout: str,
    dtype: np.dtype | None,
    channel_policy: ChannelPolicy,
    registry: Registry | None,
    casting: Casting = "checked",
    pixels: np.ndarray | None = None,
) -> TensorView:
    """Read ``sel`` from ``source`` and view it in ``layout`` (cast only if ``dtype`` asks, per ``casting``);
    ``pixels``: the pixels of ``channels_read(sel, layout, channel_policy)``, read already."""
    sel = channels_read(sel, layout, channel_policy)
    pixels = cast_pixels(source.read(sel) if pixels is None else pixels, dtype, casting)
    return TensorView(apply_layout(pixels, layout, channel_policy=channel_policy), layout, registry)


#: Shapes :func:`layout_shape` worked out (a view of the same shape and layout is made again and again).
_SHAPES: dict[tuple[tuple[int, ...], str, str], tuple[int, ...]] = {}
_SHAPES_KEPT = 4096


def plan_kept(state: dict[str, Any], source: PixelSource) -> dict[str, Any]:
    """A copy of ``state`` (what a pickle keeps of an image or a view reading ``source``) with the metadata its
    selection was planned on: a source that reopens its file in the receiving process may find another image."""
    return {**state, "_planned": source.meta}


def plan_checked(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` from :func:`plan_kept`, unpickled: its ``_source`` a :class:`ChangedSource` when the file holds an
    image of other sizes or dtype now than the selection was planned on."""
    state = dict(state)
    planned, now = state.pop("_planned", None), state["_source"]
    if planned is not None and (dict(planned.sizes), planned.dtype) != (dict(now.meta.sizes), now.meta.dtype):
        state["_source"] = ChangedSource(planned, now)
    return state


class ChangedSource:
    """A view's source whose file holds another image than the view was planned on (it reopened the file after it
    was replaced): its metadata is the planned one, and every read raises StorageError (errno ESTALE)."""

    def __init__(self, planned: Any, now: PixelSource) -> None:
        self.meta, self._now = planned, now

    def _error(self) -> StorageError:
        was, now = self.meta, self._now.meta

        def shape(m: Any) -> str:
            return " ".join(f"{a}={n}" for a, n in m.sizes.items())

        err = StorageError(
            f"{getattr(self._now, 'path', 'the file')} changed after this image or view was made (then pickled): it "
            f"holds {shape(now)} {now.dtype} now, it was planned on {shape(was)} {was.dtype}, so nothing is read "
            "(another image's pixels in the old selection); open the file and make the view again"
        )
        err.errno = errno.ESTALE
        return err

    def read(self, sel: Selection) -> np.ndarray:
        """Raise StorageError (ESTALE): the file holds another image now."""
        raise self._error()

    def read_many(self, sels: list[Selection]) -> list[np.ndarray]:
        """Raise StorageError (ESTALE), as :meth:`read`."""
        raise self._error()

    def describe(self) -> dict[str, Any]:
        """What the source now reading the file says."""
        return dict(self._now.describe())


def layout_shape(shape: tuple[int, ...], layout: str, channel_policy: ChannelPolicy) -> tuple[int, ...]:
    """The shape of a TZCYX selection of ``shape`` viewed in ``layout`` (LayoutError as :func:`apply_layout`),
    worked out on a zero-stride stand-in of it and remembered."""
    key = (shape, layout, channel_policy)
    hit = _SHAPES.get(key)
    if hit is None:
        probe = np.ndarray(shape, np.uint8, _ONE_BYTE, strides=(0,) * 5)  # as_strided's result, 10x cheaper
        hit = apply_layout(probe, layout, channel_policy=channel_policy).shape
        if len(_SHAPES) >= _SHAPES_KEPT:
            _SHAPES.clear()
        _SHAPES[key] = hit
    return hit


class LazyTensorView(Streamable, Thumbnailed):
    """A planned read: ``collect()`` executes it once (thread-safe) and returns a TensorView.

    Shape, dtype and layout are known without reading. ``select`` and ``with_layout``
    return new lazy views; iteration reads each batch or tile on its own.
    """

    def __init__(
        self,
        source: PixelSource,
        sel: Selection,
        layout: str,
        *,
        dtype: np.dtype | None = None,
        channel_policy: ChannelPolicy = "error",
        registry: Registry | None = None,
        casting: Casting = "checked",
    ) -> None:
        self._source = source
        self._casting = check_casting(casting)
        self._sel = sel
        self.layout = layout
        self._dtype = dtype
        self._policy: ChannelPolicy = channel_policy
        self._registry = registry
        self._lock = threading.Lock()
        self._result: TensorView | None = None
        self._shape = layout_shape(sel.shape, layout, channel_policy)  # the layout validated now

    def _shown(self) -> tuple[PixelSource, Selection]:
        return self._source, self._sel

    @property
    def source(self) -> PixelSource:
        """The pixel source this view reads (its :attr:`selection` indexes into it)."""
        return self._source

    @property
    def selection(self) -> Selection:
        """The storage indices this view will read."""
        return self._sel

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape in layout order (known without reading)."""
        return self._shape

    @property
    def ndim(self) -> int:
        """Number of axes (known without reading)."""
        return len(self._shape)

    @property
    def nbytes(self) -> int:
        """Bytes the selected pixels will occupy (known without reading)."""
        return math.prod(self._shape) * self.dtype.itemsize

    @property
    def device(self) -> str:
        """Where the pixels will live: ``"cpu"`` (reads go to host memory)."""
        return "cpu"

    @property
    def dtype(self) -> np.dtype:
        """Dtype of the result."""
        return self._dtype or self._source.meta.dtype

    @property
    def is_collected(self) -> bool:
        """True once :meth:`collect` has run."""
        return self._result is not None

    @property
    def _sizes(self) -> dict[str, int]:
        return dict(zip(normalize_axes(self.layout), self._shape))

    def __getstate__(self) -> dict[str, Any]:
        """What a pickle keeps (a DataLoader worker started by spawn or forkserver gets the view): all but the lock,
        and the metadata the selection was planned on (a source that reopens its file may find another image)."""
        state = plan_kept(self.__dict__, self._source)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(plan_checked(state))
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LazyTensorView(layout={self.layout!r}, shape={self.shape}, dtype={self.dtype})"

    def collect(self) -> TensorView:
        """Execute the plan (once; later calls return the same view)."""
        if self._result is None:
            with self._lock:
                if self._result is None:
                    self._result = materialize(
                        self._source,
                        self._sel,
                        self.layout,
                        self._dtype,
                        self._policy,
                        self._registry,
                        self._casting,
                    )
        return self._result

    def _derive(self, sel: Selection, layout: str | None = None) -> LazyTensorView:
        return LazyTensorView(
            self._source,
            sel,
            layout or self.layout,
            dtype=self._dtype,
            channel_policy=self._policy,
            registry=self._registry,
            casting=self._casting,
        )

    def select(self, **kwargs: Any) -> LazyTensorView:
        """Narrow the selection (t, z, c, roi, roi3d, roi_nd, tile), relative to this view."""
        sel = resolve_selection(self._sel, self._source.meta, **kwargs)
        return self._derive(sel)

    def with_layout(self, layout: str) -> LazyTensorView:
        """The same selection in another layout."""
        return self._derive(self._sel, layout)

    def _window(self, window: Window) -> TensorView:
        sel = self._sel.select(**{ax.lower(): idx for ax, idx in window.items()})  # type: ignore[arg-type]
        return self._derive(sel).collect()

    _reads_windows = True

    def _windows(self, items: list[Window]) -> list[TensorView | Exception]:
        """The windows ``items``, their chunks read together when the source can (``read_many``); when that
        fails, one by one up to the first that fails (so the items before it still arrive)."""
        from .iteration import windows_one_by_one  # (a first plane streams nothing)

        read_many = getattr(self._source, "read_many", None)
        if read_many is None or len(items) < 2:
            return windows_one_by_one(self._window, items)
        sels = self._window_selections(items)
        try:
            read = read_many(sels)
        except Exception:
            return windows_one_by_one(self._window, items)
        dtype, casting, layout, policy, registry = self._dtype, self._casting, self.layout, self._policy, self._registry
        return [  # materialize() of each (its selection narrowed to the channels read already)
            TensorView(apply_layout(cast_pixels(px, dtype, casting), layout, channel_policy=policy), layout, registry)
            for px in read
        ]

    def _windows_into(self, items: list[Window], out: np.ndarray) -> bool:
        """Read windows ``items`` straight into ``out[i]`` (a stack's buffer) when the source can
        (``read_many_into``) and its pixels, not cast, lie in ``out[i]`` as they are read; False, ``out`` partly
        written or not, where not: a read that raises too (:meth:`_windows` reads them again, and says why)."""
        read_into = getattr(self._source, "read_many_into", None)
        if read_into is None or not items or self.dtype != self._source.meta.dtype:
            return False
        try:  # (a failure as read_many's: the usual reads raise it, or read the stack)
            sels = self._window_selections(items)
            first = stored_view(out[0], sels[0].shape, self.layout, self._policy)
            if first is None:
                return False
            step = out[0].nbytes  # the items of a stack are of one shape: each a view like the first, a step on
            base = out.reshape(-1).view(np.uint8)
            into = [np.ndarray(first.shape, first.dtype, base, i * step, first.strides) for i in range(len(items))]
            return bool(read_into(sels, into))
        except Exception:
            return False

    def _window_selections(self, items: list[Window]) -> list[Selection]:
        """The selections ``channels_read`` reads for windows ``items`` (each axis index worked out once: the
        windows of a stream repeat them; the channels read worked out once unless a window picks channels)."""
        base, layout, policy = self._sel, self.layout, self._policy
        read = channels_read(base, layout, policy)
        fields: list[AxisIndex] = [read.t, read.z, read.c, read.y, read.x]
        subs: dict[tuple[str, AxisIndex], AxisIndex] = {}
        out = []
        for w in items:
            got = fields.copy()
            for ax, i in w.items():
                k = _FIELD[ax]
                sub = subs.get((ax, i))
                if sub is None:
                    sub = subs[ax, i] = _sub_index(base, ax, k, i)
                got[k] = sub
            sel = Selection(*got)  # type: ignore[arg-type]
            out.append(channels_read(sel, layout, policy) if "C" in w else sel)
        return out

    def _collect_for(self, device: str | None, mode: str | None) -> TensorView:
        """:meth:`collect`, reading into the host memory of the exporter for ``device`` and ``mode`` when it offers
        some (``Exporter.host_memory``: a GPU's pinned memory, which it copies from without staging)."""
        if self._result is None and device is not None and device != "cpu":
            kind, _ = parse_device(device)
            if kind != "cpu":
                handler = (self._registry or default_registry()).resolve_exporter(kind, self.dtype, mode)
                if handler.host_memory is not None:
                    with host_memory(handler.host_memory):
                        return self.collect()
        return self.collect()

    # The array protocols execute the plan, as to_numpy does: np.asarray(view), np.from_dlpack(view),
    # torch.from_dlpack(view) take the pixels (not a 0-d object array, not a TypeError).
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return self.collect().__array__(dtype, copy)

    def __dlpack__(self, **kwargs: Any) -> Any:
        return handed_over(self.collect().to_dlpack(), caller_module(), **kwargs)  # the consumer is our caller

    def __dlpack_device__(self) -> tuple[int, int]:
        return CPU_DEVICE  # read into host memory, as TensorView's

    # Conveniences that execute the plan.
    def to_numpy(self, contiguous: bool = False) -> np.ndarray:
        """Execute and return the pixels as numpy."""
        return self.collect().to_numpy(contiguous=contiguous)

    def to_dlpack(self, *args: Any, **kwargs: Any) -> Any:
        """Execute and export through DLPack (see :meth:`TensorView.to_dlpack`)."""
        mode = args[0] if args else kwargs.get("mode")
        device = args[1] if len(args) > 1 else kwargs.get("device", "cpu")
        return self._collect_for(device, mode).to_dlpack(*args, **kwargs)

    def to_torch(self, *args: Any, **kwargs: Any) -> Any:
        """Execute and return a torch tensor."""
        return self._collect_for(args[0] if args else kwargs.get("device", "cpu"), "torch").to_torch(*args, **kwargs)

    def to_jax(self, *args: Any, **kwargs: Any) -> Any:
        """Execute and return a jax array."""
        return self._collect_for(args[0] if args else kwargs.get("device"), "jax").to_jax(*args, **kwargs)

    def to_cupy(self, *args: Any, **kwargs: Any) -> Any:
        """Execute and return a cupy array on the GPU."""
        return self._collect_for(args[0] if args else kwargs.get("device", "cuda"), "cupy").to_cupy(*args, **kwargs)


def _sub_index(base: Selection, ax: str, k: int, i: AxisIndex) -> AxisIndex:
    """Axis ``ax`` (field ``k``) of ``base.select(ax=i)``: a slice of a range when ``i`` is a step-1 range inside
    it (what stream windows are), else worked out by :meth:`Selection.select` (which checks ``i``)."""
    cur = (base.t, base.z, base.c, base.y, base.x)[k]
    if type(cur) is range and type(i) is range and i.step == 1 and 0 <= i.start < i.stop <= len(cur):
        return cur[i.start : i.stop]
    return base.select(**{ax.lower(): i}).axis(ax)  # type: ignore[arg-type]
