"""Is there a CUDA device here? Asked of the NVIDIA driver directly, without importing a framework.

Used by ``ome-arrow-core plugins`` to list CUDA exporters as unavailable on a machine without
a GPU. It initialises the CUDA driver in this process, so library code that may later fork
workers (DataLoader) does not call it.
"""

from __future__ import annotations

import ctypes
import functools
import sys

__all__ = ["cuda_devices"]

#: The driver library's name on each platform, most specific first.
_DRIVER = {"win32": ("nvcuda.dll",), "darwin": ()}.get(sys.platform, ("libcuda.so.1", "libcuda.so"))
#: CUDA driver error codes worth a word of their own.
_ERRORS = {
    100: "no CUDA-capable device is detected",
    35: "the driver is older than the CUDA runtime",
    999: "unknown CUDA error",
}


@functools.cache
def cuda_devices() -> tuple[int, str]:
    """The number of CUDA devices the driver sees (``CUDA_VISIBLE_DEVICES`` applies), and why
    it is 0 (``""`` when it is not)."""
    lib = None
    for name in _DRIVER:
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if lib is None:
        return 0, "no NVIDIA driver (libcuda not found)"
    rc = int(lib.cuInit(0))
    if rc:
        return 0, f"CUDA driver: {_ERRORS.get(rc, 'cuInit failed')} (error {rc})"
    count = ctypes.c_int(0)
    rc = int(lib.cuDeviceGetCount(ctypes.byref(count)))
    if rc:
        return 0, f"CUDA driver: cuDeviceGetCount failed (error {rc})"
    return count.value, "" if count.value else "the CUDA driver sees no device"
