"""OMEArrow: one image, eager (pixels in memory) or lazy (a scanned file and a selection)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Final, cast

import numpy as np

from .arguments import named_options
from .casting import Casting
from .display.mixins import Thumbnailed
from .display.plots import Viewable
from .dlpack import CPU_DEVICE, DLPackTensor, caller_module
from .errors import ArgumentError, OMEArrowError
from .handlers import PixelSource, WriteRemoteImage, require
from .image_input import open_source
from .layout import ARRAY_AXES, AXES, ChannelPolicy, apply_layout
from .lazy import LazyTensorView, materialize, plan_checked, plan_kept
from .location import is_uri, resolve
from .meta import ImageMeta
from .registry import Registry, default_registry
from .selection import IndexSpec, RoiType, Selection
from .sources import ArraySource, described, in_memory
from .view import TensorView
from .view_spec import ViewSpec

__all__ = ["OMEArrow"]

#: export() formats that return the image in memory (no file).
_IN_MEMORY: Final = frozenset({"numpy", "dict", "scalar", "arrow"})


def _sub_meta(meta: ImageMeta, sel: Selection) -> ImageMeta:
    sizes = dict(zip(AXES, sel.shape))
    out = meta.select_channels(list(sel.c)) if tuple(sel.c) != tuple(range(meta.sizes["C"])) else meta
    whole = sel == Selection.full(meta.sizes)  # a crop or subset keeps none of the stored OME-XML
    return replace(out, sizes=sizes, channels=out.channels, ome_xml=out.ome_xml if whole else None)


class OMEArrow(Thumbnailed, Viewable):
    """An OME-Arrow image.

    ``OMEArrow(source)`` accepts a path (read by the plugin for its format), a list of paths, a
    glob or a file pattern (one image stacked from many files along ``dim_order``: see
    :mod:`ome_arrow_core.stacks`), a numpy array
    or any object an ingest plugin handles (``__dlpack__`` / ``__array__``), a pyarrow
    StructScalar / StructArray / Table, or a dict record. Arrays are read with
    ``dim_order`` (default by ndim: YX, ZYX, TCYX, TCZYX). Pixels keep their dtype.
    """

    def __init__(
        self,
        source: Any,
        dim_order: str | None = None,
        *,
        column: str | None = None,
        row: int = 0,
        format: str | None = None,
        registry: Registry | None = None,
        name: str | None = None,
        filesystem: Any = None,
        **options: Any,
    ) -> None:
        src = open_source(
            source,
            dim_order,
            registry or default_registry(),
            column=column,
            row=row,
            format=format,
            name=name,
            filesystem=filesystem,
            **options,
        )
        self._setup(in_memory(described(src)), None, False, registry)

    def _setup(self, source: PixelSource, sel: Selection | None, lazy: bool, registry: Registry | None) -> None:
        self._registry = registry
        self._source = described(source)
        self._sel = Selection.full(source.meta.sizes) if sel is None else sel
        self._lazy = lazy

    def __getstate__(self) -> dict[str, Any]:
        """What a pickle keeps: all, and the metadata the selection was planned on (see :func:`~.lazy.plan_kept`)."""
        return plan_kept(self.__dict__, self._source)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(plan_checked(state))

    @classmethod
    def from_source(
        cls,
        source: PixelSource,
        selection: Selection | None = None,
        *,
        lazy: bool = True,
        registry: Registry | None = None,
    ) -> OMEArrow:
        """An image over an opened pixel source (``selection``: the storage indices it covers; default all).

        Nothing is read: ``lazy=True`` (default) gives a scanned image whose views read on
        execution; ``lazy=False`` marks a source whose pixels are already in memory.
        """
        obj = cls.__new__(cls)
        obj._setup(source, selection, lazy, registry)
        return obj

    @classmethod
    def scan(
        cls,
        path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        column: str | None = None,
        row: int = 0,
        format: str | None = None,
        registry: Registry | None = None,
        filesystem: Any = None,
        **options: Any,
    ) -> OMEArrow:
        """Open ``path`` lazily: metadata only; pixels are read when a view is executed.

        ``path`` may be a URI (``s3://``, ``gs://``, ``http(s)://``, ``file://``) or a path inside
        ``filesystem`` (a pyarrow or fsspec filesystem). ``options`` go to the reader (e.g.
        ``image_id=`` for a multi-image dataset). A list of paths, a glob or a file pattern
        (with ``dim_order=``, ``stack_shape=``) opens the first file's metadata only.
        """
        src = open_source(
            path,
            options.pop("dim_order", None),  # a stack's axes (see above)
            registry or default_registry(),
            column=column,
            row=row,
            format=format,
            filesystem=filesystem,
            **options,
        )
        return cls.from_source(src, lazy=True, registry=registry)

    @classmethod
    def from_numpy(cls, arr: np.ndarray, dim_order: str | None = None, **kwargs: Any) -> OMEArrow:
        """Ingest a numpy array (same as ``OMEArrow(arr, dim_order)``)."""
        return cls(arr, dim_order, **kwargs)

    # -- description ----------------------------------------------------------------------
    @property
    def source(self) -> PixelSource:
        """The pixel source behind this image (a reader's source, or an in-memory array).

        Read-only access for inspection: readers expose I/O counters here (e.g. ``chunks_read``).
        """
        return self._source

    @property
    def selection(self) -> Selection:
        """The storage indices of :attr:`source` this image covers (all of them unless sliced)."""
        return self._sel

    def _shown(self) -> tuple[PixelSource, Selection]:
        return self._source, self._sel

    def _facts(self) -> dict[str, str]:
        from .display.html import image_facts  # a notebook's HTML: not loaded to read pixels

        return {**image_facts(self.meta), "lazy": str(self._lazy)}

    @property
    def is_lazy(self) -> bool:
        """True for a scanned image whose pixels have not been read."""
        return self._lazy

    @property
    def meta(self) -> ImageMeta:
        """Metadata of this image (of the current selection, for a sliced one)."""
        return _sub_meta(self._source.meta, self._sel)

    @property
    def sizes(self) -> dict[str, int]:
        """Length of each of T, Z, C, Y, X."""
        return dict(zip(AXES, self._sel.shape))

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        """Shape in ``TCZYX`` order: the shape of :meth:`to_numpy` (``meta.shape`` is the storage order TZCYX)."""
        n_t, n_z, n_c, n_y, n_x = self._sel.shape
        return n_t, n_c, n_z, n_y, n_x

    @property
    def dtype(self) -> np.dtype:
        """Pixel dtype (exactly as stored)."""
        return self._source.meta.dtype

    @property
    def ome_metadata(self) -> Any:
        """This image's metadata as an ``ome_types.OME`` object (needs ome-types: ``ome-arrow-core[ome-types]``).

        The OME-XML the source stored (an OME-TIFF's), parsed, for a whole image; otherwise
        built from :attr:`meta` (sizes, type, known physical sizes, channels).
        """
        from .ome_model import ome_model

        meta = self.meta
        whole = self._sel == Selection.full(self._source.meta.sizes)
        return ome_model(meta, meta.ome_xml if whole else None, where=str(self.info().get("file") or meta.name))

    def info(self) -> dict[str, Any]:
        """A summary: shape per axis, dtype, physical sizes, channels, storage."""
        out = self.meta.to_dict()
        out["lazy"] = self._lazy
        out.update(self._source.describe())
        return out

    def __repr__(self) -> str:
        kind = "lazy" if self._lazy else "eager"
        return f"OMEArrow({kind}, shape={self.sizes}, dtype={self.dtype})"

    # -- slicing --------------------------------------------------------------------------
    def slice_lazy(
        self,
        x_min: int,
        x_max: int,
        y_min: int,
        y_max: int,
        t_indices: IndexSpec = None,
        c_indices: IndexSpec = None,
        z_indices: IndexSpec = None,
    ) -> OMEArrow:
        """A lazy crop ``[y_min:y_max, x_min:x_max]`` (and t/c/z indices) of this image.

        Coordinates are relative to this image, so chained calls compose.
        """
        sel = self._sel.select(
            t=t_indices,
            c=c_indices,
            z=z_indices,
            y=range(y_min, y_max),
            x=range(x_min, x_max),
        )
        return OMEArrow.from_source(self._source, sel, lazy=True, registry=self._registry)

    def slice(self, *args: Any, **kwargs: Any) -> OMEArrow:
        """An eager crop (``slice_lazy(...).collect()``)."""
        return self.slice_lazy(*args, **kwargs).collect()

    def collect(self) -> OMEArrow:
        """Read the current selection into memory; an eager image is returned as is."""
        if not self._lazy:
            return self
        pixels = self._source.read(self._sel)
        meta = self.meta
        return OMEArrow.from_source(ArraySource(meta, pixels, "collected"), lazy=False, registry=self._registry)

    def to_numpy(self, layout: str | None = None) -> np.ndarray:
        """All pixels of this image as a read-only numpy array: ``TCZYX`` (the order ``OMEArrow(array)``
        reads), or in ``layout`` when given (``layout="TZCYX"``: the storage order); a view, no copy."""
        eager = self.collect()
        pixels = eager._source.read(eager._sel)
        return apply_layout(pixels, ARRAY_AXES if layout is None else layout)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """All pixels, TCZYX, as :meth:`to_numpy` gives them: ``np.asarray(img)``, ``torch.as_tensor(img)``."""
        pixels = self.to_numpy()
        if dtype is not None and np.dtype(dtype) != pixels.dtype:
            if copy is False:
                raise ValueError(f"np.asarray(img, dtype={np.dtype(dtype)}, copy=False): the pixels are {pixels.dtype}")
            return pixels.astype(dtype)
        return pixels.copy() if copy else pixels

    def __dlpack__(self, **kwargs: Any) -> Any:
        """All pixels, TCZYX, through DLPack (``np.from_dlpack(img)``, ``torch.as_tensor(img)``)."""
        return DLPackTensor(self.to_numpy()).capsule(caller_module(), **kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return CPU_DEVICE

    # -- views ----------------------------------------------------------------------------
    def tensor_view(
        self,
        t: IndexSpec = None,
        z: IndexSpec = None,
        c: IndexSpec = None,
        *,
        roi: Sequence[int] | None = None,
        roi3d: Sequence[int] | None = None,
        roi_nd: Sequence[int] | None = None,
        roi_type: RoiType | None = None,
        tile: Sequence[int] | None = None,
        layout: str | None = None,
        dtype: Any = None,
        channel_policy: ChannelPolicy = "error",
        casting: Casting = "checked",
        spec: ViewSpec | None = None,
    ) -> TensorView | LazyTensorView:
        """A view of a selection in a layout (a LazyTensorView on a scanned image).

        ``t``, ``z`` and ``c`` take an int, a slice or a sequence; ``roi=(x, y, w, h)``,
        ``roi3d=(x, y, z, w, h, d)``, ``roi_nd`` with ``roi_type`` and ``tile=(ty, tx)``
        crop. The default layout is CYX for one T and one Z, else TCZYX. ``dtype`` casts
        explicitly (a copy); without it the stored dtype is kept. ``casting="checked"``
        (default) refuses values the new dtype cannot hold (DTypeError); ``"unsafe"``
        converts as numpy does. ``spec=`` gives all of these at once as a :class:`ViewSpec`.
        """
        if spec is None:  # (positional: the keywords' dict built once less, on every view)
            return self.view_of(
                ViewSpec(t, z, c, roi, roi3d, roi_nd, roi_type, tile, layout, dtype, channel_policy, casting)
            )
        view = ViewSpec.of(
            spec,
            t=t,
            z=z,
            c=c,
            roi=roi,
            roi3d=roi3d,
            roi_nd=roi_nd,
            roi_type=roi_type,
            tile=tile,
            layout=layout,
            dtype=dtype,
            channel_policy=channel_policy,
            casting=casting,
        )
        return self.view_of(view)

    def view_of(self, spec: ViewSpec) -> TensorView | LazyTensorView:
        """The view ``spec`` describes (what :meth:`tensor_view` returns for its keywords)."""
        sel = spec.selection(self._sel, self._source.meta)
        out_layout = spec.layout_for(sel)
        if self._lazy:
            return LazyTensorView(
                self._source,
                sel,
                out_layout,
                dtype=spec.cast,
                channel_policy=spec.channel_policy,
                registry=self._registry,
                casting=spec.casting,
            )
        return materialize(self._source, sel, out_layout, spec.cast, spec.channel_policy, self._registry, spec.casting)

    # -- export ---------------------------------------------------------------------------
    def export(self, how: str | None = None, out: str | os.PathLike[str] | None = None, **options: Any) -> Any:
        """Export as ``"numpy"`` (TCZYX array; ``layout=`` names another order), ``"dict"``, ``"scalar"``, ``"arrow"`` or to a file.

        File formats (``"parquet"``, ``"vortex"``, ``"ome-tiff"``...) are written by writer
        plugins to ``out`` atomically. Every dtype is kept. Without ``how``: ``"numpy"``, or with ``out`` the format
        its suffix names (``export(out="cells.ome.tiff")``).
        """
        registry = self._registry or default_registry()
        if how is None and out is None:
            how = "numpy"
        elif how is None and out is not None:
            how = registry.output_format(out)
            if how is None:
                suffixes = sorted({s for w in registry.writers() for s in w.suffixes})
                raise ArgumentError(
                    f"export(out={os.fspath(out)!r}): its name does not say which format to write; pass how= "
                    f"('parquet', 'ome-tiff', 'ome-zarr', 'vortex'...) or end it in one of {', '.join(suffixes)}"
                )
        if not isinstance(how, str):
            raise ArgumentError(f"export(how=...) takes a format name such as 'numpy' or 'parquet', got {how!r}")
        how = how.lower()
        if how in _IN_MEMORY and out is not None:
            raise ArgumentError(
                f"export(how={how!r}) returns the image and writes no file, so out={os.fspath(out)!r} would be "
                "ignored; to write a file pass its format (how='ome-tiff', 'parquet'...) or leave how out: the "
                "format then follows out's suffix"
            )
        if how == "numpy":
            return self.to_numpy(**options)
        if how in ("dict", "scalar", "arrow"):
            pixels = self.to_numpy(layout=AXES)
            from .record import export_record

            return export_record(self.meta, pixels, how, **options)
        if out is None:
            raise OMEArrowError(f"export(how={how!r}) writes a file: pass out='path'")
        writer = registry.resolve_writer(how)
        writer.ensure_available()
        write = require(writer, writer.write, "write")
        filesystem = options.pop("filesystem", None)
        hint = "check its name (docs/formats.md, Writing, lists each writer's options) or leave it out"
        with named_options(options, f"export(how={how!r}): the {writer.name!r} writer", hint):
            if filesystem is None and not is_uri(out):
                return write(self, Path(out), **options)
            loc = resolve(out, filesystem)
            if loc.local:
                return write(self, Path(loc.path), **options)
            if not writer.remote:
                raise ArgumentError(
                    f"{loc.uri}: the {writer.name!r} writer writes local files only; write locally, then copy"
                )
            write_remote = cast(WriteRemoteImage, write)  # remote=True: write takes a Location too
            return write_remote(self, loc, **options)
