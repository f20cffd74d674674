"""OME-NGFF image metadata (``multiscales``, ``omero``), parsed and checked without zarr.

Versions 0.1 to 0.4 keep the metadata in the group attributes (Zarr v2 ``.zattrs``); 0.5
keeps it under ``attributes["ome"]`` of the Zarr v3 ``zarr.json``. Everything a reader needs
is turned into a :class:`Multiscale`; anything that contradicts the specification raises
:class:`~ome_arrow_core.plugin_api.DamagedFileError` (or ``FormatVersionError`` for a version
this reader does not know), naming the store.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ome_arrow_core.plugin_api import DamagedFileError, FormatVersionError

__all__ = [
    "VERSIONS",
    "Level",
    "Multiscale",
    "ome_attrs",
    "parse_multiscale",
    "unit_symbol",
    "unit_name",
    "channel_info",
]

#: NGFF versions this reader understands.
VERSIONS: Final[tuple[str, ...]] = ("0.1", "0.2", "0.3", "0.4", "0.5")
#: UDUNITS-2 length names (as NGFF writes them) and their OME symbols.
_UNITS: Final[dict[str, str]] = {
    "angstrom": "Å",
    "attometer": "am",
    "centimeter": "cm",
    "decimeter": "dm",
    "exameter": "Em",
    "femtometer": "fm",
    "foot": "ft",
    "gigameter": "Gm",
    "hectometer": "hm",
    "inch": "in",
    "kilometer": "km",
    "megameter": "Mm",
    "meter": "m",
    "micrometer": "µm",
    "mile": "mi.",
    "millimeter": "mm",
    "nanometer": "nm",
    "parsec": "pc",
    "petameter": "Pm",
    "picometer": "pm",
    "terameter": "Tm",
    "yard": "yd",
    "yoctometer": "ym",
    "yottameter": "Ym",
    "zeptometer": "zm",
    "zettameter": "Zm",
}
_SYMBOLS: Final[dict[str, str]] = {**{v: k for k, v in _UNITS.items()}, "um": "micrometer", "μm": "micrometer"}
_IMPLIED_AXES: Final[tuple[str, ...]] = ("t", "c", "z", "y", "x")


def unit_symbol(name: str | None) -> str | None:
    """The OME symbol of an NGFF length unit (``micrometer`` -> ``µm``); other names as given."""
    if name is None:
        return None
    return _UNITS.get(name, name)


def unit_name(symbol: str | None) -> str | None:
    """The NGFF (UDUNITS-2) name of an OME length symbol, None when NGFF has no name for it."""
    if symbol is None:
        return None
    return _SYMBOLS.get(symbol, symbol if symbol in _UNITS else None)


@dataclass(frozen=True)
class Level:
    """One resolution level: the array's path in the group and its per-axis scale."""

    path: str
    scale: tuple[float, ...]
    translation: tuple[float, ...] | None


@dataclass(frozen=True)
class Multiscale:
    """One ``multiscales`` entry: NGFF version, axis names, types and units, and the levels."""

    version: str
    name: str
    axes: tuple[str, ...]
    types: tuple[str | None, ...]
    units: tuple[str | None, ...]
    levels: tuple[Level, ...]
    downscaling: str | None


def _damaged(where: str, text: str) -> DamagedFileError:
    return DamagedFileError(f"{where}: {text}; the store's OME-NGFF metadata is damaged or not valid NGFF")


