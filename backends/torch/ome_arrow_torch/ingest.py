"""Ingest of ``torch.Tensor``: a host numpy array with the tensor's dtype."""

from __future__ import annotations

from typing import Any

import numpy as np

from ome_arrow_core import DeviceError, DTypeError
from ome_arrow_core.plugin_api import SUPPORTED, is_torch_array

__all__ = ["is_torch_tensor", "tensor_to_numpy"]

#: What to convert an unsupported torch dtype to, for the error message.
_SUGGEST = {
    "float16": "torch.float32",
    "bfloat16": "torch.float32",
    "int64": "torch.int32",
    "uint64": "torch.uint32",
    "complex32": "a real dtype, e.g. tensor.abs().to(torch.float32)",
    "complex64": "a real dtype, e.g. tensor.abs()",
    "complex128": "a real dtype, e.g. tensor.abs()",
}


def is_torch_tensor(obj: object) -> bool:
    """True for a ``torch.Tensor``; never imports torch (array-api-compat's check)."""
    return is_torch_array(obj)


def dtype_name(tensor: Any) -> str:
    """The numpy-style name of a tensor's dtype (``torch.float32`` -> ``"float32"``)."""
    return str(tensor.dtype).removeprefix("torch.")


def tensor_to_numpy(tensor: Any) -> np.ndarray:
    """``tensor`` as a numpy array of the same dtype; GPU tensors are copied to the host.

    Raises DTypeError for dtypes OME-Arrow cannot store (float16, bfloat16, int64,
    complex, ...) and DeviceError for tensors without data (device ``meta``).
    """
    name = dtype_name(tensor)
    if name not in SUPPORTED:
        target = _SUGGEST.get(name, "one of them")
        raise DTypeError(
            f"torch tensor dtype {name} cannot be stored as OME-Arrow; supported dtypes are "
            f"{', '.join(SUPPORTED)}. Convert explicitly first, e.g. to {target}."
        )
    if tensor.device.type == "meta":
        raise DeviceError("a tensor on device 'meta' has no data to ingest; materialize it first")
    if tensor.layout is not _strided():
        tensor = tensor.to_dense()
    # force=True detaches, copies to the host and resolves conj/neg bits when needed.
    out: np.ndarray = tensor.numpy(force=True)
    return out


def _strided() -> Any:
    import torch

    return torch.strided
