"""The ome-arrow-core plugin: a jax ingester and the jax exporters (CPU and GPU)."""

from __future__ import annotations

from collections.abc import Sequence

from ome_arrow_core import Exporter, Ingester, hookimpl

from .export import export_cpu, export_gpu
from .ingest import is_jax_array, jax_to_numpy

REQUIRES = ("jax",)


@hookimpl
def ome_arrow_ingesters() -> Sequence[Ingester]:
    return [
        Ingester(
            name="jax",
            priority=50,
            requires=REQUIRES,
            extra="jax",
            matches=is_jax_array,
            to_numpy=jax_to_numpy,
            description="jax.Array (GPU arrays are copied to the host)",
        ),
    ]


@hookimpl
def ome_arrow_exporters() -> Sequence[Exporter]:
    return [
        Exporter(
            name="jax",
            devices=("cpu",),
            modes=("jax",),
            requires=REQUIRES,
            extra="jax",
            export=export_cpu,
            description="jax.Array, zero-copy from Arrow memory when compact",
        ),
        # Below torch and cupy: to_dlpack(device="cuda") prefers them when installed.
        Exporter(
            name="jax-cuda",
            devices=("cuda",),
            modes=("jax",),
            requires=REQUIRES,
            extra="jax",
            priority=-10,
            export=export_gpu,
            description="jax.Array on a GPU",
        ),
    ]
