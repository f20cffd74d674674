"""Exports of a TensorView to torch: a private copy on the CPU (zero-copy on request), pinned-memory copy to CUDA."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ome_arrow_core.plugin_api import check_cuda_device, zero_copy_array

if TYPE_CHECKING:
    import torch

    from ome_arrow_core import TensorView

__all__ = ["export_cpu", "export_cuda", "ZERO_COPY"]

#: ``to_torch(mode=...)`` that asks for a tensor aliasing the image's Arrow memory.
ZERO_COPY = "arrow"


def export_cpu(view: TensorView, *, contiguous: bool = False, source_mode: str | None = None, **_: Any) -> torch.Tensor:
    """A CPU tensor shaped like ``view``: its own copy, unless ``source_mode="arrow"``.

    By default (and with ``source_mode="numpy"``) the tensor owns a writable copy (C order
    when ``contiguous``, else the view's axis order), so in-place edits never reach the image.
    ``source_mode="arrow"`` (``to_torch(mode="arrow")``) is zero-copy: the tensor aliases the
    Arrow memory, keeps it alive and must be treated as read-only (torch has no read-only
    tensors); ``contiguous=True`` then copies once, only when the view is strided.
    Other modes go through ``view.to_dlpack(mode=...)``.
    """
    from_numpy, from_dlpack = _torch_api()
    if source_mode == ZERO_COPY:
        arr = zero_copy_array(view)
        if contiguous and not arr.flags.c_contiguous:
            return from_numpy(np.ascontiguousarray(arr))  # one copy, owned by the tensor
        # torch drops the versioned capsule's read-only flag: that is the alias asked for.
        return from_dlpack(arr.__dlpack__(max_version=(1, 0)))
    if source_mode is None or source_mode == "numpy":
        return from_numpy(view.to_numpy().copy(order="C" if contiguous else "K"))
    return from_dlpack(view.to_dlpack(mode=source_mode, contiguous=contiguous))


TorchAPI = tuple[Callable[[np.ndarray], "torch.Tensor"], Callable[[Any], "torch.Tensor"]]
_api: TorchAPI | None = None


def _torch_api() -> TorchAPI:
    """``torch.from_numpy`` and ``torch.from_dlpack``, imported on first use (this module loads without torch)."""
    global _api
    if _api is None:
        import torch
        from torch.utils.dlpack import from_dlpack

        _api = (torch.from_numpy, from_dlpack)
    return _api


def export_cuda(view: TensorView, *, device_index: int = 0, **_: Any) -> torch.Tensor:
    """A C-contiguous tensor on ``cuda:<device_index>``, copied through pinned host memory.

    The host-to-device copy is asynchronous (``non_blocking=True``) on the current
    stream: torch work on that stream, and DLPack consumers that pass their stream,
    see the finished data. Raises DeviceError when torch cannot reach that GPU.
    """
    import torch
    from torch.utils.dlpack import from_dlpack

    check_cuda(device_index)
    src = from_dlpack(zero_copy_array(view).__dlpack__(max_version=(1, 0)))  # only read, below
    staging = torch.empty(src.shape, dtype=src.dtype, pin_memory=True)
    staging.copy_(src)
    return staging.to(f"cuda:{device_index}", non_blocking=True)


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
