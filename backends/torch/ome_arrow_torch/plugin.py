"""The ome-arrow-core plugin: a torch ingester and the torch exporters (CPU and CUDA)."""

from __future__ import annotations

from collections.abc import Sequence

from ome_arrow_core import Exporter, Ingester, hookimpl

from .export import export_cpu, export_cuda, export_cuda_many, pinned_host
from .ingest import is_torch_tensor, tensor_to_numpy

REQUIRES = ("torch",)


@hookimpl
def ome_arrow_ingesters() -> Sequence[Ingester]:
    return [
        Ingester(
            name="torch",
            priority=50,
            requires=REQUIRES,
            extra="torch",
            matches=is_torch_tensor,
            to_numpy=tensor_to_numpy,
            description="torch.Tensor (CUDA tensors are copied to the host)",
        ),
    ]


@hookimpl
def ome_arrow_exporters() -> Sequence[Exporter]:
    return [
        Exporter(
            name="torch",
            devices=("cpu",),
            modes=("torch",),
            requires=REQUIRES,
            extra="torch",
            export=export_cpu,
            description="torch.Tensor, zero-copy from Arrow memory",
        ),
        # Priority 0: a CuPy exporter (higher) wins to_dlpack(device="cuda") when installed.
        Exporter(
            name="torch-cuda",
            devices=("cuda",),
            modes=("torch",),
            requires=REQUIRES,
            extra="torch",
            priority=0,
            export=export_cuda,
            export_many=export_cuda_many,
            host_memory=pinned_host,
            description="torch.Tensor on a GPU, copied through pinned memory (reads into it; a stream group in one "
            "copy)",
        ),
    ]
