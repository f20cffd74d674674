"""An OME-Zarr store's OME-XML, as bioformats2raw lays it out (NGFF's transitional ``bioformats2raw.layout``).

The root group says ``"bioformats2raw.layout": 3`` (NGFF 0.5: inside ``attributes["ome"]``);
image ``i`` is the group ``series[i]`` that the ``OME`` group's attributes list (``"0"``,
``"1"``... when it lists none), and ``OME/METADATA.ome.xml`` is one OME-XML document whose
``i``-th Image describes image ``i``. Our writer stores an image that has a stored OME-XML
(see ``ImageMeta.ome_xml``) this way, with the document's XXH3-64 checksum in the root's
``ome_arrow.ome_xml`` attribute; our reader gives level 0 of image ``i`` Image ``i`` of the
document (trimmed to it), checked against the checksum when the store has one and against the
pixels always: a document that is missing (when the checksum names it), does not parse, has no
Image ``i`` or describes other pixels is a DamagedFileError naming the file.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from pathlib import Path, PurePath
from typing import Any, Final

from ome_arrow_core import ImageMeta, SchemaError
from ome_arrow_core.plugin_api import (
    CHECKSUM_ALGORITHM,
    ChecksumError,
    DamagedFileError,
    attach_ome_xml,
    hex_digest,
    image_document,
    reading,
    where,
)

from .ngff import ome_attrs

__all__ = [
    "LAYOUT",
    "XML_KEY",
    "OURS_KEY",
    "is_layout",
    "series_path",
    "local_series",
    "write_layout",
    "with_document",
]

#: The root attribute marking the layout, and its value.
LAYOUT: Final[str] = "bioformats2raw.layout"
_LAYOUT_VERSION: Final[int] = 3
#: The document's key in the store.
XML_KEY: Final[str] = "OME/METADATA.ome.xml"
#: Where our writer keeps the document's checksum (inside the root's ``ome_arrow`` attributes).
OURS_KEY: Final[str] = "ome_xml"
#: Largest document read (a bigger one is refused as damaged rather than loaded).
_MAX_BYTES: Final[int] = 256 << 20


def is_layout(ngff: Mapping[str, Any]) -> bool:
    """True for a group (its NGFF attributes ``ngff``) that is a bioformats2raw root, not an image or plate."""
    return ngff.get(LAYOUT) == _LAYOUT_VERSION and "multiscales" not in ngff and "plate" not in ngff


def series_path(group: Any, row: int, path: PurePath) -> str:
    """The path of image ``row`` of bioformats2raw root ``group``: the ``OME`` group's ``series[row]``, else
    ``str(row)``."""
    from ome_arrow_core import SelectionError

    with reading(path, "OME", "reading the series list"):
        ome = group.get("OME")  # None when absent
        if ome is None:
            return str(row)
        attrs = ome.attrs.asdict()
    series = ome_attrs(attrs, ome.metadata.zarr_format, where(path, "OME"))[1].get("series")
    if series is None:
        return str(row)
    if not isinstance(series, list) or not series or not all(isinstance(s, str) and s for s in series):
        raise DamagedFileError(f"{where(path, 'OME')}: series is {series!r}, expected a non-empty list of image paths")
    if not 0 <= row < len(series):
        raise SelectionError(
            f"row={row} is out of range: {path} holds {len(series)} images (OME series); "
            f"valid rows are 0..{len(series) - 1}"
        )
    found = str(series[row]).strip("/")
    if any(p in ("", ".", "..") for p in found.split("/")):
        raise DamagedFileError(f"{where(path, 'OME')}: series path {series[row]!r} leaves the store")
    return found


def local_series(path: Path, read_json: Callable[[Path], Any]) -> list[str]:
    """The image paths of the bioformats2raw root at local directory ``path``: the ``OME`` group's ``series``,
    else ``"0"``, ``"1"``... while such a group exists (metadata only; ``read_json`` reads one document, None
    when it cannot)."""
    for name in ("zarr.json", ".zattrs"):
        doc = read_json(path / "OME" / name)
        if not isinstance(doc, Mapping):
            continue
        attrs = doc.get("attributes", {}) if name == "zarr.json" else doc
        ngff = attrs.get("ome", attrs) if isinstance(attrs, Mapping) else {}
        series = ngff.get("series") if isinstance(ngff, Mapping) else None
        if isinstance(series, list) and all(isinstance(s, str) for s in series):
            return [str(s) for s in series]
    out: list[str] = []
    while any((path / str(len(out)) / name).is_file() for name in ("zarr.json", ".zattrs", ".zgroup")):
        out.append(str(len(out)))
    return out


def write_layout(root: Any, directory: Path, xml: str, image: str, version: str) -> dict[str, Any]:
    """Make zarr group ``root`` (stored in ``directory``) a bioformats2raw root whose one image is at path
    ``image``, with document ``xml``; the ``ome_arrow`` attribute entry holding its checksum."""
    if version == "0.4":
        root.attrs.put({LAYOUT: _LAYOUT_VERSION})
        root.create_group("OME", attributes={"series": [image]})
    else:
        root.attrs.put({"ome": {"version": "0.5", LAYOUT: _LAYOUT_VERSION}})
        root.create_group("OME", attributes={"ome": {"version": "0.5", "series": [image]}})
    data = xml.encode("utf-8")
    (directory / XML_KEY).write_bytes(data)
    return {"path": XML_KEY, "algorithm": CHECKSUM_ALGORITHM, "digest": hex_digest(data), "bytes": len(data)}


def _read(store: Any, path: PurePath) -> bytes | None:
    """The document's bytes through zarr ``store`` (None when absent)."""
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    with reading(path, XML_KEY, "reading the OME-XML"):
        buf = sync(store.get(XML_KEY, default_buffer_prototype()))
    return None if buf is None else bytes(buf.to_bytes())


