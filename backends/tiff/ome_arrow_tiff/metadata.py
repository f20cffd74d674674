"""ImageMeta of a TIFF series: OME-XML when the file has it, else ImageJ or our shaped metadata.

- OME-TIFF: image name and ID, acquisition date, ``PhysicalSize{X,Y,Z}`` with units, and
  the channels. A channel with ``SamplesPerPixel`` > 1 (RGB) becomes one channel per
  sample, named ``"<name>:<k>"``. Channels that do not match size C are replaced by defaults.
- ImageJ TIFF: X/Y pixel sizes from ``XResolution``/``YResolution`` (pixels per ImageJ
  ``unit``) and Z from ``spacing``, when ``unit`` is a length.
- Shaped TIFF (tifffile's JSON description, our plain-TIFF writer): ``PhysicalSize{X,Y,Z}``
  and ``PhysicalSize{X,Y,Z}Unit`` keys.
- Otherwise every physical size is None (unknown). ``XResolution``/``YResolution`` alone are
  print resolution (dots per inch or centimetre), not a calibration: :func:`print_resolution`
  reports them as such for ``info()``.

Samples per pixel (an ``S`` axis: RGB, RGBA) are channels; named R, G, B[, A] when they are
RGB samples, the only channels and nothing names them, with :data:`SAMPLES_NOTE` in ``meta.notes``. A
stated physical size that is not a positive finite number raises DamagedFileError naming
the file and the field.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ome_arrow_core import Channel, ImageMeta
from ome_arrow_core.plugin_api import (
    SAMPLES_NOTE,
    DamagedFileError,
    SchemaError,
    attach_ome_xml,
    image_document,
    physical_size_value,
    sample_channels,
)

from .axes import AxisMap, guess_note
from .omexml import LENGTH_UNITS_UM, OmeImage, parse_ome_xml
from .segments import JPEG

if TYPE_CHECKING:
    import tifffile

__all__ = ["image_meta", "print_resolution"]

#: Inches per ResolutionUnit (TIFF tag 296): inch, centimetre, and the millimetre and
#: micrometre some writers use; 1 (none) has no length.
_RESUNIT_INCH: Final[dict[int, float]] = {2: 1.0, 3: 1 / 2.54, 4: 1 / 25.4, 5: 1 / 25400}
_IMAGEJ_UNITS: Final[dict[str, str]] = {"micron": "µm", "um": "µm", "\\u00B5m": "µm", "µm": "µm"}

_PHOTOMETRIC_RGB: Final[int] = 2
_PHOTOMETRIC_YCBCR: Final[int] = 6

Physical = tuple[dict[str, float | None], dict[str, str]]


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


def _imagej_physical(tif: tifffile.TiffFile, page: Any) -> Physical:
    """X/Y from the resolution tags and Z from ``spacing``, in ImageJ's ``unit`` (when it is a length)."""
    ij = tif.imagej_metadata or {}
    unit = _IMAGEJ_UNITS.get(str(ij.get("unit", "")), str(ij.get("unit", "")))
    if unit not in LENGTH_UNITS_UM:
        return {}, {}
    sizes: dict[str, float | None] = {}
    if 282 in page.tags and 283 in page.tags:
        for ax, res, tag in zip("XY", page.resolution, ("XResolution", "YResolution"), strict=True):
            per_pixel = physical_size_value(res, f"{tag} (ImageJ pixels per {unit})")
            sizes[ax] = 1 / per_pixel if per_pixel is not None else None
    if "spacing" in ij:
        sizes["Z"] = physical_size_value(ij["spacing"], "ImageJ spacing")
    return sizes, {ax: unit for ax in sizes}


def _shaped_physical(page: Any) -> Physical:
    """``PhysicalSize{X,Y,Z}`` (and units) of a shaped TIFF's JSON description."""
    try:
        doc = json.loads(page.description or "")
    except (ValueError, AttributeError):
        return {}, {}
    if not isinstance(doc, dict):
        return {}, {}
    sizes = {
        ax: physical_size_value(doc.get(f"PhysicalSize{ax}"), f"PhysicalSize{ax} (shaped description)")
        for ax in "XYZ"
        if f"PhysicalSize{ax}" in doc
    }
    units = {ax: str(doc.get(f"PhysicalSize{ax}Unit") or "µm") for ax in sizes}
    return sizes, units


