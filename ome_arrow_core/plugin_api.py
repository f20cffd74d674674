"""The one module plugin authors import from, besides ``ome_arrow_core`` itself.

Stability promise: every name in ``__all__`` keeps its name, signature and meaning
within a major version; a change is announced one minor release ahead with a
``DeprecationWarning``. Backends (ours and third parties') import nothing else from
the core: ``tests/test_plugin_door.py`` walks the first-party backends' imports and
fails on any other module.

Groups:

- hooks and handler descriptors: ``hookimpl``, ``Ingester`` (and its ``Ingested``), ``Reader``, ``Writer``,
  ``Exporter``, ``ChunkStore``, ``ChunkFile``, ``PixelSource``;
- dtypes and buffers: ``SUPPORTED`` dtypes, ``check_dtype``, ``cast_pixels``,
  ``arrow_empty``/``view_buffer``/``to_arrow_memory`` (64-byte aligned, Arrow-owned
  memory that exports zero-copy), ``DLPackTensor``, ``zero_copy_array`` (what
  ``to_dlpack(mode="arrow")`` exports, for exporters that hand it on without copying);
- files: ``atomic_path`` (all-or-nothing writes), ``Location`` (a resolved local or remote
  target, see :mod:`.location`) ``remote_file`` (an all-or-nothing upload of one file) and ``upload_directory`` (a
  store uploaded with its root metadata last), ``reading``/``where``/
  ``require_regular_file`` (wrap foreign errors at the boundary with file and member);
- integrity: ``ChunkChecksums``, ``checksums_of``, ``verify_enabled``,
  ``CHECKSUM_ALGORITHM``;
- metadata: ``channel_to_dict``/``channel_from_dict`` (the one stored form of a channel),
  ``physical_size_value`` (a stored physical size checked: a positive number or None, unknown),
  ``sample_channels`` and ``SAMPLES_NOTE`` (samples per pixel shown as channels), ``image_document`` /
  ``attach_ome_xml`` / ``ome_xml_text`` (a source's OME-XML trimmed to one image; a stored one checked
  against its image; an OME element tree written as OME-XML text);
- arguments and devices: ``check_row``, ``check_cuda_device`` (one message for a missing GPU);
- array types: ``is_torch_array``, ``is_jax_array``, ``is_cupy_array`` (array-api-compat's
  checks; they never import a framework);
- display: ``channel_colors`` (each channel's stored colour, else the thumbnails' default);
- datasets: ``DatasetViews`` (loaded on first use);
- views: ``view_meta`` (the metadata of the image a lazy view reads);
- every error class.

Testing: ``ome_arrow_core.testing`` (a module of its own, so importing this one loads no
test code) checks a reader or chunk store against the same contract: ``check_reader``,
``check_chunk_store``, ``ChunkStoreTests``; same stability promise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .arguments import check_row
from .array_types import is_cupy_array, is_jax_array, is_torch_array
from .boundary import reading, require_regular_file, where
from .buffers import arrow_empty, to_arrow_memory, view_buffer
from .builtins.cpu_export import zero_copy_array
from .casting import cast_pixels
from .checksums import ALGORITHM as CHECKSUM_ALGORITHM
from .checksums import ChunkChecksums, checksums_of, verify_enabled
from .devices import check_cuda_device
from .display.colors import channel_colors
from .dlpack import DLPackTensor
from .dtypes import SUPPORTED, check_dtype
from .errors import (
    ArgumentError,
    BackendUnavailableError,
    ChecksumError,
    DamagedFileError,
    DeviceError,
    DTypeError,
    FormatVersionError,
    LayoutError,
    OMEArrowError,
    PluginError,
    SchemaError,
    SelectionError,
    StorageError,
    UnsafeOverwriteError,
)
from .handlers import ChunkFile, ChunkStore, Exporter, Ingested, Ingester, PixelSource, Reader, Writer
from .hookspecs import hookimpl
from .layout import ChannelPolicy
from .location import Location
from .meta import SAMPLES_NOTE, channel_from_dict, channel_to_dict, physical_size_value, sample_channels
from .ome_xml import attach_ome_xml, image_document, ome_xml_text
from .remote import get_range, remote_file, upload_directory
from .safe_write import atomic_path

if TYPE_CHECKING:
    from .dataset import DatasetViews
    from .lazy import LazyTensorView
    from .meta import ImageMeta

__all__ = [
    "hookimpl",
    "Ingested",
    "Location",
    "remote_file",
    "upload_directory",
    "get_range",
    "Ingester",
    "Reader",
    "Writer",
    "Exporter",
    "ChunkStore",
    "ChunkFile",
    "PixelSource",
    "SUPPORTED",
    "check_dtype",
    "cast_pixels",
    "arrow_empty",
    "view_buffer",
    "to_arrow_memory",
    "DLPackTensor",
    "zero_copy_array",
    "atomic_path",
    "reading",
    "where",
    "require_regular_file",
    "ChunkChecksums",
    "checksums_of",
    "verify_enabled",
    "CHECKSUM_ALGORITHM",
    "channel_to_dict",
    "channel_from_dict",
    "physical_size_value",
    "sample_channels",
    "SAMPLES_NOTE",
    "image_document",
    "attach_ome_xml",
    "ome_xml_text",
    "check_row",
    "check_cuda_device",
    "is_torch_array",
    "is_jax_array",
    "is_cupy_array",
    "channel_colors",
    "DatasetViews",
    "ChannelPolicy",
    "view_meta",
    "OMEArrowError",
    "SchemaError",
    "FormatVersionError",
    "DamagedFileError",
    "ChecksumError",
    "DTypeError",
    "LayoutError",
    "SelectionError",
    "ArgumentError",
    "PluginError",
    "BackendUnavailableError",
    "DeviceError",
    "StorageError",
    "UnsafeOverwriteError",
]


def view_meta(view: LazyTensorView) -> ImageMeta:
    """Metadata of the whole image ``view`` reads (its ``selection`` indexes into it): pixel sizes, channels."""
    return view._source.meta


def __getattr__(name: str) -> Any:
    """``DatasetViews`` loads the dataset modules on first use only."""
    if name == "DatasetViews":
        from .dataset import DatasetViews

        return DatasetViews
    raise AttributeError(f"module 'ome_arrow_core.plugin_api' has no attribute {name!r}")
