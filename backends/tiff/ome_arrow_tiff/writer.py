"""Write an image as OME-TIFF (or plain TIFF) with tifffile, atomically, with checksums and pyramid levels.

An OME-TIFF gets the checksums of its strips and tiles in its OME-XML (see :mod:`.integrity`),
computed by reading back the file just written, before it is moved into place; ``levels=N``
adds ``N - 1`` reduced levels in SubIFDs (see :mod:`.levels` for the downsampling).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from ome_arrow_core import BackendUnavailableError, OMEArrowError
from ome_arrow_core.plugin_api import ArgumentError, atomic_path

from .integrity import SOFTWARE
from .levels import check_levels
from .options import TiffOptions, check_options
from .pages import Pages

if TYPE_CHECKING:
    from ome_arrow_core import Channel, ImageMeta, OMEArrow

__all__ = ["write_tiff", "ome_metadata"]

#: Bytes of one strip of an uncompressed OME-TIFF we write (unless ``tile=`` or ``rowsperstrip=``).
STRIP_BYTES: Final[int] = 256 << 10
#: Codecs that give back every byte they were given, whatever their options: a plain TIFF written with one (or
#: none) is not decoded again to compare (an OME-TIFF is: its checksums decode every page anyway).
LOSSLESS: Final[frozenset[str]] = frozenset({"zlib", "adobe_deflate", "deflate", "lzw", "lzma", "zstd", "packbits"})
_ILLUMINATION: Final[frozenset[str]] = frozenset({"Transmitted", "Epifluorescence", "Oblique", "NonLinear", "Other"})


def _signed32(v: int) -> int:
    return v - (1 << 32) if v >= 1 << 31 else v


def ome_metadata(meta: ImageMeta) -> dict[str, Any]:
    """tifffile ``metadata=`` for an OME-TIFF of ``meta`` (axes TZCYX)."""
    md: dict[str, Any] = {"axes": "TZCYX", "Name": meta.name}
    md.update(_physical(meta))
    if meta.acquisition_datetime:
        md["AcquisitionDate"] = meta.acquisition_datetime
    chans = meta.channels
    channel: dict[str, list[Any]] = {"Name": [c.name or c.id for c in chans]}
    if all(c.illumination in _ILLUMINATION for c in chans):
        channel["IlluminationType"] = [c.illumination for c in chans]
    md["Channel"] = channel
    return md


def _channel_attributes(ch: Channel) -> str:
    """The OME-XML attributes of what ``ch`` knows of Color and wavelengths (nm), as text."""
    attrs: dict[str, str] = {}
    if ch.color_rgba is not None:
        attrs["Color"] = str(_signed32(int(ch.color_rgba)))
    # OME wavelengths are positive: ome-arrow 0.1.0's records say 0.0 for unknown, which OME readers refuse
    if ch.emission_um is not None and ch.emission_um > 0:
        attrs["EmissionWavelength"] = repr(round(ch.emission_um * 1000, 6))
    if ch.excitation_um is not None and ch.excitation_um > 0:
        attrs["ExcitationWavelength"] = repr(round(ch.excitation_um * 1000, 6))
    return "".join(f' {k}="{v}"' for k, v in attrs.items())


def with_channel_attributes(xml: str, channels: Sequence[Channel]) -> str:
    """``xml`` (as tifffile writes it) with each channel's colour and wavelengths, channel by channel.

    tifffile takes an attribute for every channel or none; a channel that has no colour
    (or wavelength) here gets no attribute, while the others keep theirs.
    """
    for i, ch in enumerate(channels):
        start = f'<Channel ID="Channel:0:{i}"'
        if xml.count(start) != 1:
            raise ValueError(f"the OME-XML written has no single channel {i} to describe")
        xml = xml.replace(start, start + _channel_attributes(ch), 1)
    return xml


def _described(xml: str, meta: ImageMeta) -> str:
    """The OME-XML tifffile wrote, with each channel's colour and wavelengths and, for a whole image
    that has one, what its stored OME-XML says beyond the pixels (see :mod:`.carry`)."""
    xml = with_channel_attributes(xml, meta.channels)
    if meta.ome_xml is None:
        return xml
    from .carry import carry_stored_ome

    return carry_stored_ome(xml, meta.ome_xml)


def _physical(meta: ImageMeta) -> dict[str, Any]:
    """``PhysicalSize{X,Y,Z}`` and their units for the known sizes (an unknown size is left out)."""
    md: dict[str, Any] = {}
    for ax in "XYZ":
        size = meta.physical_size.get(ax)
        if size is not None:
            md[f"PhysicalSize{ax}"] = float(size)
            unit = meta.physical_unit.get(ax, "µm")  # ome-arrow 0.1.0 records may spell µm so; OME-XML may not
            md[f"PhysicalSize{ax}Unit"] = {"um": "µm", "micron": "µm"}.get(unit, unit)
    return md


def _resolution(meta: ImageMeta) -> dict[str, Any]:
    """Resolution tags (pixels per centimetre) for a plain TIFF with µm pixel sizes."""
    px, py = meta.physical_size.get("X"), meta.physical_size.get("Y")
    if not px or not py or any(meta.physical_unit.get(a) not in ("µm", "um") for a in "XY"):
        return {}
    return {"resolution": (1e4 / px, 1e4 / py), "resolutionunit": "CENTIMETER"}


def write_tiff(image: OMEArrow, out: Path, **options: Any) -> Path:
    """Write ``image`` to ``out`` as a TZCYX OME-TIFF (``ome=False``: plain TIFF), atomically.

    Options (see :data:`.options.ACCEPTED`; any other raises ArgumentError): ``tile=(h, w)`` (or
    ``chunk_shape=``, multiples of 16) writes tiles instead of strips; ``compression`` (e.g. ``"zlib"``;
    others may need imagecodecs) with ``compressionargs``/``predictor``, and ``bigtiff``, ``byteorder``,
    ``rowsperstrip``, ``datetime``, ``maxworkers`` go to tifffile. ``levels=N`` (OME-TIFF only) writes a
    pyramid of N levels, each half the previous one in Y and X, in SubIFDs. Every page written is read
    back and compared with the image before the file replaces ``out``: a codec that changed pixels
    (JPEG...) raises ArgumentError and leaves ``out`` as it was, unless ``lossy=True``. An OME-TIFF stores
    the checksums of its strips and tiles. A plain TIFF keeps the axes and the known physical sizes in
    tifffile's shaped metadata (µm sizes also in its resolution tags, for other readers), and no checksums.
    The image is read a page at a time (:mod:`.pages`; each pyramid level reduces its page again), for the
    write and again for the read-back: an image larger than memory converts. On failure nothing is left at
    ``out``. An image read from an OME-TIFF (through any of our formats) keeps its stored OME-XML: planes,
    instrument, objective settings, channel settings and annotations come along (whole images only).
    """
    opts = check_options(options)
    meta = image.meta
    n_levels = check_levels(opts.levels, meta.sizes)
    if n_levels > 1 and not opts.ome:
        raise ArgumentError(f"levels={opts.levels} needs ome=True: pyramids are written as OME-TIFF SubIFDs")
    pages = Pages(image, n_levels, opts.passed.get("byteorder", "="))  # read a plane at a time, not whole
    if opts.ome:
        kwargs: dict[str, Any] = {"ome": True, "metadata": ome_metadata(meta), "software": SOFTWARE}
    else:
        kwargs = {"ome": False, "metadata": {"axes": "TZCYX", **_physical(meta)}, **_resolution(meta)}
    if opts.tile is not None:
        kwargs["tile"] = opts.tile
    elif opts.ome and "rowsperstrip" not in opts.passed:  # strips of ~256 KiB: a checked crop reads whole strips
        row = meta.sizes["X"] * np.dtype(meta.dtype).itemsize
        kwargs["rowsperstrip"] = max(1, min(meta.sizes["Y"], STRIP_BYTES // max(1, row)))
    if opts.compression is not None:
        kwargs["compression"] = opts.compression
    out = Path(out)
    with atomic_path(out) as tmp:
        with _foreign_errors(out, opts):
            _write_levels(tmp, pages, kwargs, opts.passed)
        expected = None if opts.lossy else pages.plane
        if opts.ome:
            from .stamp import add_checksums

            change = add_checksums(tmp, lambda xml: _described(xml, meta), expected)
        else:
            from .readback import plain_change

            lossless = opts.compression is None or opts.compression in LOSSLESS  # nothing to read back
            change = None if expected is None or lossless else plain_change(tmp, expected, len(pages))
        if change is not None:
            raise ArgumentError(
                f"{out}: writing with {opts.describe()} changed pixel values ({change}): that compression is "
                f"lossy, so {out} was not written (an existing file is left as it was). Use a lossless "
                "compression ('zlib', 'zstd', 'lzw', 'lzma', 'deflate', or None), or pass lossy=True to "
                "write the changed pixels on purpose"
            )
    return out


@contextmanager
def _foreign_errors(out: Path, opts: TiffOptions) -> Iterator[None]:
    """tifffile's and imagecodecs' exceptions while writing ``out`` as ArgumentError (or BackendUnavailableError)."""
    try:
        yield
    except (OMEArrowError, OSError, MemoryError):
        raise
    except Exception as exc:
        if "imagecodecs" in str(exc) or isinstance(exc, ImportError):
            raise BackendUnavailableError(
                f"writing {out} with compression={opts.compression!r} needs the imagecodecs package "
                f"({exc}); install it with: pip install imagecodecs, or use compression='zlib'"
            ) from exc
        raise ArgumentError(
            f"{out}: tifffile could not write this {'OME-TIFF' if opts.ome else 'plain TIFF'} with {opts.describe()} "
            f"({type(exc).__name__}: {exc}); the codec or option does not fit the image (its dtype or "
            "shape): use another value, e.g. compression='zlib', or leave the option out"
        ) from exc


def _write_levels(path: Path, pages: Pages, kwargs: dict[str, Any], options: dict[str, Any]) -> None:
    """Write level 0 of ``pages`` with ``kwargs`` and the reduced levels in its pages' SubIFDs, a page (or tile)
    at a time."""
    import tifffile

    options = dict(options)
    init = {k: options.pop(k) for k in ("bigtiff", "byteorder") if k in options}
    init.setdefault("bigtiff", pages.nbytes > 2**32 - 2**25)  # (tifffile's own rule, which needs the array)
    tile = kwargs.get("tile")
    common = {k: v for k, v in kwargs.items() if k in ("tile", "compression", "rowsperstrip")}
    first = {k: v for k, v in kwargs.items() if k != "ome"}
    levels = len(pages.shapes)
    if levels > 1:
        first["subifds"] = levels - 1
    with tifffile.TiffWriter(path, ome=kwargs["ome"], **init) as tw:
        tw.write(
            pages.items(0, tile), shape=pages.shapes[0], dtype=pages.dtype, photometric="minisblack", **first, **options
        )
        for k in range(1, levels):
            tw.write(
                pages.items(k, tile),
                shape=pages.shapes[k],
                dtype=pages.dtype,
                photometric="minisblack",
                subfiletype=1,
                **common,
                **options,
            )
