"""Built-in CPU exporters: ``mode="arrow"`` (zero-copy, read-only) and ``mode="numpy"`` (a copy)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..buffers import arrow_base, to_arrow_memory
from ..dlpack import DLPackTensor
from ..handlers import Exporter
from ..hookspecs import hookimpl
from ..view import TensorView


def zero_copy_array(view: TensorView, contiguous: bool = False) -> np.ndarray:
    """The read-only array ``mode="arrow"`` exports: ``view``'s own Arrow memory when it can be.

    Memory numpy owns, negative strides (reversed selections: torch aborts the process on
    them) and strided views with ``contiguous=True`` are copied once into aligned Arrow memory.
    """
    arr = view.to_numpy()
    if arrow_base(arr) is None or (contiguous and not arr.flags.c_contiguous) or (arr.ndim and min(arr.strides) < 0):
        arr = to_arrow_memory(arr)  # one copy, straight into aligned Arrow memory
    return arr


def export_arrow(view: TensorView, *, contiguous: bool = False, **_: Any) -> DLPackTensor:
    """Zero-copy from the Arrow buffer behind ``view`` (see :func:`zero_copy_array`)."""
    return DLPackTensor(zero_copy_array(view, contiguous))


def export_numpy(view: TensorView, *, contiguous: bool = False, **_: Any) -> DLPackTensor:
    """A writable numpy copy of ``view`` (C order when ``contiguous``)."""
    return DLPackTensor(np.array(view.to_numpy(), order="C" if contiguous else "K"))


@hookimpl
def ome_arrow_exporters() -> Sequence[Exporter]:
    return [
        Exporter(
            name="arrow",
            devices=("cpu",),
            modes=("arrow",),
            export=export_arrow,
            description="zero-copy DLPack from Arrow memory",
        ),
        Exporter(
            name="numpy", devices=("cpu",), modes=("numpy",), export=export_numpy, description="writable numpy copy"
        ),
    ]
