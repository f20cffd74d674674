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
  ``to_dlpack(mode="arrow")`` exports, for exporters that hand it on without copying), ``HostBlocks`` (the live
  blocks an ``Exporter.host_memory`` allocator handed out: which one a view lies in);
- files: ``atomic_path`` (all-or-nothing writes), ``Location`` (a resolved local or remote
  target, see :mod:`.location`) ``remote_file`` (an all-or-nothing upload of one file) and ``upload_directory`` (a
  store uploaded with its root metadata last), ``get_range``/``open_known`` (an object, or its bytes, read by ranged
  GETs without a lookup where its size is known), ``reading``/``where``/
  ``require_regular_file`` (wrap foreign errors at the boundary with file and member);
- integrity: ``ChunkChecksums``, ``checksums_of``, ``verify_enabled``,
  ``CHECKSUM_ALGORITHM``, ``hex_digest``/``to_hex`` (a checksum as the 16 hex digits files store);
- metadata: ``channel_to_dict``/``channel_from_dict`` (the one stored form of a channel),
  ``physical_size_value`` (a stored physical size checked: a positive number or None, unknown),
  ``sample_channels`` and ``SAMPLES_NOTE`` (samples per pixel shown as channels), ``image_document`` /
  ``attach_ome_xml`` / ``ome_xml_text`` (a source's OME-XML trimmed to one image; a stored one checked
  against its image; an OME element tree written as OME-XML text);
- arguments and devices: ``check_row``, ``check_cuda_device`` (one message for a missing GPU), ``group_offsets`` /
  ``gather_group`` / ``GROUP_ALIGN`` (a stream group packed into one host buffer for ``Exporter.export_many``);
- array types: ``is_torch_array``, ``is_jax_array``, ``is_cupy_array`` (array-api-compat's
  checks; they never import a framework);