def ome_attrs(attrs: Mapping[str, Any], zarr_format: int, where: str) -> tuple[str | None, Mapping[str, Any]]:
    """The NGFF version (None when not declared) and the attributes holding NGFF keys.

    Zarr v3 groups keep them under ``"ome"`` (NGFF 0.5); Zarr v2 groups at the top level.
    """
    if zarr_format == 3 and "ome" in attrs:
        ome = attrs["ome"]
        if not isinstance(ome, Mapping):
            raise _damaged(where, f'attributes["ome"] is a {type(ome).__name__}, expected an object')
        version = ome.get("version", "0.5")  # ome-zarr-py 0.17 writes a labels group without one
        if not isinstance(version, str):
            raise _damaged(where, f'attributes["ome"]["version"] is {version!r}, expected a string such as "0.5"')
        if version not in ("0.5",) and not version.startswith("0.5"):
            raise FormatVersionError(
                f"{where}: OME-NGFF version {version!r} is not supported on Zarr v3; this reader knows 0.5 "
                f"(Zarr v3) and {', '.join(VERSIONS[:-1])} (Zarr v2)"
            )
        return "0.5", ome
    return None, attrs


def _check_version(version: Any, where: str, declared: str | None) -> str:
    if declared is not None:
        return declared
    if version is None:
        return "0.4"
    if not isinstance(version, str) or version not in VERSIONS[:-1]:
        hint = " (0.5 needs Zarr v3)" if version == "0.5" else ""
        raise FormatVersionError(
            f"{where}: OME-NGFF version {version!r} is not supported{hint}; this reader knows "
            f"{', '.join(VERSIONS[:-1])} (Zarr v2) and 0.5 (Zarr v3)"
        )
    return version


def _axes(
    entry: Mapping[str, Any], version: str, ndim_hint: int | None, where: str
) -> tuple[tuple[str, ...], tuple[str | None, ...], tuple[str | None, ...]]:
    raw = entry.get("axes")
    if raw is None:
        if version not in ("0.1", "0.2"):
            raise _damaged(where, f"multiscales[].axes is missing (required since NGFF 0.3, this is {version})")
        implied = _IMPLIED_AXES[5 - (ndim_hint or 5) :]
        return implied, tuple(None for _ in implied), tuple(None for _ in implied)
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        raise _damaged(where, f"multiscales[].axes is {raw!r}, expected a non-empty list")
    names: list[str] = []
    types: list[str | None] = []
    units: list[str | None] = []
    for ax in raw:
        if isinstance(ax, str):
            name, typ, unit = ax, None, None
        elif isinstance(ax, Mapping) and isinstance(ax.get("name"), str):
            name, typ, unit = ax["name"], ax.get("type"), ax.get("unit")
        else:
            raise _damaged(where, f"multiscales[].axes holds {ax!r}, expected an object with a name")
        if (typ is not None and not isinstance(typ, str)) or (unit is not None and not isinstance(unit, str)):
            raise _damaged(where, f"axis {name!r} has type {typ!r} and unit {unit!r}, expected strings")
        names.append(name)
        types.append(typ)
        units.append(unit)
    if len(set(names)) != len(names):
        raise _damaged(where, f"multiscales[].axes names {names} repeat a name")
    return tuple(names), tuple(types), tuple(units)


def _scale(transforms: Any, ndim: int, where: str, what: str) -> tuple[tuple[float, ...], tuple[float, ...] | None]:
    """The ``scale`` and ``translation`` of a ``coordinateTransformations`` list (ones when absent)."""
    scale: tuple[float, ...] = (1.0,) * ndim
    shift: tuple[float, ...] | None = None
    if transforms is None:
        return scale, shift
    if not isinstance(transforms, Sequence) or isinstance(transforms, str):
        raise _damaged(where, f"{what}.coordinateTransformations is {transforms!r}, expected a list")
    for tr in transforms:
        if not isinstance(tr, Mapping):
            raise _damaged(where, f"{what}.coordinateTransformations holds {tr!r}, expected objects")
        kind = tr.get("type")
        if kind not in ("scale", "translation", "identity"):
            raise _damaged(
                where,
                f"{what}.coordinateTransformations has type {kind!r}; NGFF allows scale, translation and identity here",
            )
        if kind == "identity":
            continue
        if "path" in tr and kind not in tr:
            raise _damaged(
                where,
                f"{what}: a {kind} transformation stored in a file ({tr['path']!r}) is not read "
                "by this reader; inline its values",
            )
        vals = tr.get(kind)
        if (
            not isinstance(vals, Sequence)
            or isinstance(vals, str)
            or len(vals) != ndim
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in vals)
        ):
            raise _damaged(where, f"{what} {kind} is {vals!r}, expected {ndim} finite numbers (one per axis)")
        if kind == "scale":
            if any(v <= 0 for v in vals):
                raise _damaged(where, f"{what} scale {list(vals)} holds a value <= 0")
            scale = tuple(float(v) for v in vals)
        else:
            shift = tuple(float(v) for v in vals)
    return scale, shift


