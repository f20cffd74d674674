"""The ome-arrow-core plugin: a CUDA exporter and an ingester, both built on CuPy.

Loading this module never imports CuPy; ``requires=("cupy",)`` is checked with find_spec. The export
modules (pinned staging, copy threads) load on the first export: discovering plugins costs every
process, exporting to CUDA only the ones that do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ome_arrow_core import Exporter, Ingester, hookimpl

from .ingest import cupy_to_numpy, is_cupy_array

if TYPE_CHECKING:
    from ome_arrow_core import TensorView

__all__ = ["ome_arrow_exporters", "ome_arrow_ingesters", "PRIORITY"]

#: Above the torch backend's CUDA fallback (0): ``to_dlpack(device="cuda")`` (mode None, any
#: exporter) lands here. Only mode "cupy" is named, so ``to_torch``/``to_jax`` are never taken.
PRIORITY = 10


def export_cupy(view: TensorView, **options: Any) -> Any:
    """:func:`ome_arrow_cupy.export.export_cupy`, imported on first use."""
    from .export import export_cupy as export

    return export(view, **options)


def export_cupy_many(views: Sequence[TensorView], **options: Any) -> list[Any]:
    """:func:`ome_arrow_cupy.groups.export_cupy_many` (a stream group in one transfer), imported on first use."""
    from .groups import export_cupy_many as export

    return export(views, **options)


def pinned_host(nbytes: int) -> Any:
    """:func:`ome_arrow_cupy.export.pinned_host` (pinned memory a lazy view is read into), imported on first use."""
    from .export import pinned_host as allocate

    return allocate(nbytes)


@hookimpl
def ome_arrow_exporters() -> Sequence[Exporter]:
    return [
        Exporter(
            name="cupy",
            devices=("cuda",),
            modes=("cupy",),
            priority=PRIORITY,
            requires=("cupy",),
            extra="cupy",
            export=export_cupy,
            export_many=export_cupy_many,
            host_memory=pinned_host,
            description="cupy.ndarray on the GPU (reads into pinned memory or pinned staging, async copy; a stream "
            "group in one transfer)",
        )
    ]


@hookimpl
def ome_arrow_ingesters() -> Sequence[Ingester]:
    return [
        Ingester(
            name="cupy",
            priority=PRIORITY,
            requires=("cupy",),
            extra="cupy",
            matches=is_cupy_array,
            to_numpy=cupy_to_numpy,
            description="cupy.ndarray (copied to host)",
        )
    ]
