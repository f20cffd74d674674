"""Tensor views to CUDA: pinned host staging, an async copy on a non-blocking stream."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from ome_arrow_core import TensorView

from .devices import check_device, import_cupy

__all__ = ["export_cupy"]

_local = threading.local()


def _stream(cp: Any, index: int) -> Any:
    """This thread's non-blocking copy stream on device ``index`` (created on first use)."""
    streams: dict[int, Any] | None = getattr(_local, "streams", None)
    if streams is None:
        streams = _local.streams = {}
    stream = streams.get(index)
    if stream is None:
        stream = streams[index] = cp.cuda.Stream(non_blocking=True)
    return stream


def _pinned_copy(cp: Any, host: np.ndarray) -> tuple[np.ndarray, Any]:
    """A C-contiguous copy of ``host`` in page-locked memory, and the memory that owns it."""
    mem = cp.cuda.alloc_pinned_memory(host.nbytes)
    staging = np.frombuffer(mem, dtype=host.dtype, count=host.size).reshape(host.shape)
    np.copyto(staging, host, casting="no")
    return staging, mem


def export_cupy(view: TensorView, *, contiguous: bool = False, device_index: int = 0, **_: Any) -> Any:
    """Copy ``view`` to ``cuda:{device_index}`` and return a C-contiguous ``cupy.ndarray``.

    The host pixels are gathered once into pinned memory and copied asynchronously on a
    non-blocking stream that first waits for the current stream's queued work. The copy
    stream is synchronised before returning, so the array is complete on any stream.
    ``contiguous`` is accepted for the exporter protocol: the result is always a C-order copy.
    Raises DeviceError when the device does not exist.
    """
    cp = import_cupy()
    check_device(cp, device_index)
    host = view.to_numpy()
    with cp.cuda.Device(device_index):
        out = cp.empty(host.shape, dtype=host.dtype)  # from the current stream's pool arena
        if out.size == 0:
            return out
        staging, mem = _pinned_copy(cp, host)
        stream = _stream(cp, device_index)
        stream.wait_event(cp.cuda.get_current_stream().record())  # the pool may reuse freed memory
        out.set(staging, stream=stream)
        stream.synchronize()
        del staging, mem  # safe to release: the copy has finished
    return out
