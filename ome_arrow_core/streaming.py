"""Streams: a view's batches and tiles handed over one by one, or stacked several to a tensor.

A stream to a device reads its items in groups and exports each group with one call of the exporter's
``export_many`` where it has one. ``stack=N`` hands over up to N items of one shape as one tensor with a new
leading axis: one hand-over (one device copy, one consumer call) instead of N.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .arguments import whole_number
from .buffers import arrow_empty
from .devices import parse_device
from .errors import ArgumentError, PluginError, SelectionError
from .host_memory import HostAllocator, host_memory
from .plugin_manager import BLOCK_ENV
from .registry import PluginWarning

if TYPE_CHECKING:
    from .handlers import Exporter, ExportView
    from .iteration import Warned, Window
    from .view import TensorView

__all__ = ["Stacking", "copied_stack", "device_key", "export_function", "stack_runs", "stream"]

_CPU: tuple[str, int] = ("cpu", 0)


def device_key(device: str | None) -> tuple[str, int]:
    """``parse_device`` with the CPU (the common case) answered without parsing."""
    return _CPU if device is None or device == "cpu" else parse_device(device)


def export_function(handler: Exporter, kind: str, mode: str | None) -> ExportView:
    """The export function of ``handler``, the exporter found for ``kind`` and ``mode`` (PluginError when it has
    none)."""
    if handler.export is None:
        raise PluginError(f"the exporter for device={kind!r}, mode={mode!r} has no export function")
    return handler.export


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


class Stacking(NamedTuple):
    """How a view makes its stacks: ``read_into(windows, out)`` reads windows straight into a stack's buffer where
    it can (True), ``view(pixels)`` makes a stack's view, ``exporter(kind, mode)`` finds the exporter of its items
    (a device stack is built in its host memory); ``dtype``: its items'."""

    dtype: np.dtype
    read_into: Callable[[list[Window], np.ndarray], bool]
    view: Callable[[np.ndarray], TensorView]
    exporter: Callable[[str, str | None], Exporter]


class Handover(NamedTuple):
    """How each item is exported: ``to_dlpack``'s ``mode``, ``device`` and ``contiguous``."""

    mode: str | None
    device: str | None
    contiguous: bool


def _shape(window: Window, sizes: Mapping[str, int]) -> tuple[int, ...]:
    return tuple(len(window[ax]) if ax in window else n for ax, n in sizes.items())


def stack_runs(items: Sequence[Window], sizes: Mapping[str, int], stack: int) -> list[list[Window]]:
    """``items`` cut into stacks of up to ``stack`` items of one shape (axis ``sizes`` of the view): items keep
    their stream order within a shape, and the stacks come in the order of their first items (with tiles that
    divide the view, simply runs of ``stack``)."""
    runs: list[list[Window]] = []
    open_runs: dict[tuple[int, ...], list[Window]] = {}
    for w in items:
        shape = _shape(w, sizes)
        run = open_runs.get(shape)
        if run is None or len(run) == stack:
            run = open_runs[shape] = []
            runs.append(run)
        run.append(w)
    return runs


def stream(
    items: list[Window],
    read: Callable[[list[Window]], Sequence[TensorView | Exception]],
    *,
    sizes: Mapping[str, int],
    item_bytes: int,
    in_groups: bool,
    prefetch: int,
    mode: str | None,
    device: str | None,
    contiguous: bool,
    stack: int | None,
    stacking: Stacking,
    with_index: bool = False,
) -> Iterator[Any]:
    """The exported items of a view, ``read(group)`` making the views of a group of windows (ending early with
    the exception of the first that fails); ``in_groups=False`` exports each window alone, ``stacked(array,
    like)`` makes a stacked item's view from its pixels and its first item's view; ``with_index``: each item
    comes as ``(index, tensor)`` (see :func:`window_index`)."""
    from .iteration import prefetched  # (a first plane streams nothing)

    prefetch = whole_number(prefetch, "prefetch")
    if prefetch < 0:
        raise ArgumentError(f"prefetch must be >= 0 (items read ahead in background threads), got {prefetch}")
    how = Handover(mode, device, contiguous)
    if stack is not None:
        stack = whole_number(stack, "stack")
        if stack < 1:
            raise SelectionError(f"stack must be >= 1 (items per tensor), got {stack}")
        runs = stack_runs(items, sizes, stack)
        out = prefetched([_stack_task(run, read, sizes, stacking, how) for run in runs], prefetch)
        if with_index:
            return _indexed(([window_index(w, sizes) for w in run] for run in runs), out)
        return out
    out = _items(items, read, item_bytes, in_groups, prefetch, how)
    return _indexed((window_index(w, sizes) for w in items), out) if with_index else out


def window_index(window: Window, sizes: Mapping[str, int]) -> tuple[slice | list[int], ...]:
    """The numpy index of ``window`` in a view of axis ``sizes``: a slice per axis (all of an axis the window
    leaves out), a list for gathered indices."""
    return tuple(
        slice(None)
        if (sel := window.get(ax)) is None
        else slice(sel.start, sel.stop)
        if isinstance(sel, range) and sel.step == 1
        else list(sel)
        for ax in sizes
    )


