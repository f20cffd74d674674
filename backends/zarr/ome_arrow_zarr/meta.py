"""ImageMeta from NGFF metadata: sizes, physical sizes and units of a level, channels.

Physical sizes are the chosen level's ``scale`` (times the multiscale's own scale) for the
axes mapped to X, Y and Z, with their NGFF units as OME symbols (``micrometer`` -> ``µm``).
An axis without a unit is taken as µm when its level-0 scale is not 1 (unless our writer kept a unit NGFF has no
name for, such as OME's ``pixel``, in its ``ome_arrow`` attributes); with neither a unit nor a scale other than 1
(what writers that know no calibration store) its size is None (unknown). Channel names and colours come from ``omero``. The
``ome_arrow`` attributes our writer adds (image id, channel ids, wavelengths, acquisition
date) are used when present and consistent; nothing else depends on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import PurePath
from typing import Any

import numpy as np

from ome_arrow_core import Channel, ImageMeta, SchemaError
from ome_arrow_core.plugin_api import DamagedFileError, channel_from_dict

from .axes import AxisMap
from .ngff import Level, Multiscale, channel_info, unit_symbol

__all__ = ["image_meta", "level_facts", "OURS"]

#: Attribute key of the metadata our writer keeps beside NGFF's.
OURS = "ome_arrow"


def _physical(
    ms: Multiscale, level: Level, axes: AxisMap, kept: Mapping[str, Any]
) -> tuple[dict[str, float | None], dict[str, str]]:
    """Physical sizes and units of ``level``; ``kept``: the units our writer kept for axes NGFF has no unit name for
    (used where the axis has no NGFF unit)."""
    size: dict[str, float | None] = {"X": None, "Y": None, "Z": None}
    unit: dict[str, str] = {"X": "µm", "Y": "µm", "Z": "µm"}
    for i, letter in enumerate(axes.targets):
        if letter in "XYZ":
            own = kept.get(letter)
            symbol = unit_symbol(ms.units[i]) or (own if isinstance(own, str) and own else None)
            if symbol is None and ms.levels[0].scale[i] == 1.0:
                continue  # no unit, no scale: uncalibrated
            size[letter] = level.scale[i]
            unit[letter] = symbol or "µm"
    return size, unit


def _channels(ngff: Mapping[str, Any], n: int) -> tuple[Channel, ...]:
    info = channel_info(ngff, n)
    ours = ngff.get(OURS, {}).get("channels") if isinstance(ngff.get(OURS), Mapping) else None
    if isinstance(ours, list) and len(ours) == n and all(isinstance(c, Mapping) for c in ours):
        out = []
        for i, (c, (label, rgba)) in enumerate(zip(ours, info, strict=True)):
            ch = channel_from_dict(c, i, f"{OURS}.channels")
            # the writer labels a channel without a name by its id (viewers want a label): that label is not a name
            kept = label == (ch.name or ch.id)
            out.append(replace(ch, name=ch.name if kept else (label or ch.name), color_rgba=rgba))
        return tuple(out)
    return tuple(Channel(id=f"ch-{i}", name=label or f"C{i}", color_rgba=rgba) for i, (label, rgba) in enumerate(info))


def image_meta(
    ms: Multiscale,
    ngff: Mapping[str, Any],
    axes: AxisMap,
    array: Any,
    level: int,
    dtype: np.dtype,
    path: PurePath,
    label: str | None,
) -> ImageMeta:
    """Metadata of ``array`` (level ``level`` of ``ms``) as ome-arrow-core sees it."""
    sizes = axes.sizes(array.shape)
    found = ngff.get(OURS)
    ours: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    kept = ours.get("physical_unit")
    size, unit = _physical(ms, ms.levels[level], axes, kept if isinstance(kept, Mapping) else {})
    stem = path.name.removesuffix(".zarr").removesuffix(".ome")
    name = str(ours.get("name") or ms.name or (label or stem))
    chunks = dict(zip(axes.targets, array.chunks, strict=True))
    chunk_shape = (int(chunks.get("Z", 1)), int(chunks["Y"]), int(chunks["X"]))
    when = ours.get("acquisition_datetime")
    try:
        channels = _channels(ngff, sizes["C"])
    except SchemaError as exc:
        raise DamagedFileError(f"{path}: {exc}") from None
    return ImageMeta(
        sizes=sizes,
        dtype=dtype,
        id=str(ours.get("id") or (f"label-{label}" if label else "img-0")),
        name=name,
        image_type="label" if label or "image-label" in ngff else "image",
        acquisition_datetime=when if isinstance(when, str) else None,
        physical_size=size,
        physical_unit=unit,
        channels=channels,
        chunk_shape=chunk_shape,
    )


def level_facts(level: Level, array: Any, axes: AxisMap) -> dict[str, Any]:
    """One row of ``info()["levels"]``: path, TZCYX shape, storage shape, scale per axis, chunks."""
    return {
        "path": level.path,
        "shape": axes.sizes(array.shape),
        "array_shape": list(array.shape),
        "scale": dict(zip(axes.targets, level.scale, strict=True)),
        "translation": dict(zip(axes.targets, level.translation, strict=True)) if level.translation else None,
        "chunks": list(array.chunks),
        "shards": list(array.shards) if array.shards else None,
    }
