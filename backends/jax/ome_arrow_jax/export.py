"""Exports of a TensorView to JAX: zero-copy on the CPU when the strides allow, else a copy."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ome_arrow_core import DTypeError
from ome_arrow_core.plugin_api import DLPackTensor, check_cuda_device, to_arrow_memory, zero_copy_array

if TYPE_CHECKING:
    import jax

    from ome_arrow_core import TensorView

__all__ = ["is_compact", "export_cpu", "export_gpu"]


def is_compact(shape: Sequence[int], strides: Sequence[int]) -> bool:
    """True when JAX can import these element strides without a copy.

    JAX accepts a transposition of a dense buffer (no gaps, no broadcasting); axes of
    length 1 may have any stride. This mirrors XLA's ``StridesToLayout`` check.
    """
    order = sorted(range(len(shape)), key=lambda i: (strides[i], -i))
    expected = 1
    for i in order:
        if shape[i] > 1 and strides[i] != expected:
            return False
        expected *= shape[i]
    return True


def export_cpu(view: TensorView, *, contiguous: bool = False, **_: Any) -> jax.Array:
    """A jax.Array on the CPU shaped like ``view``.

    Zero-copy from Arrow memory when the view is C-contiguous or a transposition of a
    dense block and its first pixel is 64-byte aligned (true of whole images and of
    most planes); JAX copies an unaligned compact view itself. ROI crops and other
    strided views are copied once into aligned memory, as is every view that is not
    C-contiguous when ``contiguous=True`` asks for C order.
    """
    arr = view.to_numpy()
    if arr.dtype == np.float64:
        check_x64(arr.dtype)
    if arr.flags.c_contiguous or (not contiguous and is_compact(view.shape, view.strides)):
        arr = zero_copy_array(view)
    else:
        arr = to_arrow_memory(arr)  # one copy into aligned C-order Arrow memory, which JAX imports as is
    out: jax.Array = _from_dlpack()(DLPackTensor(arr))
    return out


_jax_from_dlpack: Callable[[Any], Any] | None = None


def _from_dlpack() -> Callable[[Any], Any]:
    """``jax.dlpack.from_dlpack`` (what ``jnp.from_dlpack`` calls), imported on first use."""
    global _jax_from_dlpack
    if _jax_from_dlpack is None:
        from jax.dlpack import from_dlpack

        _jax_from_dlpack = from_dlpack
    return _jax_from_dlpack


def export_gpu(view: TensorView, *, device_index: int = 0, **_: Any) -> jax.Array:
    """A jax.Array on GPU ``device_index`` (an asynchronous host-to-device copy)."""
    import jax

    check_x64(view.dtype)
    gpus = gpu_devices()
    check_cuda_device(
        device_index,
        len(gpus),
        f"JAX {jax.__version__}",
        f"its devices are {', '.join(map(str, jax.devices()))}; install a CUDA build "
        '(pip install "jax[cuda12]") on a machine with an NVIDIA GPU',
    )
    out: jax.Array = jax.device_put(view.to_numpy(contiguous=True), gpus[device_index])
    return out


def gpu_devices() -> list[Any]:
    """JAX's GPU devices, or an empty list when it has no GPU backend."""
    import jax

    try:
        return list(jax.devices("gpu"))
    except RuntimeError:
        return []


def check_x64(dtype: np.dtype) -> None:
    """Raise DTypeError for float64 while JAX's 64-bit mode is off (JAX would cast it)."""
    import jax

    if dtype == np.float64 and jax.dtypes.canonicalize_dtype(np.float64) != np.float64:
        raise DTypeError(
            "float64 pixels would be cast to float32 by JAX, whose 64-bit mode is off; enable it "
            "(jax.config.update('jax_enable_x64', True) or `with jax.enable_x64(True):`) "
            "or ask for float32 explicitly with tensor_view(..., dtype='float32')"
        )
