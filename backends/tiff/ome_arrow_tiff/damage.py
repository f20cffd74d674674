"""Refusing damaged TIFF files instead of reading them as something else.

tifffile reads a truncated or damaged file as best it can: it logs a warning (``tifffile``
logger) and returns fewer pages, a different series, or zeros for missing planes. A reader
must not hand those out as the file's pixels, so:

- :func:`strict_tifffile` turns what tifffile logs at WARNING or above, while this thread
  opens or reads a file, into :class:`~ome_arrow_core.errors.DamagedFileError`, and wraps
  tifffile's and imagecodecs' own exceptions the same way;
- :func:`check_declared` compares the shape and pixel type an OME-TIFF's OME-XML declares
  with the series tifffile built from the pages it could read;
- :func:`check_last_page` refuses a series whose last page would decode otherwise than its first page,
  whose tags tifffile uses to decode every page (a damaged first IFD misdecodes them all), and a series
  read by offset from its first page whose last page does not lie where that offset puts it;
- :func:`check_extent` refuses pages whose data lie past the end of the file, or at an offset that is
  not a byte position of data (0, negative, fractional: tifffile reads those segments as zeros).
"""

from __future__ import annotations

import logging
import math
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import PurePath
from typing import Any

import numpy as np

from ome_arrow_core import SelectionError
from ome_arrow_core.plugin_api import DamagedFileError, reading

__all__ = ["strict_tifffile", "check_declared", "check_extent", "check_last_page", "ome_root"]

#: The page properties that decide how a page decodes (those of tifffile's ``TiffPage.hash``).
_DECODING = (
    "shaped",
    "rowsperstrip",
    "tilewidth",
    "tilelength",
    "tiledepth",
    "sampleformat",
    "bitspersample",
    "fillorder",
    "predictor",
    "compression",
    "extrasamples",
    "photometric",
)

#: OME ``Pixels/@Type`` -> numpy dtype name.
_OME_TYPES = {
    "int8": "int8",
    "int16": "int16",
    "int32": "int32",
    "uint8": "uint8",
    "uint16": "uint16",
    "uint32": "uint32",
    "float": "float32",
    "double": "float64",
    "bit": "bool",
}


class _Collect(logging.Handler):
    """Keeps the WARNING+ records tifffile logs from one thread."""

    def __init__(self, thread: int) -> None:
        super().__init__(logging.WARNING)
        self.thread = thread
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.records.append(record)


@contextmanager
def strict_tifffile(path: PurePath, what: str) -> Iterator[None]:
    """Run tifffile calls on ``path``; its exceptions and logged warnings become DamagedFileError.

    A SelectionError raised after tifffile reported damage (``row=1`` of a file whose second series
    tifffile dropped) is that damage: the DamagedFileError, not "the file holds 1 series"."""
    log = logging.getLogger("tifffile")
    handler = _Collect(threading.get_ident())
    log.addHandler(handler)
    try:
        with reading(path, None, what):
            yield
    except SelectionError as exc:
        if handler.records:
            raise _reported(path, what, handler.records) from exc
        raise
    finally:
        log.removeHandler(handler)
    if handler.records:
        raise _reported(path, what, handler.records)


def _reported(path: PurePath, what: str, records: list[logging.LogRecord]) -> DamagedFileError:
    """The DamagedFileError of what tifffile logged (``records``) while it did ``what`` on ``path``."""
    first = records[0].getMessage().replace(f"<tifffile.TiffFile {path.name!r}> ", "")
    more = f" (and {len(records) - 1} more)" if len(records) > 1 else ""
    return DamagedFileError(
        f"{path}: {what} failed: tifffile reports {first!r}{more}; the file is truncated or damaged"
    )


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def ome_root(tif: Any) -> ET.Element | None:
    """The parsed OME-XML of an OME-TIFF; None when it has none or it does not parse."""
    if not tif.is_ome or not tif.ome_metadata:
        return None
    xml = tif.ome_metadata
    try:
        return ET.fromstring(xml.encode("utf-8") if isinstance(xml, str) else xml)
    except (ET.ParseError, AttributeError, LookupError, ValueError):  # LookupError: a damaged encoding name
        return None


def check_declared(
    tif: Any, series: Any, index: int, sizes: Mapping[str, int], dtype: np.dtype, path: PurePath
) -> None:
    """Refuse a series whose pages disagree with the shape and type its OME-XML declares.

    OME-TIFFs are checked against their OME-XML (tifffile falls back to another series kind
    when it cannot use the OME-XML; that is refused too), ImageJ hyperstacks against the
    ``images=`` count of their description (see :func:`_check_imagej`).
    """
    if series.kind == "imagej":
        _check_imagej(tif, series, path)
    if not tif.is_ome:
        description = str(tif.pages.first.description or "")
        if description.lstrip().startswith("<?xml") and "<OME" in description[:4096]:
            raise DamagedFileError(
                f"{path}: its ImageDescription starts as OME-XML but is not a complete OME document; "
                "the file's metadata is damaged"
            )
        return
    xml = tif.ome_metadata
    try:
        root = ET.fromstring(xml.encode("utf-8") if isinstance(xml, str) else xml)
    except (ET.ParseError, AttributeError, LookupError, ValueError) as exc:
        raise DamagedFileError(f"{path}: the OME-XML does not parse ({exc}); the file's metadata is damaged") from None
    images = [e for e in root if _local(e.tag) == "Image"]
    if series.kind != "ome" and images:
        raise DamagedFileError(
            f"{path}: its OME-XML declares {len(images)} image(s) but tifffile could not map them to the "
            f"file's pages (it read a {series.kind!r} series instead); the file is truncated or its metadata damaged"
        )
    if series.kind != "ome" or not 0 <= index < len(images):
        return
    pixels = next((e for e in images[index] if _local(e.tag) == "Pixels"), None)
    if pixels is None:
        raise DamagedFileError(f"{path}: image {index} of the OME-XML has no Pixels element; the metadata is damaged")
    try:
        declared = {a: int(pixels.get(f"Size{a}", "")) for a in "TZCYX"}
    except ValueError:
        raise DamagedFileError(
            f"{path}: the OME-XML Pixels sizes {dict(pixels.attrib)} are not integers; the metadata is damaged"
        ) from None
    if math.prod(declared.values()) != math.prod(sizes.values()) or any(declared[a] != sizes[a] for a in "YX"):
        raise DamagedFileError(
            f"{path}: the OME-XML declares sizes {declared} (TZCYX) but the file's readable pages hold "
            f"{dict(sizes)}; the file is truncated or its metadata damaged"
        )
    want = _OME_TYPES.get(str(pixels.get("Type", "")).lower())
    if want is not None and np.dtype(want) != dtype:
        raise DamagedFileError(
            f"{path}: the OME-XML declares pixel type {pixels.get('Type')!r} but the pages hold {dtype}; "
            "the file's metadata is damaged"
        )