def _checked(data: bytes | None, entry: Any, path: PurePath, verify: bool) -> bytes | None:
    """``data``, checked against our writer's checksum ``entry`` (None: a store without one)."""
    here = where(path, XML_KEY)
    if entry is None:
        return data
    if not isinstance(entry, Mapping) or entry.get("path") != XML_KEY or not isinstance(entry.get("digest"), str):
        raise DamagedFileError(f"{where(path, 'zarr.json or .zattrs')}: ome_arrow.{OURS_KEY} is {entry!r}; damaged")
    if data is None:
        raise DamagedFileError(
            f"{here}: the OME-XML is missing, but the store was written with it (ome_arrow.{OURS_KEY}); "
            "the store is damaged; restore it from a backup"
        )
    if not verify:
        return data
    if entry.get("algorithm") != CHECKSUM_ALGORITHM:
        raise DamagedFileError(
            f"{here}: the OME-XML's checksum uses {entry.get('algorithm')!r}; this version checks "
            f"{CHECKSUM_ALGORITHM!r}. Read with verify=False to skip the check"
        )
    got = hex_digest(data)
    if got != entry["digest"]:
        raise ChecksumError(
            f"{here}: the OME-XML's bytes do not match their checksum (stored {entry['digest']}, computed {got}); "
            "the store is damaged. Read with verify=False (or OME_ARROW_CORE_VERIFY=0) to skip the check"
        )
    return data


def with_document(meta: ImageMeta, store: Any, index: int, entry: Any, path: PurePath, verify: bool) -> ImageMeta:
    """``meta`` (level 0 of image ``index`` of a bioformats2raw store) with Image ``index`` of the store's
    OME-XML (none when the store has none); DamagedFileError naming the file when it is damaged or lies."""
    here = where(path, XML_KEY)
    data = _checked(_read(store, path), entry, path, verify)
    if data is None:
        return meta
    if len(data) > _MAX_BYTES:
        raise DamagedFileError(f"{here}: the OME-XML is {len(data)} bytes; more than {_MAX_BYTES} is not read")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise DamagedFileError(f"{here}: the OME-XML does not parse ({exc}); the store is damaged") from None
    images = [e for e in root if e.tag.rsplit("}", 1)[-1] == "Image"]
    document = image_document(data, index)
    if document is None:
        raise DamagedFileError(
            f"{here}: the OME-XML (root <{root.tag.rsplit('}', 1)[-1]}>) has {len(images)} Image elements, "
            f"none for image {index} of the store; the store is damaged"
        )
    try:
        return attach_ome_xml(meta, document)
    except SchemaError as exc:
        raise DamagedFileError(f"{here}: {exc}") from None
