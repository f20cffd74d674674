"""Array-type checks (array-api-compat's, behind the plugin door) and the one CUDA device check."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ome_arrow_core.errors import DeviceError
from ome_arrow_core.plugin_api import check_cuda_device, is_cupy_array, is_jax_array, is_torch_array


def test_numpy_is_no_framework_array() -> None:
    arr = np.zeros(3)
    assert not is_torch_array(arr) and not is_jax_array(arr) and not is_cupy_array(arr)


def test_torch_and_jax_arrays_are_recognised() -> None:
    torch = pytest.importorskip("torch")
    jnp = pytest.importorskip("jax.numpy")
    t, j = torch.zeros(3), jnp.zeros(3)
    assert is_torch_array(t) and not is_jax_array(t) and not is_cupy_array(t)
    assert is_jax_array(j) and not is_torch_array(j)


def test_numpy_input_loads_neither_array_api_compat_nor_a_framework() -> None:
    code = (
        "import sys, numpy as np; from ome_arrow_core import OMEArrow; OMEArrow(np.zeros((4, 4), np.uint8)); "
        "print(sorted(m for m in ('array_api_compat', 'torch', 'jax', 'cupy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cuda_device_check_names_the_library_the_count_and_the_fix() -> None:
    check_cuda_device(1, 2, "torch 9", "unused")
    with pytest.raises(
        DeviceError,
        match=r"cuda:0 was requested but torch 9 sees no CUDA device: no driver; "
        r"or use device='cpu'",
    ):
        check_cuda_device(0, 0, "torch 9", "no driver")
    with pytest.raises(
        DeviceError, match=r"'cuda:2' does not exist; CuPy sees 2 CUDA device\(s\): use cuda:0 to cuda:1"
    ):
        check_cuda_device(2, 2, "CuPy", "unused")
