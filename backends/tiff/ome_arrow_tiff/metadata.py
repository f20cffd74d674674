"""ImageMeta of a TIFF series: OME-XML when the file has it, else ImageJ and resolution tags.

- OME-TIFF: image name and ID, acquisition date, ``PhysicalSize{X,Y,Z}`` with units, and
  the channels. A channel with ``SamplesPerPixel`` > 1 (RGB) becomes one channel per
  sample, named ``"<name>:<k>"``. Channels that do not match size C are replaced by defaults.
- Other TIFFs: X/Y pixel sizes from ``XResolution``/``YResolution`` when ``ResolutionUnit``
  is centimetre, millimetre or micrometre (inch resolutions are print DPI and are ignored),
  and ImageJ's ``unit`` and Z ``spacing``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

from ome_arrow_core import Channel, ImageMeta

from .axes import AxisMap
from .omexml import LENGTH_UNITS_UM, OmeImage, parse_ome_xml

if TYPE_CHECKING:
    import tifffile

__all__ = ["image_meta"]

#: Micrometres per ResolutionUnit (TIFF tag 296): centimetre, millimetre, micrometre.
_RESUNIT_UM: Final[dict[int, float]] = {3: 1e4, 4: 1e3, 5: 1.0}
_IMAGEJ_UNITS: Final[dict[str, str]] = {"micron": "µm", "um": "µm", "\\u00B5m": "µm", "µm": "µm"}


def _channels(ome: OmeImage, size_c: int) -> tuple[Channel, ...]:
    if len(ome.channels) == size_c:
        return ome.channels
    if sum(ome.samples_per_channel) != size_c:
        return ()
    out: list[Channel] = []
    for ch, n in zip(ome.channels, ome.samples_per_channel, strict=True):
        if n == 1:
            out.append(ch)
            continue
        base = ch.name or ch.id
        out.extend(replace(ch, id=f"{ch.id}:{k}", name=f"{base}:{k}") for k in range(n))
    return tuple(out)


def _tag_physical(tif: tifffile.TiffFile, page: Any) -> tuple[dict[str, float], dict[str, str]]:
    sizes: dict[str, float] = {}
    units: dict[str, str] = {}
    ij = tif.imagej_metadata or {}
    ij_unit = _IMAGEJ_UNITS.get(str(ij.get("unit", "")), str(ij.get("unit", "")))
    if ij_unit not in LENGTH_UNITS_UM:
        ij_unit = ""
    if 282 in page.tags and 283 in page.tags:
        unit = page.resolutionunit
        xres, yres = page.resolution
        if unit in _RESUNIT_UM and xres > 0 and yres > 0:
            um = _RESUNIT_UM[unit]
            sizes.update(X=um / xres, Y=um / yres)
            units.update(X="µm", Y="µm")
        elif unit == 1 and ij_unit and xres > 0 and yres > 0:
            sizes.update(X=1 / xres, Y=1 / yres)
            units.update(X=ij_unit, Y=ij_unit)
    spacing = ij.get("spacing")
    if ij_unit and isinstance(spacing, (int, float)) and spacing > 0:
        sizes["Z"] = float(spacing)
        units["Z"] = ij_unit
    return sizes, units


def image_meta(
    tif: tifffile.TiffFile, series: Any, index: int, axes: AxisMap, filename: str
) -> ImageMeta:
    """Metadata of ``series`` (the ``index``-th of ``tif``) with canonical sizes from ``axes``."""
    kf = series.keyframe
    sizes = axes.sizes
    ome = parse_ome_xml(tif.ome_metadata, index) if tif.is_ome and tif.ome_metadata else None
    if ome is not None:
        phys, units = ome.physical_size, ome.physical_unit
    else:
        phys, units = _tag_physical(tif, kf)
    return ImageMeta(
        sizes=sizes,
        dtype=series.dtype,
        id=(ome.id if ome and ome.id else f"img-{index}"),
        name=(ome.name if ome and ome.name else filename),
        acquisition_datetime=ome.acquisition_datetime if ome else None,
        physical_size={"X": 1.0, "Y": 1.0, "Z": 1.0, **phys},
        physical_unit={"X": "µm", "Y": "µm", "Z": "µm", **units},
        channels=_channels(ome, sizes["C"]) if ome else (),
        chunk_shape=(1, kf.tilelength, kf.tilewidth) if kf.is_tiled else None,
    )
