"""``OMEArrow`` with the reference's constructor, properties and methods, on ome-arrow-core.

Differences from ome-arrow 0.1.0 (docs/migration.md lists them all): pixels are never cast
(``export(how="numpy")`` keeps the stored dtype unless ``dtype=`` is given), numpy arrays of
any rank 2-5 are read by rank (YX, ZYX, TCYX, TCZYX), and unknown keywords raise TypeError.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .. import OMEArrow as CoreImage
from ..errors import ArgumentError, OMEArrowError
from ..record import record_dict
from .export import (
    convert_pixels,
    to_numpy,
    to_ome_parquet,
    to_ome_tiff,
    to_ome_vortex,
    to_ome_zarr,
)
from .image_records import record_from_image
from .ingest import (
    from_jax_array,
    from_numpy,
    from_ome_parquet,
    from_ome_vortex,
    from_stack_pattern_path,
    from_tiff,
    from_torch_array,
    record_of,
)
from .patterns import is_pattern
from .records import record_array
from .sources import kind_of, scan_path
from .tensor import LazyTensorView, TensorView, ViewArgs, check_chunk_policy
from .utils import describe_sizes
from .vortex_records import is_record_vortex

__all__ = [
    "OMEArrow",
    "from_jax_array",
    "from_numpy",
    "from_tiff",
    "from_torch_array",
    "to_numpy",
    "to_ome_parquet",
]

_VIEW_MODES = ("matplotlib", "pyvista")


def _is_array(obj: Any) -> bool:
    if isinstance(obj, (str, os.PathLike, Mapping, pa.Scalar, pa.Array, pa.ChunkedArray, pa.Table)):
        return False
    return isinstance(obj, np.ndarray) or hasattr(obj, "__dlpack__") or hasattr(obj, "__array__")


class OMEArrow:
    """One image, as the reference's ``OMEArrow``: ``.data`` is its OME-Arrow record.

    ``data`` is a path (TIFF, OME-Zarr, Parquet record file or typed-chunk dataset, Vortex),
    a Bio-Formats stack pattern, a numpy / torch / JAX array (axes ``dim_order``, default by
    rank), a dict record or a StructScalar. ``tcz`` is the default plane of ``view()``;
    ``column_name`` / ``row_index`` pick the record of a Parquet or Vortex file;
    ``image_type`` overrides the record's; ``lazy=True`` (paths only) defers all reading.
    """

    def __init__(
        self,
        data: Any,
        tcz: Sequence[int] = (0, 0, 0),
        *,
        dim_order: str | None = None,
        column_name: str | None = "ome_arrow",
        row_index: int = 0,
        image_type: str | None = None,
        lazy: bool = False,
    ) -> None:
        self.tcz = tuple(int(v) for v in tcz)
        self._image_type = image_type
        self._column, self._row = column_name, int(row_index)
        self._data: pa.StructScalar | None = None
        self._image: CoreImage | None = None
        self._path: Path | None = None
        self._lazy_path: Path | None = None
        self._slices: list[tuple[int, int, int, int, Any, Any, Any]] = []
        array = _is_array(data)
        if dim_order is not None and not array:
            raise ArgumentError(
                "dim_order is supported only for numpy.ndarray, torch.Tensor or jax.Array input; "
                f"got {type(data).__name__}"
            )
        if lazy:
            if not isinstance(data, (str, os.PathLike)):
                raise TypeError(f"lazy=True currently supports only string (path) inputs, got {type(data).__name__}")
            if is_pattern(str(data)):
                raise TypeError(
                    "lazy=True does not support Bio-Formats pattern strings; use OMEArrow(pattern) (eager) instead"
                )
            self._lazy_path = Path(data)
            return
        if isinstance(data, (str, os.PathLike)):
            self._open(str(data))
        elif array:
            self._data = (
                from_numpy(np.asarray(data), dim_order=dim_order, image_type=image_type)
                if isinstance(data, np.ndarray)
                else self._from_tensor(data, dim_order)
            )
        elif isinstance(data, (Mapping, pa.StructScalar)):
            self._data = record_of(data, image_type)
        else:
            raise TypeError(
                "input data must be a path, dict, pyarrow.StructScalar, numpy.ndarray, torch.Tensor "
                f"or jax.Array; got {type(data).__module__}.{type(data).__qualname__}"
            )

    def _from_tensor(self, data: Any, dim_order: str | None) -> pa.StructScalar:
        kind = type(data).__module__.split(".")[0]
        convert = from_jax_array if kind in ("jax", "jaxlib") else from_torch_array
        return convert(data, dim_order=dim_order, image_type=self._image_type)

    def _open(self, text: str) -> None:
        if is_pattern(text) and not Path(text).exists():
            self._data = from_stack_pattern_path(text, image_type=self._image_type)
            return
        path = Path(text)
        if not path.exists():
            raise FileNotFoundError(f"No such file or directory: {text!r}")
        self._path = path
        kind = kind_of(path)
        if kind == "parquet" and path.is_file():
            self._data = record_of(
                from_ome_parquet(path, column_name=self._column, row_index=self._row), self._image_type
            )
        elif kind == "vortex" and is_record_vortex(path):
            self._data = record_of(
                from_ome_vortex(path, column_name=self._column, row_index=self._row), self._image_type
            )
        else:
            self._image = scan_path(path, self._column, self._row).collect()

    @classmethod
    def scan(
        cls,
        data: str | os.PathLike[str],
        *,
        column_name: str | None = "ome_arrow",
        row_index: int = 0,
        image_type: str | None = None,
    ) -> OMEArrow:
        """A lazy image of a path: nothing is read (not even checked) until it is used."""
        return cls(data, column_name=column_name, row_index=row_index, image_type=image_type, lazy=True)

    # -- state --------------------------------------------------------------------------
    @property
    def is_lazy(self) -> bool:
        """True while the source has not been read."""
        return self._lazy_path is not None

    def _open_lazy(self) -> CoreImage:
        assert self._lazy_path is not None
        image: CoreImage = scan_path(self._lazy_path, self._column, self._row)
        for x0, x1, y0, y1, t, c, z in self._slices:
            image = image.slice_lazy(x0, x1, y0, y1, t, c, z)
        return image

    def collect(self) -> OMEArrow:
        """Read a lazy source now (this object becomes eager); returns self."""
        if self._lazy_path is not None:
            self._path = self._lazy_path
            self._image = self._open_lazy().collect()
            self._lazy_path, self._slices, self._data = None, [], None
        return self

    def core_image(self) -> CoreImage:
        """The ome-arrow-core image behind this one (read now if lazy)."""
        self.collect()
        if self._image is None:
            assert self._data is not None
            self._image = CoreImage(record_array(self._data))
        return self._image

    @property
    def data(self) -> pa.StructScalar:
        """The OME-Arrow record (a StructScalar), built from the pixels when the source was a file."""
        self.collect()
        if self._data is None:
            assert self._image is not None
            self._data = record_from_image(self._image, self._path or Path("image"), image_type=self._image_type)
        return self._data

    @data.setter
    def data(self, value: pa.StructScalar) -> None:
        self._data, self._image = record_of(value), None

    # -- description --------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """``shape`` (T, C, Z, Y, X), ``type``, ``channels``, ``is_multichannel``, ``summary`` (reference keys);
        ``notes`` where the pixels were presented differently from how they are stored (samples per pixel)."""
        image = self._open_lazy() if self.is_lazy else self.core_image()
        s = image.sizes
        out = describe_sizes(s["T"], s["C"], s["Z"], s["Y"], s["X"])
        if image.meta.notes:
            out["notes"] = list(image.meta.notes)
        return out

    def __repr__(self) -> str:
        return f"OMEArrow({'lazy' if self.is_lazy else 'eager'}, {self.info()['summary']})"

    # -- slicing ------------------------------------------------------------------------
    def slice_lazy(
        self,
        x_min: int,
        x_max: int,
        y_min: int,
        y_max: int,
        t_indices: Any = None,
        c_indices: Any = None,
        z_indices: Any = None,
    ) -> OMEArrow:
        """A crop ``[y_min:y_max, x_min:x_max]`` (and t/c/z indices): lazy on a lazy image, else eager."""
        if not self.is_lazy:
            return self.slice(x_min, x_max, y_min, y_max, t_indices, c_indices, z_indices)
        out = OMEArrow.scan(
            self._lazy_path,  # type: ignore[arg-type]
            column_name=self._column,
            row_index=self._row,
            image_type=self._image_type,
        )
        out._slices = [*self._slices, (x_min, x_max, y_min, y_max, t_indices, c_indices, z_indices)]
        return out

    def slice(
        self,
        x_min: int,
        x_max: int,
        y_min: int,
        y_max: int,
        t_indices: Any = None,
        c_indices: Any = None,
        z_indices: Any = None,
        fill_missing: bool = True,
    ) -> OMEArrow:
        """An eager crop of this image (a new OMEArrow)."""
        del fill_missing
        cropped = self.core_image().slice(x_min, x_max, y_min, y_max, t_indices, c_indices, z_indices)
        pixels = np.asarray(cropped.to_numpy(layout="TCZYX"))
        return OMEArrow(pixels, dim_order="TCZYX", image_type=self._image_type)

    # -- views ----------------------------------------------------------------------------
    def tensor_view(
        self,
        *,
        scene: int | None = None,
        t: Any = None,
        z: Any = None,
        c: Any = None,
        roi: Any = None,
        roi3d: Any = None,
        roi_nd: Any = None,
        roi_type: Any = None,
        tile: Any = None,
        layout: str | None = None,
        dtype: Any = None,
        chunk_policy: str = "auto",
        channel_policy: str = "error",
    ) -> TensorView | LazyTensorView:
        """A view of a selection in a layout (lazy on a lazy image); see :class:`TensorView`."""
        if scene not in (None, 0):
            raise ArgumentError(f"scene={scene}: an OME-Arrow record holds one scene (0)")
        check_chunk_policy(chunk_policy)
        args = ViewArgs(t, z, c, roi, roi3d, roi_nd, roi_type, tile, layout, dtype, channel_policy)
        if self.is_lazy:
            return LazyTensorView(self._open_lazy, args)
        return TensorView.over(self.core_image(), args)

    def view(
        self,
        how: str = "matplotlib",
        tcz: Sequence[int] | None = None,
        autoscale: bool = True,
        vmin: float | None = None,
        vmax: float | None = None,
        cmap: str = "gray",
        show: bool = True,
        c: int | None = None,
        downsample: int = 1,
        opacity: str | float = "sigmoid",
        clim: tuple[float, float] | None = None,
        show_axes: bool = True,
        scaling_values: tuple[float, float, float] | None = None,
    ) -> Any:
        """Render a plane with matplotlib (returns (figure, axes, image)) or a volume with PyVista."""
        if how not in _VIEW_MODES:
            raise ArgumentError(f"Unsupported view mode {how!r}; expected one of {', '.join(_VIEW_MODES)}")
        from .view import view_matplotlib, view_pyvista

        if how == "matplotlib":
            plane = tuple(tcz) if tcz is not None else self.tcz
            return view_matplotlib(self.data, plane, autoscale, vmin, vmax, cmap, show)
        return view_pyvista(
            self.data,
            c=c if c is not None else self.tcz[1],
            downsample=downsample,
            scaling_values=scaling_values,
            opacity=opacity,
            clim=clim,
            show_axes=show_axes,
            show=show,
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """Jupyter: the core image's thumbnail and facts (docs/display.md); the error when it cannot be read."""
        try:
            image = self.core_image()
        except OMEArrowError as exc:
            return {"text/html": f"<pre>{html.escape(f'{type(exc).__name__}: {exc}')}</pre>"}
        return image._repr_mimebundle_(include, exclude)

    def _repr_html_(self) -> str:
        return str(self._repr_mimebundle_()["text/html"])

    # -- export ---------------------------------------------------------------------------
    def export(
        self,
        how: str = "numpy",
        dtype: Any = None,
        strict: bool = True,
        clamp: bool = False,
        *,
        out: str | os.PathLike[str] | None = None,
        parquet_column_name: str = "ome_arrow",
        parquet_compression: str | None = "zstd",
        parquet_metadata: dict[str, str] | None = None,
        vortex_column_name: str = "ome_arrow",
        vortex_metadata: dict[str, str] | None = None,
        **writer_options: Any,
    ) -> Any:
        """Export as "numpy" (TCZYX, stored dtype unless ``dtype``), "dict", "scalar", or write a file.

        Files: "ome-parquet"/"omeparquet"/"parquet" (a typed-chunk dataset directory),
        "ome-tiff"/"ometiff", "ome-zarr"/"omezarr" (needs the zarr backend), "vortex" (a
        single-struct-column file); each returns ``out``. ``writer_options`` go to the writer.
        """
        mode = how.lower().replace("_", "-")
        if mode == "numpy":
            pixels = np.asarray(self.core_image().to_numpy(layout="TCZYX"))
            del strict
            return convert_pixels(np.ascontiguousarray(pixels), dtype, clamp)
        if mode == "dict":
            return record_dict(self.data)  # with the stored OME-XML entry, when the record carries one
        if mode == "scalar":
            return self.data
        if out is None:
            raise ArgumentError(f"export(how={how!r}) writes a file: pass out='path'")
        if mode in ("ome-parquet", "omeparquet", "parquet"):
            from .dataset import write_ome_arrow_dataset

            del parquet_column_name, parquet_metadata
            write_ome_arrow_dataset([self], out, compression=parquet_compression)
        elif mode in ("ome-tiff", "ometiff", "tiff"):
            to_ome_tiff(self.data, out, dtype=dtype, clamp=clamp, **writer_options)
        elif mode in ("ome-zarr", "omezarr", "zarr"):
            to_ome_zarr(self.data, out, dtype=dtype, clamp=clamp, **writer_options)
        elif mode in ("vortex", "ome-vortex", "omevortex"):
            to_ome_vortex(self.data, out, column_name=vortex_column_name, file_metadata=vortex_metadata)
        else:
            raise ArgumentError(f"Unknown export method: {how!r}")
        return str(out)