- display: ``channel_colors`` (each channel's stored colour, else the thumbnails' default);
- datasets: ``DatasetViews`` (loaded on first use);
- records: ``TableRecordSource`` (an image read from an OME-Arrow struct column of a table a plugin read whole, as
  ome-arrow 0.1.0's Vortex files hold it), ``record_table`` (the one-row table of an image it reads),
  ``ome_columns`` (a schema's OME-Arrow columns);
- views: ``view_meta`` (the metadata of the image a lazy view reads);
- reads: ``gc_held`` (Python's cyclic collector held off while a batch is read: one count per process, reset in
  a forked child; see :mod:`.gc_hold`), ``PlaneBlocks`` (an image's planes read a block of Z at a time, for
  writers that take it plane by plane; see :mod:`.plane_blocks`);
- every error class.

Testing: ``ome_arrow_core.testing`` (a module of its own, so importing this one loads no
test code) checks a reader or chunk store against the same contract: ``check_reader``,
``check_chunk_store``, ``ChunkStoreTests``; same stability promise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from .doors import lazy_names

if TYPE_CHECKING:
    from .arguments import check_row
    from .array_types import is_cupy_array, is_jax_array, is_torch_array
    from .boundary import reading, require_regular_file, where
    from .buffers import arrow_empty, to_arrow_memory, view_buffer
    from .builtins.cpu_export import zero_copy_array
    from .casting import cast_pixels
    from .checksums import ALGORITHM as CHECKSUM_ALGORITHM
    from .checksums import ChunkChecksums, checksums_of, hex_digest, to_hex, verify_enabled
    from .dataset import DatasetViews
    from .devices import check_cuda_device
    from .display.colors import channel_colors
    from .dlpack import DLPackTensor, is_compact
    from .dtypes import SUPPORTED, check_dtype
    from .errors import (
        ArgumentError,
        ArgumentTypeError,
        BackendUnavailableError,
        ChecksumError,
        DamagedFileError,
        DeviceError,
        DTypeError,
        FormatVersionError,
        LayoutError,
        NotFoundError,
        OMEArrowError,
        PluginError,
        SchemaError,
        SelectionError,
        SelectionTypeError,
        StorageError,
        UnsafeOverwriteError,
    )
    from .gc_hold import gc_held
    from .group_staging import GROUP_ALIGN, gather_group, group_offsets
    from .handlers import ChunkFile, ChunkStore, Exporter, Ingested, Ingester, PixelSource, Reader, Writer
    from .hookspecs import hookimpl
    from .host_memory import HostBlocks
    from .layout import ChannelPolicy
    from .lazy import LazyTensorView
    from .location import Location
    from .meta import SAMPLES_NOTE, ImageMeta, channel_from_dict, channel_to_dict, physical_size_value, sample_channels
    from .ome_xml import attach_ome_xml, image_document, ome_xml_text
    from .plane_blocks import PlaneBlocks
    from .record import TableRecordSource, ome_columns, record_table
    from .remote import get_range, open_known, remote_file, upload_directory
    from .safe_write import atomic_path

__all__ = [
    "hookimpl",
    "Ingested",
    "Location",
    "remote_file",
    "upload_directory",
    "get_range",
    "open_known",
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
    "HostBlocks",
    "DLPackTensor",
    "is_compact",
    "zero_copy_array",
    "atomic_path",
    "reading",
    "where",
    "require_regular_file",
    "ChunkChecksums",
    "checksums_of",
    "verify_enabled",
    "CHECKSUM_ALGORITHM",
    "hex_digest",
    "to_hex",
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
    "GROUP_ALIGN",
    "group_offsets",
    "gather_group",
    "is_torch_array",
    "is_jax_array",
    "is_cupy_array",
    "channel_colors",
    "DatasetViews",
    "TableRecordSource",
    "record_table",
    "ome_columns",
    "ChannelPolicy",
    "view_meta",
    "gc_held",
    "PlaneBlocks",
    "OMEArrowError",
    "SchemaError",
    "FormatVersionError",
    "DamagedFileError",
    "ChecksumError",
    "DTypeError",
    "LayoutError",
    "SelectionError",
    "SelectionTypeError",
    "ArgumentTypeError",
    "NotFoundError",
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


#: Each name of the door: (module, name in it), imported on first use (see :mod:`.doors`): loading a plugin
#: loads the modules of the names it imports, not every module behind this door.
_WHERE: Final[dict[str, tuple[str, str]]] = {
    "check_row": (".arguments", "check_row"),
    "is_cupy_array": (".array_types", "is_cupy_array"),
    "is_jax_array": (".array_types", "is_jax_array"),
    "is_torch_array": (".array_types", "is_torch_array"),
    "reading": (".boundary", "reading"),
    "require_regular_file": (".boundary", "require_regular_file"),
    "where": (".boundary", "where"),
    "arrow_empty": (".buffers", "arrow_empty"),
    "to_arrow_memory": (".buffers", "to_arrow_memory"),
    "view_buffer": (".buffers", "view_buffer"),
    "HostBlocks": (".host_memory", "HostBlocks"),
    "zero_copy_array": (".builtins.cpu_export", "zero_copy_array"),
    "cast_pixels": (".casting", "cast_pixels"),
    "CHECKSUM_ALGORITHM": (".checksums", "ALGORITHM"),
    "ChunkChecksums": (".checksums", "ChunkChecksums"),
    "checksums_of": (".checksums", "checksums_of"),
    "hex_digest": (".checksums", "hex_digest"),
    "to_hex": (".checksums", "to_hex"),
    "verify_enabled": (".checksums", "verify_enabled"),
    "check_cuda_device": (".devices", "check_cuda_device"),
    "channel_colors": (".display.colors", "channel_colors"),
    "DLPackTensor": (".dlpack", "DLPackTensor"),
    "is_compact": (".dlpack", "is_compact"),
    "SUPPORTED": (".dtypes", "SUPPORTED"),
    "check_dtype": (".dtypes", "check_dtype"),
    "ArgumentError": (".errors", "ArgumentError"),
    "BackendUnavailableError": (".errors", "BackendUnavailableError"),
    "ChecksumError": (".errors", "ChecksumError"),
    "DamagedFileError": (".errors", "DamagedFileError"),
    "DeviceError": (".errors", "DeviceError"),
    "DTypeError": (".errors", "DTypeError"),
    "FormatVersionError": (".errors", "FormatVersionError"),
    "gc_held": (".gc_hold", "gc_held"),
    "PlaneBlocks": (".plane_blocks", "PlaneBlocks"),
    "GROUP_ALIGN": (".group_staging", "GROUP_ALIGN"),
    "gather_group": (".group_staging", "gather_group"),
    "group_offsets": (".group_staging", "group_offsets"),
    "LayoutError": (".errors", "LayoutError"),
    "OMEArrowError": (".errors", "OMEArrowError"),
    "PluginError": (".errors", "PluginError"),
    "SchemaError": (".errors", "SchemaError"),
    "SelectionError": (".errors", "SelectionError"),
    "SelectionTypeError": (".errors", "SelectionTypeError"),
    "ArgumentTypeError": (".errors", "ArgumentTypeError"),
    "NotFoundError": (".errors", "NotFoundError"),
    "StorageError": (".errors", "StorageError"),
    "UnsafeOverwriteError": (".errors", "UnsafeOverwriteError"),
    "ChunkFile": (".handlers", "ChunkFile"),
    "ChunkStore": (".handlers", "ChunkStore"),
    "Exporter": (".handlers", "Exporter"),
    "Ingested": (".handlers", "Ingested"),
    "Ingester": (".handlers", "Ingester"),
    "PixelSource": (".handlers", "PixelSource"),
    "Reader": (".handlers", "Reader"),
    "Writer": (".handlers", "Writer"),
    "hookimpl": (".hookspecs", "hookimpl"),
    "ChannelPolicy": (".layout", "ChannelPolicy"),
    "Location": (".location", "Location"),
    "SAMPLES_NOTE": (".meta", "SAMPLES_NOTE"),
    "channel_from_dict": (".meta", "channel_from_dict"),
    "channel_to_dict": (".meta", "channel_to_dict"),
    "physical_size_value": (".meta", "physical_size_value"),
    "sample_channels": (".meta", "sample_channels"),
    "attach_ome_xml": (".ome_xml", "attach_ome_xml"),
    "image_document": (".ome_xml", "image_document"),
    "ome_xml_text": (".ome_xml", "ome_xml_text"),
    "get_range": (".remote", "get_range"),
    "open_known": (".remote", "open_known"),
    "remote_file": (".remote", "remote_file"),
    "upload_directory": (".remote", "upload_directory"),
    "atomic_path": (".safe_write", "atomic_path"),
    "DatasetViews": (".dataset", "DatasetViews"),
    "TableRecordSource": (".record", "TableRecordSource"),
    "record_table": (".record", "record_table"),
    "ome_columns": (".record", "ome_columns"),
}

__getattr__ = lazy_names(__name__, _WHERE)
