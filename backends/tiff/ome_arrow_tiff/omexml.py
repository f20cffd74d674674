"""OME-XML: the metadata of one Image, read with xml.etree (no other dependency).

Only what :class:`ome_arrow_core.ImageMeta` holds is read: the image name, ID and
acquisition date, ``Pixels`` physical sizes with their units, and for each ``Channel``
its ID, Name, emission/excitation wavelengths (converted to µm), illumination type and
color. Namespaces are ignored, so every OME schema version parses the same way.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Final

from ome_arrow_core import Channel
from ome_arrow_core.plugin_api import SchemaError, physical_size_value

__all__ = ["OmeImage", "parse_ome_xml", "LENGTH_UNITS_UM"]

#: Micrometres per OME length unit (the units used for wavelengths).
LENGTH_UNITS_UM: Final[dict[str, float]] = {
    "pm": 1e-6,
    "Å": 1e-4,
    "nm": 1e-3,
    "µm": 1.0,
    "um": 1.0,
    "mm": 1e3,
    "cm": 1e4,
    "m": 1e6,
}


@dataclass(frozen=True)
class OmeImage:
    """What one OME ``Image`` says about its pixels (None or empty: not given)."""

    id: str | None = None
    name: str | None = None
    acquisition_datetime: str | None = None
    physical_size: dict[str, float | None] = field(default_factory=dict)
    physical_unit: dict[str, str] = field(default_factory=dict)
    channels: tuple[Channel, ...] = ()
    samples_per_channel: tuple[int, ...] = ()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(elem: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in elem if _local(e.tag) == name]


def _float(value: str | None) -> float | None:
    try:
        return None if value is None else float(value)
    except ValueError:
        return None


def _physical_size(pixels: ET.Element, ax: str, image: int) -> float | None:
    """``PhysicalSize<ax>`` of ``pixels``: None when absent; SchemaError naming it when not a positive number."""
    text = pixels.get(f"PhysicalSize{ax}")
    where = f"OME-XML Image {image} Pixels PhysicalSize{ax}"
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise SchemaError(f"{where} is {text!r}; a physical size is a positive number") from None
    return physical_size_value(value, where)


def _wavelength_um(elem: ET.Element, attr: str) -> float | None:
    value = _float(elem.get(attr))
    factor = LENGTH_UNITS_UM.get(elem.get(attr + "Unit", "nm"))
    return None if value is None or factor is None else value * factor


def _channel(elem: ET.Element, index: int) -> Channel:
    color = elem.get("Color")
    try:
        rgba = None if color is None else int(color) & 0xFFFFFFFF  # OME stores signed int32
    except ValueError:
        rgba = None
    return Channel(
        id=elem.get("ID") or f"ch-{index}",
        name=elem.get("Name") or "",
        emission_um=_wavelength_um(elem, "EmissionWavelength"),
        excitation_um=_wavelength_um(elem, "ExcitationWavelength"),
        illumination=elem.get("IlluminationType") or "Unknown",
        color_rgba=rgba,
    )


def parse_ome_xml(xml: str | bytes, image: int = 0) -> OmeImage | None:
    """Metadata of the ``image``-th Image of an OME-XML document; None if there is none.

    Malformed XML gives None too: the pixels are still readable without it. A ``PhysicalSize``
    that is present but not a positive finite number raises SchemaError naming it.
    """
    try:
        root = ET.fromstring(xml.encode("utf-8") if isinstance(xml, str) else xml)
    except (ET.ParseError, LookupError, ValueError):  # LookupError: a damaged encoding name
        return None
    images = _children(root, "Image")
    if not 0 <= image < len(images):
        return None
    img = images[image]
    pixels = next(iter(_children(img, "Pixels")), None)
    date = next(iter(_children(img, "AcquisitionDate")), None)
    sizes: dict[str, float | None] = {}
    units: dict[str, str] = {}
    channels: list[Channel] = []
    samples: list[int] = []
    if pixels is not None:
        for ax in "XYZ":
            value = _physical_size(pixels, ax, image)
            if value is not None:
                sizes[ax] = value
                units[ax] = pixels.get(f"PhysicalSize{ax}Unit", "µm")
        for i, ch in enumerate(_children(pixels, "Channel")):
            channels.append(_channel(ch, i))
            samples.append(int(_float(ch.get("SamplesPerPixel")) or 1))
    return OmeImage(
        id=img.get("ID"),
        name=img.get("Name"),
        acquisition_datetime=date.text.strip() if date is not None and date.text else None,
        physical_size=sizes,
        physical_unit=units,
        channels=tuple(channels),
        samples_per_channel=tuple(samples),
    )
