"""A stream group to CUDA in one transfer (``Exporter.export_many``).

``iter_dlpack(device="cuda")`` hands its items over in groups (up to 64 tiles, 8 MiB). Exported one
by one, each 128 KiB tile paid its own pinned staging, copy and stream synchronisation. Here a group's
views are gathered into one pinned buffer (laid out by ``plugin_api.group_offsets``; by the gather threads
when it is large), copied to one device buffer in a few copies queued on one stream, synchronised once, and
handed out as views of that buffer: each result is a C-contiguous ``cupy.ndarray`` of its own bytes, and the device buffer
lives until the group's last result is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import numpy as np

from ome_arrow_core.plugin_api import gather_group, group_offsets

from . import export
from .devices import check_device, import_cupy

if TYPE_CHECKING:
    from ome_arrow_core import TensorView

__all__ = ["export_cupy_many", "runs", "copy_runs"]


def runs(sizes: Sequence[int], parts: int) -> list[range]:
    """Consecutive runs of the indices of ``sizes``, at most ``parts`` of them, of about equal bytes each."""
    total = sum(sizes)
    if parts <= 1 or len(sizes) <= 1 or total == 0:
        return [range(len(sizes))] if sizes else []
    out: list[range] = []
    start = acc = 0
    for i, n in enumerate(sizes):
        acc += n
        if acc * parts >= total * (len(out) + 1) and len(out) < parts - 1:
            out.append(range(start, i + 1))
            start = i + 1
    if start < len(sizes):
        out.append(range(start, len(sizes)))
    return out


def export_cupy_many(views: Sequence[TensorView], *, device_index: int = 0, **_: Any) -> list[Any]:
    """Copy ``views`` to ``cuda:{device_index}`` together; one C-contiguous ``cupy.ndarray`` per view, in order.

    The copies run on this thread's non-blocking copy stream after the current stream's queued work (as
    :func:`~ome_arrow_cupy.export.export_cupy`) and are synchronised before returning. Raises DeviceError
    when the device does not exist.
    """
    cp = import_cupy()
    check_device(cp, device_index)
    hosts = [v.to_numpy() for v in views]
    sizes = [h.nbytes for h in hosts]
    offsets, total = group_offsets(sizes)
    with cp.cuda.Device(device_index):
        if total == 0:
            return [cp.empty(h.shape, dtype=h.dtype) for h in hosts]
        flat = cp.empty(total, dtype=np.uint8)
        stream = export.copy_stream(cp, device_index)
        stream.wait_event(cp.cuda.get_current_stream().record())
        pinned = cp.cuda.alloc_pinned_memory(total)
        staging = np.frombuffer(pinned, np.uint8, total)
        parts = runs(sizes, min(export.GATHER_THREADS, total // export.SPLIT_BYTES))
        copy_runs(staging, flat, hosts, offsets, parts, stream)
        base = flat.data  # each view holds the memory: one array made per item (slice, view, reshape made three)
        return [
            cp.ndarray(h.shape, dtype=h.dtype, memptr=base + off) if n else cp.empty(h.shape, dtype=h.dtype)
            for h, off, n in zip(hosts, offsets, sizes, strict=True)
        ]


def copy_runs(
    staging: np.ndarray, flat: Any, hosts: list[np.ndarray], offsets: list[int], parts: list[range], stream: Any
) -> None:
    """Gather each run (``parts``, see :func:`runs`) of ``hosts`` into ``staging`` at ``offsets`` (in the gather
    threads when there are several runs) and queue its copy to ``flat`` on ``stream`` as soon as it is gathered; wait
    for every copy. ``flat`` is anything whose slices take ``.set(host, stream=)`` (a ``cupy.ndarray``), ``stream``
    anything with ``.synchronize()`` (so the staging is tested without a GPU). With several runs, a failed gather or
    copy is raised once the work still pending is settled (:func:`~.export.settle`)."""

    def span(r: range) -> slice:
        return slice(offsets[r.start], offsets[r.stop - 1] + hosts[r.stop - 1].nbytes)

    def gather_run(r: range) -> None:
        gather_group(staging, hosts[r.start : r.stop], offsets[r.start : r.stop])

    if len(parts) == 1:
        gather_run(parts[0])
        flat[span(parts[0])].set(staging[span(parts[0])], stream=stream)
        stream.synchronize()
        return
    pool = export.gather_pool()
    pending: list[Future[None]] = [pool.submit(gather_run, r) for r in parts]
    try:
        for r, fut in zip(parts, pending, strict=True):
            fut.result()
            flat[span(r)].set(staging[span(r)], stream=stream)
    except BaseException as exc:
        export.settle(pending, stream, exc)
        raise
    stream.synchronize()  # (every gather is done) a failure here propagates as CuPy raised it, as in export.py
