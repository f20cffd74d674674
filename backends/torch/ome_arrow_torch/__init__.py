"""PyTorch backend for ome-arrow-core.

Installed, it lets ``OMEArrow(tensor)`` ingest ``torch.Tensor`` objects and
``view.to_torch()`` / ``view.to_dlpack(device="cuda")`` hand views to PyTorch.
Importing this package does not import torch.
"""

from __future__ import annotations

from typing import Any

from .ingest import is_torch_tensor, tensor_to_numpy

__version__ = "0.1.0"

__all__ = [
    "is_torch_tensor",
    "tensor_to_numpy",
    "OMEArrowTorchDataset",
    "OMEArrowIterableDataset",
    "shard_indices",
    "__version__",
]

_DATA = ("OMEArrowTorchDataset", "OMEArrowIterableDataset", "shard_indices")


def __getattr__(name: str) -> Any:
    """The datasets (``ome_arrow_torch.data``) import torch, so they load on first use."""
    if name in _DATA:
        from . import data

        return getattr(data, name)
    raise AttributeError(f"module 'ome_arrow_torch' has no attribute {name!r}")