def _indexed(indices: Iterator[Any], items: Iterator[Any]) -> Iterator[tuple[Any, Any]]:
    """``(index, item)`` pairs; closing this closes ``items`` (stopping its reads in flight)."""
    try:
        for item in items:
            yield next(indices), item
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


def _items(
    items: list[Window],
    read: Callable[[list[Window]], Sequence[TensorView | Exception]],
    item_bytes: int,
    in_groups: bool,
    prefetch: int,
    how: Handover,
) -> Iterator[Any]:
    from .iteration import flattened, grouped, prefetched

    if not items or not in_groups:

        def task(w: Window) -> Callable[[], Any]:
            def run() -> Any:
                got = read([w])[0]
                if isinstance(got, Exception):
                    raise got
                return got.to_dlpack(mode=how.mode, device=how.device, contiguous=how.contiguous)

            return run

        return prefetched([task(w) for w in items], prefetch)
    groups = grouped(items, item_bytes)
    return flattened(prefetched([_group_task(g, read, how) for g in groups], prefetch))


def _stack_task(
    run: list[Window],
    read: Callable[[list[Window]], Sequence[TensorView | Exception]],
    sizes: Mapping[str, int],
    stacking: Stacking,
    how: Handover,
) -> Callable[[], Any]:
    def task() -> Any:
        out = _stack_buffer(run, sizes, stacking, how)
        if out is None or not stacking.read_into(run, out):  # straight into the stack's slices where it can
            out = copied_stack(run, read, stacking, how, out)
        out.flags.writeable = False
        return stacking.view(out).to_dlpack(mode=how.mode, device=how.device, contiguous=how.contiguous)

    return task


def _host_memory(stacking: Stacking, how: Handover) -> HostAllocator | None:
    """The host memory of the exporter a stack goes to (a GPU's pinned memory, copied from as it is), or None."""
    kind, _ = device_key(how.device)
    return None if kind == "cpu" else stacking.exporter(kind, how.mode).host_memory


def _stack_buffer(run: list[Window], sizes: Mapping[str, int], stacking: Stacking, how: Handover) -> np.ndarray | None:
    """The buffer of the stack of ``run`` (in its exporter's host memory), or None where the device or exporter is
    refused (the reads come first then, and raise in their order)."""
    try:
        memory = _host_memory(stacking, how)
    except Exception:
        return None
    with host_memory(memory):
        out, _ = arrow_empty((len(run), *_shape(run[0], sizes)), stacking.dtype)
    return out


def copied_stack(
    run: list[Window],
    read: Callable[[list[Window]], Sequence[TensorView | Exception]],
    stacking: Stacking,
    how: Handover,
    out: np.ndarray | None,
) -> np.ndarray:
    """The items of ``run`` read (the first that fails raises) and copied into ``out`` (a stack's buffer; one made
    where it is None or does not fit them)."""
    arrays: list[np.ndarray] = []
    for v in read(run):
        if isinstance(v, Exception):  # the stack raises in its turn
            raise v
        arrays.append(v.to_numpy())
    shape = (len(arrays), *arrays[0].shape)
    if out is None or out.shape != shape or out.dtype != arrays[0].dtype:
        with host_memory(_host_memory(stacking, how)):
            out, _ = arrow_empty(shape, arrays[0].dtype)
    np.stack(arrays, out=out)  # one copy, into the stack's own buffer
    return out


def _group_task(
    group: list[Window],
    read: Callable[[list[Window]], Sequence[TensorView | Exception]],
    how: Handover,
) -> Callable[[], list[Any]]:
    from .iteration import Failed

    def run() -> list[Any]:
        views: list[TensorView] = []
        failed: Exception | None = None
        for v in read(group):  # an item that fails ends its group: it raises in its turn
            if isinstance(v, Exception):
                failed = v
                break
            views.append(v)
        out: list[Any] = []
        try:  # the exporter is looked up once a group (one dtype)
            kind, index = device_key(how.device)
            export_mode = "arrow" if how.mode is None and kind == "cpu" else how.mode
            handler = views[0]._export_handler(kind, export_mode) if views else None
            got: list[Any] | None = None
            many_failed: Exception | None = None
            if handler is not None and handler.export_many is not None and kind != "cpu":
                try:  # one copy for the group
                    got = list(handler.export_many(views, contiguous=how.contiguous, device_index=index))
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
                export = export_function(handler, kind, export_mode)
                for v in views:
                    out.append(export(v, contiguous=how.contiguous, device_index=index))
                    if many_failed is not None:  # export works where export_many failed: said once
                        note = _fallback_note(handler, many_failed)
                        if note is not None:  # ahead of the group's tiles
                            out.insert(0, note)
                        many_failed = None
        except Exception as exc:
            return [*out, Failed(exc)]
        return out if failed is None else [*out, Failed(failed)]

    return run