def parse_multiscale(
    attrs: Mapping[str, Any], declared: str | None, index: int, where: str, ndim_hint: int | None = None
) -> Multiscale:
    """Multiscale ``index`` of NGFF attributes ``attrs`` (``declared``: version given outside the entry)."""
    ms = attrs.get("multiscales")
    if not isinstance(ms, Sequence) or isinstance(ms, str) or not ms:
        raise _damaged(where, f"multiscales is {ms!r}, expected a non-empty list")
    if not 0 <= index < len(ms):
        from ome_arrow_core import SelectionError

        raise SelectionError(
            f"row={index} is out of range: {where} holds {len(ms)} multiscale images; valid rows are 0..{len(ms) - 1}"
        )
    entry = ms[index]
    if not isinstance(entry, Mapping):
        raise _damaged(where, f"multiscales[{index}] is {entry!r}, expected an object")
    version = _check_version(entry.get("version"), where, declared)
    names, types, units = _axes(entry, version, ndim_hint, where)
    ndim = len(names)
    datasets = entry.get("datasets")
    if not isinstance(datasets, Sequence) or isinstance(datasets, str) or not datasets:
        raise _damaged(where, f"multiscales[{index}].datasets is {datasets!r}, expected a non-empty list")
    outer, _ = _scale(entry.get("coordinateTransformations"), ndim, where, f"multiscales[{index}]")
    levels = []
    for k, ds in enumerate(datasets):
        if not isinstance(ds, Mapping) or not isinstance(ds.get("path"), str) or not ds["path"]:
            raise _damaged(where, f"multiscales[{index}].datasets[{k}] is {ds!r}, expected an object with a path")
        path = ds["path"].strip("/")
        if any(p in ("", ".", "..") for p in path.split("/")):
            raise _damaged(where, f"datasets[{k}].path {ds['path']!r} leaves the image group")
        scale, shift = _scale(ds.get("coordinateTransformations"), ndim, where, f"datasets[{k}]")
        levels.append(Level(path, tuple(a * b for a, b in zip(scale, outer, strict=True)), shift))
    name = entry.get("name")
    kind = entry.get("type")
    return Multiscale(
        version,
        name if isinstance(name, str) else "",
        names,
        types,
        units,
        tuple(levels),
        kind if isinstance(kind, str) else None,
    )


def channel_info(attrs: Mapping[str, Any], n: int) -> list[tuple[str, int | None]]:
    """(label, RGBA colour) of ``n`` channels from ``omero`` ("" and None where it says nothing)."""
    chans = attrs.get("omero", {}).get("channels") if isinstance(attrs.get("omero"), Mapping) else None
    if not isinstance(chans, Sequence) or isinstance(chans, str) or len(chans) != n:
        return [("", None)] * n
    out: list[tuple[str, int | None]] = []
    for ch in chans:
        ch = ch if isinstance(ch, Mapping) else {}
        label = ch.get("label")
        color = ch.get("color")
        rgba: int | None = None
        if isinstance(color, str) and len(color) == 6:
            try:
                rgba = (int(color, 16) << 8) | 0xFF
            except ValueError:
                rgba = None
        out.append((label if isinstance(label, str) else "", rgba))
    return out
