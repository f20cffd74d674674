"""ome-arrow-core: OME-Arrow bioimage pixels as zero-copy tensors.

>>> import numpy as np
>>> from ome_arrow_core import OMEArrow
>>> img = OMEArrow(np.zeros((2, 64, 64), dtype=np.float32))   # 3-D arrays are ZYX
>>> img.tensor_view(z=1).shape                                   # CYX for one t and one z
(1, 64, 64)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    BackendUnavailableError,
    DeviceError,
    DTypeError,
    FormatVersionError,
    LayoutError,
    OMEArrowError,
    PluginError,
    SchemaError,
    SelectionError,
)
from .handlers import ChunkFile, ChunkStore, Exporter, Ingested, Ingester, PixelSource, Reader, Writer
from .hookspecs import hookimpl
from .image import OMEArrow
from .lazy import LazyTensorView
from .meta import Channel, ImageMeta
from .registry import Registry, default_registry, plugins
from .selection import Selection
from .view import TensorView
from .view_spec import ViewSpec

if TYPE_CHECKING:
    from .dataset import OMEArrowDataset, write_dataset
    from .plugin_listing import PluginInfo
    from .typed_chunk import cleanup_dataset, compact_dataset
    from .verification import VerifyReport, verify

__version__ = "0.1.0"

__all__ = [
    "OMEArrow",
    "OMEArrowDataset",
    "write_dataset",
    "compact_dataset",
    "cleanup_dataset",
    "verify",
    "VerifyReport",
    "TensorView",
    "LazyTensorView",
    "ViewSpec",
    "ImageMeta",
    "Channel",
    "Selection",
    "PixelSource",
    "Registry",
    "PluginInfo",
    "default_registry",
    "plugins",
    "hookimpl",
    "Ingested",
    "Ingester",
    "Reader",
    "Writer",
    "Exporter",
    "ChunkStore",
    "ChunkFile",
    "OMEArrowError",
    "SchemaError",
    "FormatVersionError",
    "DTypeError",
    "LayoutError",
    "SelectionError",
    "PluginError",
    "BackendUnavailableError",
    "DeviceError",
]


def __getattr__(name: str) -> Any:
    """OMEArrowDataset, write_dataset, compact_dataset, cleanup_dataset, verify and PluginInfo load on first use."""
    if name in ("OMEArrowDataset", "write_dataset"):
        from . import dataset

        return getattr(dataset, name)
    if name == "compact_dataset":
        from .typed_chunk import compact_dataset

        return compact_dataset
    if name == "cleanup_dataset":
        from .typed_chunk import cleanup_dataset

        return cleanup_dataset
    if name == "PluginInfo":
        from .plugin_listing import PluginInfo

        return PluginInfo
    if name in ("verify", "VerifyReport"):
        from . import verification

        return getattr(verification, name)
    raise AttributeError(f"module 'ome_arrow_core' has no attribute {name!r}")
