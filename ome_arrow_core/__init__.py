"""ome-arrow-core: OME-Arrow bioimage pixels as zero-copy tensors.

>>> import numpy as np
>>> from ome_arrow_core import OMEArrow
>>> img = OMEArrow(np.zeros((2, 64, 64), dtype=np.float32))   # 3-D arrays are ZYX
>>> img.tensor_view(z=1).shape                                   # CYX for one t and one z
(1, 64, 64)
"""

from __future__ import annotations

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
from .handlers import Exporter, Ingester, PixelSource, Reader, Writer
from .hookspecs import hookimpl
from .image import OMEArrow
from .lazy import LazyTensorView
from .meta import Channel, ImageMeta
from .registry import PluginInfo, Registry, default_registry, plugins
from .selection import Selection
from .view import TensorView

__version__ = "0.1.0"

__all__ = [
    "OMEArrow",
    "TensorView",
    "LazyTensorView",
    "ImageMeta",
    "Channel",
    "Selection",
    "PixelSource",
    "Registry",
    "PluginInfo",
    "default_registry",
    "plugins",
    "hookimpl",
    "Ingester",
    "Reader",
    "Writer",
    "Exporter",
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
