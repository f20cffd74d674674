"""In-memory objects (numpy, torch, jax, cupy, a plugin's own type) into an image's pixels and metadata."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from .buffers import read_only, to_arrow_memory
from .dtypes import check_dtype
from .errors import ArgumentError, LayoutError, OMEArrowError, PluginError
from .handlers import Ingested, Ingester
from .layout import AXES, normalize_axes, to_canonical
from .meta import Channel, ImageMeta
from .registry import Registry
from .sources import ArraySource

__all__ = ["ingest", "pair_pixels", "PAIR_ORDER"]


def ingest(obj: object, dim_order: str | None, registry: Registry, name: str | None, copy: bool = True) -> ArraySource:
    """Pixels of ``obj`` in Arrow memory (``copy=False``: a read-only view), with what its ingester knows."""
    ingester = registry.resolve_ingester(obj)
    ingester.ensure_available()
    out = ingester.to_numpy(obj)
    facts = out if isinstance(out, Ingested) else Ingested(out)
    arr = facts.array
    if not isinstance(arr, np.ndarray):
        raise OMEArrowError(f"ingester {ingester.name!r} returned {type(arr).__name__}, not ndarray")
    dtype = check_dtype(arr.dtype)
    canonical = to_canonical(arr.astype(dtype, copy=False), _dims(dim_order, facts, ingester))
    pixels = to_arrow_memory(canonical) if copy else read_only(canonical)
    meta = ImageMeta(
        sizes=dict(zip(AXES, pixels.shape)),
        dtype=dtype,
        name=name or facts.name or "image",
        channels=_channels(facts, pixels.shape[2], ingester),
    )
    if facts.physical_size:
        meta = replace(meta, physical_size={**meta.physical_size, **_sizes(facts.physical_size, ingester)})
    if facts.physical_unit:
        units = {ax.upper(): str(u) for ax, u in facts.physical_unit.items()}
        meta = replace(meta, physical_unit={**meta.physical_unit, **units})
    return ArraySource(meta, pixels, f"ingested {ingester.name}")


def _dims(dim_order: str | None, facts: Ingested, ingester: Ingester) -> str | None:
    """The caller's ``dim_order``, else the axes the object carries; both given must agree."""
    if facts.dims is None:
        return dim_order
    try:
        carried = normalize_axes(facts.dims, what=f"dims from ingester {ingester.name!r}")
    except LayoutError as exc:  # the plugin's fault, not the caller's
        raise PluginError(str(exc)) from exc
    if dim_order is not None and normalize_axes(dim_order, what="dim_order") != carried:
        raise ArgumentError(
            f"dim_order {dim_order!r} contradicts the axes the object carries ({carried!r}, "
            f"from ingester {ingester.name!r}); drop dim_order or pass {carried!r}"
        )
    return carried


def _channels(facts: Ingested, size_c: int, ingester: Ingester) -> tuple[Channel, ...]:
    if facts.channel_names is None:
        return ()
    names = [str(n) for n in facts.channel_names]
    if len(names) != size_c:
        raise PluginError(
            f"ingester {ingester.name!r} named {len(names)} channels ({names}) for an image of "
            f"{size_c}; it must give one name per channel"
        )
    return tuple(Channel(id=f"ch-{i}", name=n) for i, n in enumerate(names))


def _sizes(sizes: Mapping[str, float], ingester: Ingester) -> dict[str, float]:
    out = {}
    for ax, value in sizes.items():
        key = ax.upper()
        if key not in ("X", "Y", "Z"):
            raise PluginError(f"ingester {ingester.name!r} gave a physical size for axis {ax!r}; only X, Y, Z have one")
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not (math.isfinite(number) and number > 0):
            raise PluginError(
                f"ingester {ingester.name!r} gave physical size {key}={value!r}; it must be a "
                "finite number > 0 (leave the axis out when unknown)"
            )
        out[key] = number
    return out


#: The axis order of a 5-D array given with its metadata, unless ``dim_order`` names another.
PAIR_ORDER = "TCZYX"


def pair_pixels(meta: ImageMeta, pixels: object, dim_order: str | None = None) -> np.ndarray:
    """The pixels of an ``(ImageMeta, array)`` pair as a ``TZCYX`` view (no copy).

    The array is ``TCZYX`` (as ``OMEArrow(array)`` reads 5-D arrays and ``to_numpy()`` returns them)
    unless ``dim_order`` names its axes. Without ``dim_order`` an array shaped as ``meta`` in the
    ``TZCYX`` order (the order pairs had in ome-arrow-core 0.1) is refused, not transposed:
    ArgumentError saying what to pass.
    """
    arr = np.asarray(pixels)
    sizes = meta.sizes
    order = PAIR_ORDER if dim_order is None else normalize_axes(dim_order, what="dim_order")
    want = tuple(sizes[a] for a in order)
    if arr.shape != want:
        old = tuple(sizes[a] for a in AXES)
        hint = (
            "; it is shaped TZCYX, the order pairs had in ome-arrow-core 0.1: pass dim_order='TZCYX' "
            "(or transpose it to TCZYX)"
            if dim_order is None and arr.shape == old
            else ""
        )
        raise ArgumentError(
            f"the array of an (ImageMeta, array) pair has shape {tuple(arr.shape)}, but the metadata's sizes "
            f"in {order} order are {want}{hint}"
        )
    return to_canonical(arr, order)
