"""Exports of a TensorView to torch: a private copy on the CPU (zero-copy on request), pinned-memory copy to CUDA
(a stream group in one copy; a view read into torch's pinned memory copied from there)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ome_arrow_core.plugin_api import HostBlocks, check_cuda_device, gather_group, group_offsets, zero_copy_array

if TYPE_CHECKING:
    import torch

    from ome_arrow_core import TensorView

__all__ = [
    "export_cpu",
    "export_cuda",
    "export_cuda_many",
    "pinned_host",
    "pinned_tensor",
    "remembered",
    "split_group",
    "PINNED",
    "ZERO_COPY",
]

#: ``to_torch(mode=...)`` that asks for a tensor aliasing the image's Arrow memory.
ZERO_COPY = "arrow"

#: The live blocks of :func:`pinned_host`, each with its pinned tensor (weakly).
PINNED = HostBlocks()
#: The alignment of :func:`pinned_host`'s arrays (``Exporter.host_memory``'s contract).
ALIGN = 64


def export_cpu(
    view: TensorView, *, contiguous: bool = False, source_mode: str | None = None, device_index: int = 0, **_: Any
) -> torch.Tensor:
    """A CPU tensor shaped like ``view``: its own copy, unless ``source_mode="arrow"``.

    By default (and with ``source_mode="numpy"``) the tensor owns a writable copy (C order
    when ``contiguous``, else the view's axis order), so in-place edits never reach the image.
    ``source_mode="arrow"`` (``to_torch(mode="arrow")``) is zero-copy: the tensor aliases the
    Arrow memory, keeps it alive and must be treated as read-only (torch has no read-only
    tensors); ``contiguous=True`` then copies once, only when the view is strided.
    Other modes go through ``view.to_dlpack(mode=...)``.
    """
    api = _api or _torch_api()
    if source_mode is None or source_mode == "numpy":
        return api[0](view.to_numpy().copy(order="C" if contiguous else "K"))
    if source_mode == ZERO_COPY:
        arr = view.to_numpy()
        if not arr.flags.c_contiguous:
            if contiguous:
                return api[0](np.ascontiguousarray(arr))  # one copy, owned by the tensor
            if arr.ndim and min(arr.strides) < 0:
                arr = zero_copy_array(view)  # torch aborts the process on negative strides: one aligned copy
        # The tensor aliases the view's memory (Arrow's, or the array a gather made) and keeps it alive.
        # A versioned capsule says read-only; torch drops the flag: that is the alias asked for.
        return api[1](arr.__dlpack__(max_version=(1, 0)))
    return api[2](view.to_dlpack(mode=source_mode, contiguous=contiguous))


#: ``torch.from_numpy``, the importer of a versioned host capsule, and ``torch.from_dlpack``.
TorchAPI = tuple[
    Callable[[np.ndarray], "torch.Tensor"], Callable[[Any], "torch.Tensor"], Callable[[Any], "torch.Tensor"]
]
_api: TorchAPI | None = None


def _torch_api() -> TorchAPI:
    """The torch functions :func:`export_cpu` calls, imported on first use (this module loads without torch)."""
    global _api
    if _api is None:
        import torch
        from torch.utils.dlpack import from_dlpack

        _api = (torch.from_numpy, capsule_importer(), from_dlpack)
    return _api


def capsule_importer() -> Callable[[Any], torch.Tensor]:
    """What turns a versioned DLPack capsule of host memory into a tensor, as cheaply as this torch allows.

    ``torch.from_dlpack`` spends most of its time in Python argument handling before the
    C importer it ends in; that importer is used directly when this torch has it and it
    takes a versioned capsule (a probe, once) and aliases it; otherwise ``torch.from_dlpack``.
    """
    import torch
    from torch.utils.dlpack import from_dlpack

    direct = getattr(torch._C, "_from_dlpack", None)
    if callable(direct):
        probe = np.arange(3, dtype=np.int16)
        probe.flags.writeable = False
        try:
            t = direct(probe.__dlpack__(max_version=(1, 0)))
            if isinstance(t, torch.Tensor) and t.data_ptr() == probe.ctypes.data and t.tolist() == [0, 1, 2]:
                return direct  # type: ignore[no-any-return]
        except Exception:  # an older or newer torch: its public function is always right
            pass
    return from_dlpack


def export_cuda(view: TensorView, *, device_index: int = 0, **_: Any) -> torch.Tensor:
    """A C-contiguous tensor on ``cuda:<device_index>``, copied through pinned host memory.

    The host-to-device copy is asynchronous (``non_blocking=True``) on the current
    stream: torch work on that stream, and DLPack consumers that pass their stream,
    see the finished data. Raises DeviceError when torch cannot reach that GPU.
    """
    import torch
    from torch.utils.dlpack import from_dlpack

    check_cuda(device_index)
    host = zero_copy_array(view)
    pinned = pinned_tensor(host)
    if pinned is not None:  # read into pinned_host's memory (a lazy view's read): copied from there as it is
        return pinned.to(f"cuda:{device_index}", non_blocking=True)
    src = from_dlpack(host.__dlpack__(max_version=(1, 0)))  # only read, below
    staging = torch.empty(src.shape, dtype=src.dtype, pin_memory=True)
    staging.copy_(src)
    return staging.to(f"cuda:{device_index}", non_blocking=True)


def pinned_host(nbytes: int) -> np.ndarray:
    """``nbytes`` of pinned host memory from torch's caching host allocator, as a writable uint8 array that keeps
    its tensor alive, remembered while it lives: the exporter's ``host_memory``, where a lazy view exported to CUDA
    is read (ome_arrow_core/host_memory.py). DeviceError where torch has no CUDA (pinned memory needs it)."""
    import torch

    check_cuda(0)
    block = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
    if block.data_ptr() % ALIGN:  # torch's blocks are page-aligned (cudaHostAlloc); padded where one is not
        block = torch.empty(nbytes + ALIGN, dtype=torch.uint8, pin_memory=True)
    return remembered(block, nbytes)


def remembered(block: torch.Tensor, nbytes: int) -> np.ndarray:
    """``nbytes`` of the uint8 tensor ``block`` from its first :data:`ALIGN`-aligned byte, as an array that keeps
    the tensor's memory alive, in :data:`PINNED` with the tensor the array holds as its owner.

    ``Tensor.numpy()`` keeps a tensor alive, but not always ``block`` itself (torch 2.11 and 2.13 hand the array a
    new tensor object of the same memory): the owner is the one the array holds, or :func:`pinned_tensor` would
    find it gone and stage a copy of what already lies in pinned memory."""
    import torch

    raw = block.numpy()
    owner = raw.base if isinstance(raw.base, torch.Tensor) and raw.base.data_ptr() == block.data_ptr() else block
    at = -raw.ctypes.data % ALIGN
    return PINNED.add(raw[at : at + nbytes], owner)


#: torch's dtype of each numpy dtype :func:`pinned_tensor` met.
_TORCH_DTYPES: dict[np.dtype[Any], torch.dtype] = {}


def pinned_tensor(host: np.ndarray) -> torch.Tensor | None:
    """``host`` as a view of the :func:`pinned_host` tensor it lies in, when it is C-contiguous and lies in a live
    one; else None. A copy of that view with ``non_blocking=True`` is a plain DMA from pinned memory, and torch's
    host allocator keeps the block from reuse until the copy is done, whenever the block is freed."""
    if not host.flags.c_contiguous:
        return None
    found = PINNED.find(host)
    block = found[1] if found is not None else None
    if found is None or block is None:
        return None
    import torch

    tensor = cast("torch.Tensor", block)
    storage = tensor.untyped_storage()
    at = host.ctypes.data - storage.data_ptr()
    if at % host.itemsize:  # torch views a dtype only at a multiple of its size
        return None
    # One set_ onto the block's own storage (a slice and two views took twice as long): the same allocation, so
    # the host allocator still sees the copy that reads it.
    strides = [s // host.itemsize for s in host.strides]
    dtype = _TORCH_DTYPES.get(host.dtype)
    if dtype is None:  # (numpy's dtype.name is built anew on each call: 4 us)
        dtype = _TORCH_DTYPES[host.dtype] = getattr(torch, host.dtype.name)
    view: torch.Tensor = tensor.new_empty(0, dtype=dtype)
    return view.set_(storage, at // host.itemsize, host.shape, strides)


def export_cuda_many(views: Sequence[TensorView], *, device_index: int = 0, **_: Any) -> list[torch.Tensor]:
    """``views`` on ``cuda:<device_index>`` in one copy: one C-contiguous tensor per view, in order.

    The views are gathered into one pinned buffer (each at an offset ``group_offsets`` aligns), copied to the
    device with one asynchronous copy on the current stream (as :func:`export_cuda`), and handed out as views of
    that device buffer, each of its own bytes; the buffer lives until the group's last tensor is dropped. Raises
    DeviceError when torch cannot reach that GPU.
    """
    import torch

    check_cuda(device_index)
    hosts = [v.to_numpy() for v in views]
    offsets, total = group_offsets([h.nbytes for h in hosts])
    if total:
        staging = torch.empty(total, dtype=torch.uint8, pin_memory=True)
        gather_group(staging.numpy(), hosts, offsets)
        flat = staging.to(f"cuda:{device_index}", non_blocking=True)
    else:
        flat = torch.empty(0, dtype=torch.uint8, device=f"cuda:{device_index}")
    return split_group(flat, hosts, offsets)


def split_group(flat: torch.Tensor, hosts: Sequence[np.ndarray], offsets: Sequence[int]) -> list[torch.Tensor]:
    """The tensor of each of ``hosts`` in ``flat`` (uint8, on any device), whose bytes ``group_offsets`` laid out
    as ``offsets``: a C-contiguous view of its own bytes (a new empty tensor for an empty one)."""
    import torch

    out = []
    for h, off in zip(hosts, offsets, strict=True):
        dtype = getattr(torch, h.dtype.name)  # our dtypes (dtypes.SUPPORTED) have torch's names
        if h.nbytes:
            out.append(flat[off : off + h.nbytes].view(dtype).view(h.shape))
        else:
            out.append(torch.empty(h.shape, dtype=dtype, device=flat.device))
    return out


def check_cuda(device_index: int) -> None:
    """Raise DeviceError unless torch sees CUDA device ``device_index``."""
    import torch

    built = torch.version.cuda or "no CUDA (a CPU-only build)"
    check_cuda_device(
        device_index,
        torch.cuda.device_count() if torch.cuda.is_available() else 0,
        f"torch {torch.__version__}",
        f"CUDA is not available to it (built with {built}); run on a "
        "machine with an NVIDIA GPU and a CUDA build of torch",
    )
