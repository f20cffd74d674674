"""The length units of the physical sizes a bioio reader reports.

bioio documents ``physical_pixel_sizes`` in µm, but two of its readers report the file's numbers in the
file's own units: bioio-ome-tiff the OME-XML ``PhysicalSize{X,Y,Z}`` (250 for 250 nm), bioio-ome-zarr the
NGFF ``scale`` (in its axes' units). :func:`stated_units` reads those units back from the reader's own
metadata so that the sizes keep their meaning; for any other reader the sizes are µm, as bioio says.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["stated_units"]

#: NGFF (UDUNITS-2) length unit names -> OME symbols, for the units microscopy stores use.
_NGFF: Final[dict[str, str]] = {
    "angstrom": "Å",
    "picometer": "pm",
    "nanometer": "nm",
    "micrometer": "µm",
    "millimeter": "mm",
    "centimeter": "cm",
    "meter": "m",
}


def stated_units(reader: Any) -> dict[str, str | None]:
    """Unit symbol of X, Y and Z of the sizes ``reader`` (a bioio reader set to its scene) reports, for those
    not in µm; None for an NGFF axis that states no unit (its scale 1 is no size: the store gives none). Empty
    when the sizes are µm, or the reader's metadata does not say."""
    kind = type(reader).__module__.split(".")[0]
    try:
        if kind == "bioio_ome_tiff":
            pixels = reader.ome_metadata.images[reader.current_scene_index].pixels
            units = {ax: getattr(pixels, f"physical_size_{ax.lower()}_unit", None) for ax in "XYZ"}
            return {ax: str(u.value) for ax, u in units.items() if u is not None and u.value != "µm"}
        if kind == "bioio_ome_zarr":
            attrs = reader.metadata.attributes
            ngff: Any = attrs.get("ome", attrs) if isinstance(attrs, Mapping) else {}
            axes = ngff["multiscales"][0]["axes"]
            named = {str(a["name"]).upper(): a.get("unit") for a in axes if isinstance(a, Mapping)}
            return {
                ax: _NGFF.get(str(u), str(u)) if u else None
                for ax, u in named.items()
                if ax in "XYZ" and u != "micrometer"
            }
    except (AttributeError, IndexError, KeyError, TypeError):  # the reader's metadata does not say: bioio's µm
        return {}
    return {}
