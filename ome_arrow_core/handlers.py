"""Handler descriptors that plugins return from their hooks.

A handler names what it handles and how to check its libraries are importable, without
importing them. The callables it carries import their framework on first call. The classes are
frozen dataclasses made by :func:`~.frozen_types.frozen` (a fresh process compiles no methods for them).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, Protocol, TypeAlias, TypeVar

import numpy as np

from .errors import BackendUnavailableError, PluginError
from .frozen_types import frozen

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pyarrow as pa

    from .image import OMEArrow
    from .location import Location
    from .meta import ImageMeta
    from .selection import Selection
    from .view import TensorView

__all__ = [
    "Handler",
    "Ingested",
    "Ingester",
    "Reader",
    "Writer",
    "Exporter",
    "ChunkStore",
    "ChunkFile",
    "PixelSource",
    "OpenSource",
    "OpenRemoteSource",
    "WriteImage",
    "WriteRemoteImage",
    "ExportView",
    "ExportViews",
    "WriteChunks",
    "OpenChunks",
    "install_hint",
    "require",
]


T = TypeVar("T")


def install_hint(extra: str | None, requires: Sequence[str]) -> str:
    """The pip command that makes a handler available."""
    if extra:
        return f'pip install "ome-arrow-core[{extra}]"'
    return "pip install " + " ".join(requires)


@frozen
class Handler:
    """Common fields: a name, a priority (higher wins) and the modules it needs."""

    name: str
    priority: int = 0
    requires: tuple[str, ...] = ()
    extra: str | None = None
    description: str = ""
    plugin: str = field(default="", compare=False)

    @cached_property
    def available(self) -> bool:
        """True when every required module can be imported (checked without importing)."""
        return all(importlib.util.find_spec(m) is not None for m in self.requires)

    @property
    def install(self) -> str:
        """The pip command that installs what this handler needs."""
        return install_hint(self.extra, self.requires)

    def ensure_available(self) -> None:
        """Raise BackendUnavailableError naming the extra to install when a library is missing."""
        if not self.available:
            missing = [m for m in self.requires if importlib.util.find_spec(m) is None]
            raise BackendUnavailableError(
                f"the {self.name!r} backend needs {', '.join(missing)}, which is not installed; "
                f"install it with: {self.install}"
            )


class PixelSource(Protocol):
    """An opened image: metadata at once, pixels on request, storage facts for ``info()``.

    Subclass it to inherit the default :meth:`describe` (no facts); a source that neither
    subclasses it nor defines ``describe`` gets that default when an image wraps it.
    """

    meta: ImageMeta

    def read(self, sel: Selection) -> np.ndarray:
        """Pixels of ``sel`` as a ``TZCYX`` array of shape ``sel.shape`` (may be read-only)."""
        ...

    def describe(self) -> dict[str, Any]:
        """Storage facts for ``OMEArrow.info()`` (``"storage"``: what holds the pixels; counters...)."""
        return {}


# The callables handlers carry: the positional arguments the core passes are typed; keywords are
# each handler's own options (``row=``, ``compression=``...), passed through unchecked.
#: ``Reader.open``: a local path (and reader options such as ``row=``) to a pixel source.
OpenSource: TypeAlias = Callable[Concatenate[Path, ...], "PixelSource"]
#: ``Reader.open`` of a ``remote=True`` reader: it also takes a Location.
OpenRemoteSource: TypeAlias = Callable[Concatenate["Path | Location", ...], "PixelSource"]
#: ``Writer.write``: an image to a local path (with writer options); returns what it wrote.
WriteImage: TypeAlias = Callable[Concatenate["OMEArrow", Path, ...], Any]
#: ``Writer.write`` of a ``remote=True`` writer: ``out`` may also be a Location.
WriteRemoteImage: TypeAlias = Callable[Concatenate["OMEArrow", "Path | Location", ...], Any]
#: ``Exporter.export``: a view to a tensor (keywords: ``contiguous``, ``device_index``, ...).
ExportView: TypeAlias = Callable[Concatenate["TensorView", ...], Any]
#: ``Exporter.export_many``: the views of one stream group to their tensors, in order (keywords as ``export``).
ExportViews: TypeAlias = Callable[Concatenate["Sequence[TensorView]", ...], "list[Any]"]
#: ``ChunkStore.write``: chunk record batches of a schema to a path, in order (keyword: ``compression``).
WriteChunks: TypeAlias = Callable[Concatenate["Iterable[pa.RecordBatch]", "pa.Schema", Path, ...], None]
#: ``ChunkStore.open``: a chunk file to its reader.
OpenChunks: TypeAlias = Callable[[Path], "ChunkFile"]


def require(handler: Handler, value: T | None, what: str) -> T:
    """``value`` (one of ``handler``'s callables, called ``what``), or PluginError when the plugin left it out."""
    if value is None:
        kind = type(handler).__name__.lower()
        plugin = f" (plugin {handler.plugin!r})" if handler.plugin else ""
        raise PluginError(f"the {handler.name!r} {kind}{plugin} has no {what} function; its plugin is broken")
    return value


@frozen
class Ingested:
    """What an ingester returns when its object knows more than its pixels.

    ``dims`` names the array's axes (letters of TZCYX, as ``dim_order``); ``physical_size``
    and ``physical_unit`` map X, Y, Z to the pixel size and its unit; ``channel_names``
    has one name per channel; ``name`` names the image. ``None`` means the object does not say.
    """

    array: np.ndarray
    dims: str | None = None
    physical_size: Mapping[str, float] | None = None
    physical_unit: Mapping[str, str] | None = None
    channel_names: Sequence[str] | None = None
    name: str | None = None


@frozen
class Ingester(Handler):
    """Turns an in-memory object into a numpy array (host memory), or an :class:`Ingested`.

    ``matches(obj)`` must be cheap and must not import frameworks (check ``sys.modules``).
    """

    matches: Callable[[object], bool] = lambda obj: False
    to_numpy: Callable[[object], np.ndarray | Ingested] = np.asarray


@frozen
class Reader(Handler):
    """Opens paths with one of ``suffixes`` (or accepted by ``sniff``) as a PixelSource."""

    suffixes: tuple[str, ...] = ()
    open: OpenSource | None = None
    sniff: Callable[[Path], bool] | None = None
    #: ``open`` also takes a remote :class:`~ome_arrow_core.location.Location` (``s3://``, ``http(s)://``, ...).
    remote: bool = False
    #: For paths that hold many images (an HCS plate): ``collection(path)`` returns their metadata table
    #: (metadata only: columns ``image_id``, ``path`` and any others, one row per image, no pixels read), or
    #: None when ``path`` is one image. Image ``i`` of the table is ``open(path, row=i)``. A hook that takes
    #: ``column=`` is given the scan's ``column`` (the OME-Arrow column of a table of several) when one is named.
    #: :meth:`OMEArrowDataset.scan <ome_arrow_core.OMEArrowDataset.scan>` uses it.
    collection: Callable[..., pa.Table | None] | None = None

    def claims_suffix(self, path: Path) -> bool:
        """True when ``path`` ends in one of ``suffixes`` (any case)."""
        suffixes = self.suffixes
        return path.name.lower().endswith(suffixes if isinstance(suffixes, tuple) else tuple(suffixes))

    def accepts(self, path: Path) -> bool:
        """True when this reader claims ``path`` by suffix or by sniffing."""
        return self.claims_suffix(path) or self.sniffs(path)

    def sniffs(self, path: Path) -> bool:
        """True when this reader's ``sniff`` (if any) recognises ``path``."""
        return bool(self.sniff and self.sniff(path))


@frozen
class Writer(Handler):
    """Writes an image for ``export(how=...)`` with one of ``formats``."""

    formats: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()
    write: WriteImage | None = None
    #: ``write`` also takes a remote :class:`~ome_arrow_core.location.Location` as ``out``.
    remote: bool = False


@frozen
class Exporter(Handler):
    """Hands a TensorView to ``devices`` in ``modes`` for ``dtypes`` (None: every dtype).

    ``export_many`` (optional) exports the views of one group of a stream in one call, e.g. one
    host-to-device transfer for all of them. It is used only for devices other than the CPU
    (``iter_dlpack(device="cuda")``...), called with the keywords the stream passes ``export``
    (``contiguous=`` and ``device_index=``), and must return one tensor per view, in order, each
    as ``export`` would (another count raises PluginError). Its results may share one device
    buffer: keeping one tile keeps the group's buffer. When it raises an Exception, that group
    is exported tile by tile with ``export``: its good tiles are yielded and an error raises at
    the tile that fails; a PluginWarning says so, once per exporter, when ``export`` works.

    ``host_memory`` (optional) allocates host memory this exporter copies from fastest (a GPU's pinned memory):
    ``host_memory(nbytes)`` returns a writable buffer of at least ``nbytes``, 64-byte aligned. A lazy view
    exported to this exporter reads its pixels into it (each output of 1 MiB or more; see
    ``ome_arrow_core/host_memory.py``), so ``export`` may find the view's array there and copy it as is.
    """

    devices: tuple[str, ...] = ("cpu",)
    modes: tuple[str, ...] = ()
    dtypes: tuple[str, ...] | None = None
    export: ExportView | None = None
    export_many: ExportViews | None = None
    host_memory: Callable[[int], Any] | None = None

    def handles(self, device: str, dtype: np.dtype, mode: str | None) -> bool:
        """True when this exporter serves ``device``, ``dtype`` and ``mode`` (None: any)."""
        return (
            device in self.devices
            and (self.dtypes is None or dtype.name in self.dtypes)
            and (mode is None or mode in self.modes or "*" in self.modes)
        )


class ChunkFile(Protocol):
    """An opened chunk fragment of a dataset: its row count, and ``pixel_bytes`` of given rows."""

    num_rows: int

    def take(self, rows: np.ndarray) -> pa.ChunkedArray:
        """``pixel_bytes`` (large_binary) of ``rows`` (strictly increasing int64), in that order."""
        ...


@frozen
class ChunkStore(Handler):
    """Stores a dataset's chunk rows in files ending in ``suffix`` (Parquet is built in).

    ``write(batches, schema, path, compression=...)`` writes record batches of ``schema``
    (the dataset's chunk schema) to ``path``, in order, one row per chunk;
    ``open(path)`` returns a :class:`ChunkFile` that reads ``pixel_bytes`` by row number.
    ``compressions`` lists the accepted ``compression`` values, the default first.
    ``max_file_bytes`` (None: no limit) starts a new file once one holds that many pixel
    bytes, for writers whose memory grows with the file.
    """

    suffix: str = ""
    compressions: tuple[str, ...] = ("none",)
    max_file_bytes: int | None = None
    write: WriteChunks | None = None
    open: OpenChunks | None = None

    def accepts(self, name: str) -> bool:
        """True when a fragment called ``name`` is one of this store's files."""
        return bool(self.suffix) and name.lower().endswith(self.suffix)
