"""Exports of a TensorView to torch: zero-copy on the CPU, pinned-memory copy to CUDA."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ome_arrow_core import DeviceError

if TYPE_CHECKING:
    import torch
    from ome_arrow_core import TensorView

__all__ = ["export_cpu", "export_cuda"]


def export_cpu(
    view: TensorView, *, contiguous: bool = False, source_mode: str | None = None, **_: Any
) -> torch.Tensor:
    """A CPU tensor shaped and strided like ``view``, sharing its Arrow memory.

    The tensor keeps that memory alive. Torch has no read-only tensors: treat it as
    read-only, or pass ``source_mode="numpy"`` (``to_torch(mode="numpy")``) for a
    writable copy. ``contiguous=True`` copies once, only when the view is strided.
    """
    from torch.utils.dlpack import from_dlpack

    mode = source_mode or "arrow"
    if mode == "arrow" and contiguous and not view.is_contiguous:
        # One copy straight into torch memory (the Arrow route would copy twice).
        return from_dlpack(view.to_dlpack(mode="arrow")).contiguous()
    return from_dlpack(view.to_dlpack(mode=mode, contiguous=contiguous))


def export_cuda(view: TensorView, *, device_index: int = 0, **_: Any) -> torch.Tensor:
    """A C-contiguous tensor on ``cuda:<device_index>``, copied through pinned host memory.

    The host-to-device copy is asynchronous (``non_blocking=True``) on the current
    stream: torch work on that stream, and DLPack consumers that pass their stream,
    see the finished data. Raises DeviceError when torch cannot reach that GPU.
    """
    import torch
    from torch.utils.dlpack import from_dlpack

    check_cuda(device_index)
    src = from_dlpack(view.to_dlpack(mode="arrow"))
    staging = torch.empty(src.shape, dtype=src.dtype, pin_memory=True)
    staging.copy_(src)
    return staging.to(f"cuda:{device_index}", non_blocking=True)


def check_cuda(device_index: int) -> None:
    """Raise DeviceError unless torch sees CUDA device ``device_index``."""
    import torch

    if not torch.cuda.is_available():
        built = torch.version.cuda or "no CUDA (a CPU-only build)"
        raise DeviceError(
            f"CUDA is not available to torch {torch.__version__} (built with {built}); "
            "run on a machine with an NVIDIA GPU and a CUDA build of torch, or use device='cpu'"
        )
    count = torch.cuda.device_count()
    if device_index >= count:
        raise DeviceError(
            f"device 'cuda:{device_index}' does not exist; torch sees {count} CUDA device(s): "
            f"use cuda:0 to cuda:{count - 1}"
        )
