"""PyTorch backend for ome-arrow-core.

Installed, it lets ``OMEArrow(tensor)`` ingest ``torch.Tensor`` objects and
``view.to_torch()`` / ``view.to_dlpack(device="cuda")`` hand views to PyTorch.
Importing this package does not import torch.
"""

from __future__ import annotations

from .ingest import is_torch_tensor, tensor_to_numpy

__version__ = "0.1.0"

__all__ = ["is_torch_tensor", "tensor_to_numpy", "__version__"]
