"""Lazy CuPy import and CUDA device checks."""

from __future__ import annotations

from typing import Any

from ome_arrow_core import BackendUnavailableError
from ome_arrow_core.plugin_api import check_cuda_device

__all__ = ["import_cupy", "device_count", "check_device"]

_INSTALL = 'pip install "ome-arrow-core[cupy]"'


def import_cupy() -> Any:
    """Import and return ``cupy``; raise BackendUnavailableError when it cannot be imported."""
    try:
        import cupy
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the 'cupy' backend could not import cupy ({exc}); install it with: {_INSTALL}"
        ) from exc
    return cupy


def device_count(cp: Any) -> tuple[int, str]:
    """Number of CUDA devices CuPy sees, and why it is 0 (no driver, no GPU...) or ``""``."""
    try:
        return int(cp.cuda.runtime.getDeviceCount()), ""
    except Exception as exc:  # CUDARuntimeError without a driver; loader errors on broken installs
        return 0, f"{type(exc).__name__}: {exc}"


def check_device(cp: Any, index: int) -> None:
    """Raise DeviceError unless ``cuda:{index}`` exists."""
    n, why = device_count(cp)
    check_cuda_device(index, n, "CuPy", f"{why or 'the count is 0'}; run on a machine with an NVIDIA GPU and driver")