def print_resolution(page: Any) -> dict[str, float] | None:
    """``XResolution``/``YResolution`` of ``page`` in dots per inch, for ``info()``.

    None without them, without a length unit, or when the tags do not hold positive numbers
    (they are only reported, never used, so a damaged tag is not an error here).
    """
    if 282 not in page.tags or 283 not in page.tags:
        return None
    try:
        inches = _RESUNIT_INCH.get(int(page.resolutionunit))
        dpi = [float(v) / inches for v in page.resolution] if inches is not None else []
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    if len(dpi) != 2 or not all(math.isfinite(v) and v > 0 for v in dpi):
        return None
    return {"X": dpi[0], "Y": dpi[1]}


def _sample_names(
    axes: AxisMap, channels: tuple[Channel, ...], size_c: int, rgb: bool
) -> tuple[tuple[Channel, ...], tuple[str, ...]]:
    """Channels named R, G, B[, A] when an RGB ``S`` axis alone makes C and nothing names them; the note."""
    if "S" not in axes.axes:
        return channels, ()
    samples = axes.shape[axes.axes.index("S")]
    if rgb and not channels and samples == size_c:
        channels = sample_channels(samples)
    return channels, (SAMPLES_NOTE,)


def _decodes_rgb(page: Any) -> bool:
    """True when tifffile decodes ``page``'s samples as R, G, B[, A]: RGB, or JPEG-compressed YCbCr."""
    photometric = int(page.photometric)
    return photometric == _PHOTOMETRIC_RGB or (photometric == _PHOTOMETRIC_YCBCR and int(page.compression) in JPEG)


def image_meta(tif: tifffile.TiffFile, series: Any, index: int, axes: AxisMap, filename: str) -> ImageMeta:
    """Metadata of ``series`` (the ``index``-th of ``tif``) with canonical sizes from ``axes``."""
    kf = series.keyframe
    sizes = axes.sizes
    phys: dict[str, float | None]
    try:
        ome = parse_ome_xml(tif.ome_metadata, index) if tif.is_ome and tif.ome_metadata else None
        if ome is not None:
            phys, units = ome.physical_size, ome.physical_unit
        elif tif.is_imagej:
            phys, units = _imagej_physical(tif, kf)
        elif series.kind == "shaped":
            phys, units = _shaped_physical(kf)
        else:
            phys, units = {}, {}
    except SchemaError as exc:
        raise DamagedFileError(f"{Path(tif.filehandle.path)}: series {index}: {exc}") from None
    channels, notes = _sample_names(axes, _channels(ome, sizes["C"]) if ome else (), sizes["C"], _decodes_rgb(kf))
    meta = ImageMeta(
        sizes=sizes,
        dtype=series.dtype,
        id=(ome.id if ome and ome.id else f"img-{index}"),
        name=(ome.name if ome and ome.name else filename),
        acquisition_datetime=ome.acquisition_datetime if ome else None,
        physical_size=phys,
        physical_unit={"X": "µm", "Y": "µm", "Z": "µm", **units},
        channels=channels,
        chunk_shape=(1, kf.tilelength, kf.tilewidth) if kf.is_tiled else None,
        notes=notes + guess_note(axes),
    )
    return _with_document(meta, str(tif.ome_metadata), index) if ome is not None else meta


def _with_document(meta: ImageMeta, xml: str, index: int) -> ImageMeta:
    """``meta`` with the file's OME-XML of Image ``index`` (trimmed to it), when that describes these pixels."""
    document = image_document(xml, index)
    try:
        return attach_ome_xml(meta, document)
    except SchemaError:  # it describes other pixels than the series read: the metadata is built from meta
        return meta
