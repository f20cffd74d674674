"""napari layer data (``(data, kwargs, "image")``) for an image, its pyramid levels, or a dataset.

- Axes: T, Z and C where longer than 1, then Y and X; C becomes ``channel_axis`` (one layer a
  channel, named after it, coloured with its stored OME colour, else the core's defaults).
- ``scale``: the physical size of Z, Y and X (1 for T and where a size is unknown); left out
  (napari's default) when no size is known.
- Pyramid levels (``info()["levels"]`` of OME-TIFF and OME-Zarr) become one multiscale layer.
- A dataset of equal images (same sizes and dtype) is one layer with the images stacked on a
  first axis; other datasets give one layer per image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ome_arrow_core import ImageMeta, OMEArrow, OMEArrowDataset
from ome_arrow_core.plugin_api import channel_colors

from .arrays import ImageArray, StackArray

__all__ = ["LayerData", "image_layer", "dataset_layers", "colormap_name", "scale_of"]

LayerData = tuple[Any, dict[str, Any], str]
_NAMED = {
    (1, 0, 0): "red",
    (0, 1, 0): "green",
    (0, 0, 1): "blue",
    (1, 0, 1): "magenta",
    (0, 1, 1): "cyan",
    (1, 1, 0): "yellow",
    (1, 1, 1): "gray",
}


def colormap_name(rgb: np.ndarray) -> str:
    """A napari colormap for a channel colour: a named one where it is pure, else ``#rrggbb`` (black to it)."""
    r, g, b = (round(float(v) * 255) for v in rgb)
    named = _NAMED.get((r // 255, g // 255, b // 255)) if {r, g, b} <= {0, 255} else None
    return named or f"#{r:02x}{g:02x}{b:02x}"


def scale_of(meta: ImageMeta, axes: str) -> list[float] | None:
    """napari ``scale`` of ``axes`` without C (see the module docs); None when no physical size is known."""
    sizes: dict[str, float | None] = {"T": None, **{a: meta.physical_size.get(a) for a in "ZYX"}}
    spatial = [a for a in axes if a in "ZYX"]
    if all(sizes[a] is None for a in spatial):
        return None
    return [float(sizes[a] or 1.0) for a in axes if a != "C"]


def _channel_kwargs(meta: ImageMeta, axes: str, title: str) -> dict[str, Any]:
    colors = [colormap_name(rgb) for rgb in channel_colors(meta.channels)]
    if "C" not in axes:
        return {"name": title, "colormap": colors[0]}
    return {
        "channel_axis": axes.index("C"),
        "colormap": colors,
        "blending": "additive",
        "name": [f"{title} {c.name or c.id}" for c in meta.channels],
    }


def image_layer(image: OMEArrow, levels: Sequence[OMEArrow] = (), *, title: str, source: str) -> LayerData:
    """One image (and its lower-resolution ``levels``) as layer data; reads no pixels."""
    base = ImageArray(image)
    data: Any = [base, *(ImageArray(level, base.axes) for level in levels)] if levels else base
    meta = image.meta
    kwargs: dict[str, Any] = _channel_kwargs(meta, base.axes, title)
    scale = scale_of(meta, base.axes)
    if scale is not None:
        kwargs["scale"] = scale
    if levels:
        kwargs["multiscale"] = True
    kwargs["metadata"] = {
        "ome_arrow": {"source": source, "id": meta.id, "axes": base.axes, "physical_unit": dict(meta.physical_unit)}
    }
    return (data, kwargs, "image")


def _shapes(ds: OMEArrowDataset) -> list[tuple[tuple[int, ...], str]]:
    """(TZCYX shape, dtype) of every image: from the table where it has them, else from each image."""
    table = ds.table
    cols = [f"size_{a}" for a in "tzcyx"]
    if set(cols) | {"dtype"} <= set(table.column_names):
        sizes = [table.column(c).to_pylist() for c in cols]
        dtypes = table.column("dtype").to_pylist()
        return [(tuple(int(s[i]) for s in sizes), str(dtypes[i])) for i in range(len(ds))]
    return [(tuple(im.meta.shape), im.dtype.name) for im in ds]


def dataset_layers(ds: OMEArrowDataset, *, title: str, source: str) -> list[LayerData]:
    """A dataset's images as one stacked layer (equal images) or one layer each; reads no pixels."""
    shapes = _shapes(ds)
    first = ds[0]
    if len(set(shapes)) > 1:
        return [image_layer(ds[i], title=str(ds[i].meta.id), source=source) for i in range(len(ds))]
    probe = ImageArray(first)
    stack = StackArray(ds, probe.axes, probe.shape, probe.dtype)
    meta = first.meta
    kwargs = _channel_kwargs(meta, probe.axes, title)
    if "channel_axis" in kwargs:
        kwargs["channel_axis"] += 1
    scale = scale_of(meta, probe.axes)
    if scale is not None:
        kwargs["scale"] = [1.0, *scale]
    kwargs["metadata"] = {
        "ome_arrow": {
            "source": source,
            "axes": "N" + probe.axes,
            "images": len(ds),
            "image_ids": [
                str(v) for v in (ds.table.column("image_id").to_pylist() if "image_id" in ds.column_names else [])
            ],
        }
    }
    return [(stack, kwargs, "image")]
