"""``OMEArrow.ome_metadata``: the image's metadata as an ``ome_types.OME`` object (needs ome-types).

The OME-XML a source stored (an OME-TIFF's) is parsed as it is; otherwise the object is built
from what :class:`~.meta.ImageMeta` holds: one Image (name, acquisition date), its Pixels
(sizes, type, known physical sizes with units) and Channels (name, colour, wavelengths in nm,
illumination). ome-types is imported here, on first use.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from .dtypes import to_ome_type
from .errors import BackendUnavailableError, DamagedFileError
from .meta import Channel, ImageMeta

if TYPE_CHECKING:
    import ome_types

__all__ = ["ome_model"]

_INSTALL = 'pip install "ome-arrow-core[ome-types]" (or pip install ome-types)'


def _ome_types() -> Any:
    try:
        import ome_types
    except ImportError as exc:
        raise BackendUnavailableError(
            f"ome_metadata needs the ome-types package ({exc}); install it with: {_INSTALL}"
        ) from exc
    return ome_types


def _channel(ch: Channel, index: int, model: Any) -> Any:
    fields: dict[str, Any] = {"id": f"Channel:0:{index}", "name": ch.name or ch.id, "samples_per_pixel": 1}
    if ch.color_rgba is not None:
        fields["color"] = model.Color(ch.color_rgba - (1 << 32) if ch.color_rgba >= 1 << 31 else ch.color_rgba)
    if ch.emission_um is not None and ch.emission_um > 0:  # OME's are positive; ome-arrow 0.1.0 says 0.0 for unknown
        fields["emission_wavelength"] = ch.emission_um * 1000
    if ch.excitation_um is not None and ch.excitation_um > 0:
        fields["excitation_wavelength"] = ch.excitation_um * 1000
    if ch.illumination in {v.value for v in model.Channel_IlluminationType}:
        fields["illumination_type"] = ch.illumination
    return model.Channel(**fields)


def _pixels(meta: ImageMeta, model: Any) -> Any:
    fields: dict[str, Any] = {
        "id": "Pixels:0",
        "dimension_order": "XYZCT",
        "type": to_ome_type(meta.dtype),
        "metadata_only": True,
        **{f"size_{ax.lower()}": meta.sizes[ax] for ax in "XYZCT"},
        "channels": [_channel(ch, i, model) for i, ch in enumerate(meta.channels)],
    }
    units = {u.value for u in model.UnitsLength}
    for ax in "XYZ":
        size = meta.physical_size.get(ax)
        if size is None:
            continue
        fields[f"physical_size_{ax.lower()}"] = size
        unit = {"um": "µm", "micron": "µm"}.get(meta.physical_unit[ax], meta.physical_unit[ax])
        if unit in units:
            fields[f"physical_size_{ax.lower()}_unit"] = unit
    return model.Pixels(**fields)


def ome_model(meta: ImageMeta, stored_xml: str | None = None, where: str = "image") -> ome_types.OME:
    """The ``ome_types.OME`` of ``stored_xml`` when given, else built from ``meta``.

    BackendUnavailableError (with the pip command) without ome-types; DamagedFileError naming
    ``where`` when the stored OME-XML does not parse.
    """
    ot = _ome_types()
    if stored_xml:
        try:
            parsed: ome_types.OME = ot.from_xml(stored_xml, validate=False)
            return parsed
        except Exception as exc:  # ome-types raises parser- and pydantic-specific errors
            raise DamagedFileError(
                f"{where}: its stored OME-XML does not parse as OME ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''})"
            ) from exc
    model = ot.model
    acquired = None
    if meta.acquisition_datetime:
        try:
            acquired = dt.datetime.fromisoformat(meta.acquisition_datetime)
        except ValueError:
            acquired = None
    image = model.Image(id="Image:0", name=meta.name, acquisition_date=acquired, pixels=_pixels(meta, model))
    built: ome_types.OME = ot.OME(images=[image], creator="ome-arrow-core")
    return built