def check_extent(page: Any, size: int, path: PurePath, index: int) -> None:
    """Refuse page ``index`` when any of its strips or tiles ends past the file's ``size`` bytes, has an
    offset but no bytes or bytes at offset 0 (a sparse file's missing segment has neither), or an offset or
    byte count that is not a whole number of bytes (tifffile reads such a segment as zeros)."""
    odd = [
        i
        for i, (o, n) in enumerate(zip(page.dataoffsets, page.databytecounts))
        if o != int(o) or n != int(n) or o < 0 or n < 0 or (n and not o)
    ]
    if odd:
        i = odd[0]
        raise DamagedFileError(
            f"{path}: page {index} stores strip or tile {i} at offset {page.dataoffsets[i]!r} with "
            f"{page.databytecounts[i]!r} bytes, expected a positive whole byte offset (0 only for an empty "
            "segment of 0 bytes); its strip or tile offsets are damaged"
        )
    ends = [int(o) + int(n) for o, n in zip(page.dataoffsets, page.databytecounts) if n]
    if ends and max(ends) > size:
        raise DamagedFileError(
            f"{path}: page {index} stores data up to byte {max(ends)} but the file has {size} bytes; "
            "the file is truncated"
        )
    empty = [i for i, (o, n) in enumerate(zip(page.dataoffsets, page.databytecounts)) if o and not n]
    if empty:
        raise DamagedFileError(
            f"{path}: page {index} has strips or tiles {empty[:5]} with an offset but 0 bytes; "
            "its byte counts are damaged"
        )


def _check_like_keyframe(page: Any, keyframe: Any, path: PurePath, index: int) -> None:
    """Refuse page ``index`` (a full page, not a frame) when a property that decides its decoding differs from
    the series' ``keyframe``: tifffile decodes the series' other pages with the keyframe's tags."""
    if page is keyframe or page.hash == keyframe.hash:
        return
    differ = {
        a: (getattr(keyframe, a), getattr(page, a)) for a in _DECODING if getattr(page, a) != getattr(keyframe, a)
    }
    what = ", ".join(f"{a} {_shown(k)} on the first page but {_shown(v)} here" for a, (k, v) in differ.items())
    raise DamagedFileError(
        f"{path}: page {index} does not decode like the first page of its series ({what or 'tifffile hash differs'}); "
        "the pages of a series share their encoding, so the tags of one of them are damaged"
    )


def _shown(value: Any) -> str:
    """A tag value as a message shows it: an enum by its name (``ADOBE_DEFLATE``), anything else by repr."""
    name = getattr(value, "name", None)
    return name if isinstance(name, str) else repr(value)


def _check_imagej(tif: Any, series: Any, path: PurePath) -> None:
    """Refuse an ImageJ series holding another number of planes than its description's ``images=``: tifffile
    builds the series from ``channels=``, ``slices=`` and ``frames=``, so a damaged one drops planes silently."""
    images = (tif.imagej_metadata or {}).get("images")
    planes = math.prod(n for a, n in zip(series.axes, series.shape, strict=True) if a not in "YXS")
    if isinstance(images, int) and images != planes:
        raise DamagedFileError(
            f"{path}: its ImageJ description says images={images} but its channels, slices and frames "
            f"give a {series.axes} series of {planes} planes {tuple(series.shape)}; the description is damaged"
        )


def check_last_page(series: Any, path: PurePath, virtual_offset: int | None) -> None:
    """Refuse ``series`` when its last page (its IFD read in full) decodes otherwise than its first, or, when
    the series is read by offset from its first page (``virtual_offset``: its data offset), when the last
    page's data is not where that offset puts it (a damaged offset of the first page shifts every plane)."""
    n = len(series)
    last = series[n - 1] if n > 1 else None
    if last is None or last.is_virtual:
        return
    page, kf = last.aspage(), series.keyframe
    _check_like_keyframe(page, kf, path, n - 1)
    if virtual_offset is None or not page.dataoffsets:
        return
    want = virtual_offset + (n - 1) * int(kf.nbytes)
    if int(page.dataoffsets[0]) != want:
        raise DamagedFileError(
            f"{path}: its {n} pages are stored one after another from byte {virtual_offset} (the first page's "
            f"offset), which puts page {n - 1} at byte {want}, but its IFD says {int(page.dataoffsets[0])}; "
            "the strip offsets of the first page are damaged"
        )
