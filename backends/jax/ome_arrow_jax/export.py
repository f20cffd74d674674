"""Exports of a TensorView to JAX: zero-copy on the CPU when the strides allow, else a copy."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ome_arrow_core import DTypeError
from ome_arrow_core.plugin_api import DLPackTensor, arrow_empty, check_cuda_device, is_compact

if TYPE_CHECKING:
    import jax

    from ome_arrow_core import TensorView

__all__ = ["is_compact", "export_cpu", "export_gpu", "ALIGNMENT"]

#: Byte alignment XLA's CPU client needs to import host memory without copying it.
ALIGNMENT = 64
#: Views up to this many bytes that need a copy are copied by JAX (``jnp.asarray``: least per-call work); larger
#: ones by numpy into aligned memory that JAX imports (JAX's strided copy is 2x slower there; export_speed.py).
SMALL_COPY = 256 * 1024


def export_cpu(view: TensorView, *, contiguous: bool = False, **_: Any) -> jax.Array:
    """A jax.Array on the CPU shaped like ``view``.

    Zero-copy when the view is C-contiguous or a transposition of a dense block and its
    first pixel is 64-byte aligned (true of whole images and of most planes): JAX imports
    the memory through DLPack and keeps it alive (an unaligned one JAX copies itself).
    Every other view (ROI crops and other strided views, and transposed ones when
    ``contiguous=True`` asks for C order) is copied once: by JAX when small, else by numpy
    into aligned memory JAX imports.
    """
    arr = view.to_numpy()
    if arr.dtype == np.float64:
        check_x64(arr.dtype)
    api = _api or _jax_api()
    if arr.flags.c_contiguous or (not contiguous and is_compact(arr.shape, view.strides)):
        # JAX copies unaligned memory itself (rare: only views starting inside a buffer), aliases the rest.
        out: jax.Array = api[0](_importable(arr))
        return out
    if arr.nbytes <= SMALL_COPY:
        out = api[1](arr)  # one copy, made by JAX (as jnp.asarray of a numpy array always does)
        return out
    dense, _ = arrow_empty(arr.shape, arr.dtype)  # one copy by numpy into aligned memory JAX takes as is
    np.copyto(dense, arr, casting="no")
    out = api[0](dense)
    return out


def _importable(arr: np.ndarray) -> Any:
    """What JAX's ``from_dlpack`` takes without copying: a writable alias of ``arr`` (numpy exports those
    in C; JAX arrays are immutable, so nothing writes through it), else a :class:`DLPackTensor`."""
    alias = arr.view()
    try:
        alias.flags.writeable = True  # allowed when the memory is writable (every buffer we allocate)
    except ValueError:  # immutable memory (an Arrow buffer a reader made): the DLPackTensor's alias
        return DLPackTensor(arr)
    return alias


#: ``jax.dlpack.from_dlpack`` (what ``jnp.from_dlpack`` calls) and ``jax.numpy.asarray``.
JaxAPI = tuple[Callable[[Any], Any], Callable[[Any], Any]]
_api: JaxAPI | None = None


def _jax_api() -> JaxAPI:
    """The JAX functions :func:`export_cpu` calls, imported on first use (this module loads without JAX)."""
    global _api
    if _api is None:
        import jax.numpy as jnp
        from jax.dlpack import from_dlpack

        _api = (from_dlpack, jnp.asarray)
    return _api


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
