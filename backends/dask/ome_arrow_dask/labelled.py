"""``to_xarray``: dask arrays with named dimensions and the image's coordinates, as bioio gives them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ome_arrow_core import LazyTensorView, OMEArrow, OMEArrowDataset, SchemaError
from ome_arrow_core.plugin_api import ArgumentError, ArgumentTypeError

from .array import axes_of, to_dask
from .chunking import Chunking

if TYPE_CHECKING:
    import xarray as xr

    from ome_arrow_core import ImageMeta, Selection

__all__ = ["to_xarray", "axis_coords"]


def axis_coords(meta: ImageMeta, sel: Selection, layout: str) -> dict[str, Any]:
    """Coordinates of each axis of ``layout``: physical positions of Z, Y, X (index times the
    pixel size, units in ``attrs["units"]``; pixel indices when the size is unknown), channel
    names on C, time indices on T."""
    import xarray as xr

    coords: dict[str, Any] = {}
    for ax, dim in zip(axes_of(layout), layout):  # dims keep the layout's letters (H, W), sizes are Y's and X's
        idx = np.asarray(list(sel.axis(ax)), dtype=np.int64)
        size = meta.physical_size.get(ax)
        if ax == "C":
            names = [ch.name or ch.id for ch in meta.channels]
            coords[dim] = [names[i] for i in idx]
        elif size is not None:
            coords[dim] = xr.Variable(dim, idx * size, attrs={"units": meta.physical_unit.get(ax, "")})
        else:
            coords[dim] = idx
    return coords


def _column_coords(ds: OMEArrowDataset, dim: str, columns: Sequence[str] | None, axes: str = "") -> dict[str, Any]:
    """Metadata columns (default: ``image_id`` and the extra columns, but those named as one of ``axes``) as
    coordinates along ``dim``."""
    if isinstance(columns, str):  # else its letters were taken for column names
        raise ArgumentError(f"columns must be a list of column names, got the str {columns!r}: pass [{columns!r}]")
    names = (
        list(columns)
        if columns is not None
        else [n for n in ("image_id", *ds.extra_columns) if n in ds.column_names and n not in axes]
    )
    if clash := [n for n in names if n in axes]:  # the axis's own coordinate would be replaced by the column
        raise ArgumentError(f"columns {clash} are named as axes of the layout {axes!r}; they cannot be coordinates")
    missing = [n for n in names if n not in ds.column_names]
    if missing:
        raise ArgumentError(f"columns {missing} are not in the dataset; its columns: {ds.column_names}")
    out: dict[str, Any] = {}
    for name in names:
        col = ds.table.column(name)
        if pa.types.is_nested(col.type):
            if columns is not None:
                raise SchemaError(
                    f"column {name!r} holds {col.type}, not one value per image; it cannot be a coordinate"
                )
            continue
        out[name] = (dim, col.to_numpy(zero_copy_only=False))
    return out


def to_xarray(
    obj: Any,
    *,
    chunks: Chunking = "auto",
    images_per_chunk: int | None = None,
    image_dim: str = "image",
    columns: Sequence[str] | None = None,
    **view_options: Any,
) -> xr.DataArray:
    """A lazy ``xarray.DataArray`` (backed by :func:`to_dask`) of a dataset, its views, an image or a lazy view.

    Dimensions are named by the layout letters (``T``, ``C``, ``Z``, ``Y``, ``X``), after
    ``image_dim`` for a dataset. Z, Y and X carry physical positions (index x pixel size),
    C the channel names, T the time indices; a dataset's metadata ``columns`` (default:
    ``image_id`` and its extra columns, e.g. well, site, but
    any named as an axis of the layout) are coordinates along ``image_dim``.
    A dataset's pixel sizes and channel names are those of its first image.
    """
    import xarray as xr

    from ome_arrow_core.plugin_api import DatasetViews, view_meta

    if isinstance(obj, OMEArrowDataset):
        obj = obj.tensor_views(**view_options)
    elif view_options and not isinstance(obj, OMEArrow):
        raise ArgumentTypeError(
            f"view options {sorted(view_options)} apply to a dataset or an image, not a {type(obj).__name__}"
        )
    if isinstance(obj, DatasetViews):
        arr = to_dask(obj, chunks=chunks, images_per_chunk=images_per_chunk)
        first = obj[0]
        coords = axis_coords(view_meta(first), first.selection, first.layout)
        by_image = _column_coords(obj.dataset, image_dim, columns, first.layout)
        if not isinstance(image_dim, str) or image_dim in coords or image_dim in by_image:
            raise ArgumentError(
                f"image_dim={image_dim!r} must be a name of its own: not an axis of the layout {first.layout!r} "
                f"nor a column made a coordinate {sorted(by_image)}"
            )
        coords.update(by_image)
        coords[image_dim] = np.arange(len(obj))
        return xr.DataArray(arr, dims=(image_dim, *first.layout), coords=coords, name="pixels")
    if columns is not None:
        raise ArgumentTypeError("columns= applies to a dataset, not to one image")
    if isinstance(obj, OMEArrow):
        sizes = obj.sizes
        lazy = obj.slice_lazy(0, sizes["X"], 0, sizes["Y"])  # a lazy twin, so its view knows its selection
        view = lazy.tensor_view(**view_options)
    else:
        view = obj
    if not isinstance(view, LazyTensorView):
        raise ArgumentTypeError(
            f"to_xarray takes an OMEArrowDataset, ds.tensor_views(...), an OMEArrow or a LazyTensorView; "
            f"got {type(obj).__name__}"
        )
    meta = view_meta(view)
    arr = (
        to_dask(view, chunks=chunks) if not isinstance(obj, OMEArrow) else to_dask(lazy, chunks=chunks, **view_options)
    )
    return xr.DataArray(
        arr,
        dims=tuple(view.layout),
        coords=axis_coords(meta, view.selection, view.layout),
        name=meta.name,
        attrs={"image_id": meta.id},
    )
