"""The OME-XML an image's source stored (an OME-TIFF's), kept with the image: trimmed to that image, checked.

A source's document may describe several images and the file's own layout; what an image keeps
(:attr:`~.meta.ImageMeta.ome_xml`) is :func:`image_document`: the one Image with its Pixels
(channels, planes), and everything else of the document (instruments, objectives, experimenters,
structured annotations...) but the other images, the file's ``TiffData``/``BinData`` and
ome-arrow-core's own bookkeeping annotations. Formats store that document and check it when read
(:func:`attach_ome_xml`): a document that does not parse, or that describes other sizes, another
pixel type or other channels than the image it came with, is a SchemaError (a damaged file).

The rule is whole-image-only: a crop or a channel subset is another image, and keeps none of it.
Only xml.etree is used.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from typing import Final

import numpy as np

from .dtypes import to_ome_type
from .errors import SchemaError
from .meta import ImageMeta

__all__ = ["OWN_NAMESPACE_PREFIX", "image_document", "attach_ome_xml", "local_name", "ome_xml_text"]

#: Namespaces of ome-arrow-core's own annotations (e.g. an OME-TIFF's checksums): not the image's metadata.
OWN_NAMESPACE_PREFIX: Final[str] = "urn:ome-arrow-core:"
#: Pixels children that say where a file keeps the pixels (replaced by ``MetadataOnly``).
_STORAGE: Final[frozenset[str]] = frozenset({"TiffData", "BinData", "MetadataOnly"})
#: Root children that are not kept (the document's other images, a pointer to another file's XML).
_DROPPED_ROOT: Final[frozenset[str]] = frozenset({"Image", "BinaryOnly"})


def local_name(tag: str) -> str:
    """``tag`` without its ``{namespace}``."""
    return tag.rsplit("}", 1)[-1]


def _namespace(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def _children(elem: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in elem if local_name(e.tag) == name]


def ome_xml_text(root: ET.Element) -> str:
    """The OME-XML text of ``root`` (changed in place): the elements of its namespace written without a
    prefix under a default ``xmlns``, as OME files are (other namespaces keep prefixes)."""
    ns = _namespace(root.tag)
    if ns:
        prefix = f"{{{ns}}}"
        for e in root.iter():
            if isinstance(e.tag, str) and e.tag.startswith(prefix):
                e.tag = e.tag[len(prefix) :]
        root.set("xmlns", ns)
    return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(root, encoding="unicode")


def image_document(xml: str | bytes, index: int) -> str | None:
    """The OME-XML document of the ``index``-th Image of ``xml`` alone (see the module doc); None when
    ``xml`` does not parse as OME or has no such Image."""
    try:
        root = ET.fromstring(xml.encode("utf-8") if isinstance(xml, str) else xml)
    except (ET.ParseError, LookupError, ValueError):
        return None
    images = _children(root, "Image")
    if local_name(root.tag) != "OME" or not 0 <= index < len(images):
        return None
    ns = _namespace(root.tag)
    image = images[index]
    for child in list(root):
        if local_name(child.tag) in _DROPPED_ROOT and child is not image:
            root.remove(child)
    for sa in _children(root, "StructuredAnnotations"):
        for ann in list(sa):
            if str(ann.get("Namespace") or "").startswith(OWN_NAMESPACE_PREFIX):
                sa.remove(ann)
        if len(sa) == 0:
            root.remove(sa)
    for pixels in _children(image, "Pixels"):
        stored = [e for e in pixels if local_name(e.tag) in _STORAGE]
        if stored:
            at = list(pixels).index(stored[0])
            for e in stored:
                pixels.remove(e)
            pixels.insert(at, ET.Element(f"{{{ns}}}MetadataOnly" if ns else "MetadataOnly"))
    return ome_xml_text(root)


def _int(elem: ET.Element, attr: str, where: str) -> int:
    text = elem.get(attr)
    try:
        return int(str(text))
    except ValueError:
        raise SchemaError(f"{where}: {attr} is {text!r}; expected an integer") from None


def _check(xml: str, meta: ImageMeta) -> ET.Element:
    where = "its stored OME-XML"
    try:
        root = ET.fromstring(xml.encode("utf-8"))
    except (ET.ParseError, LookupError, ValueError) as exc:
        raise SchemaError(f"{where} does not parse ({exc}); the file is damaged") from None
    images = _children(root, "Image")
    if local_name(root.tag) != "OME" or len(images) != 1:
        raise SchemaError(
            f"{where} is not one OME Image (root <{local_name(root.tag)}> with {len(images)} Image elements); "
            "the file is damaged"
        )
    pixels = _children(images[0], "Pixels")
    if len(pixels) != 1:
        raise SchemaError(f"{where} has {len(pixels)} Pixels elements in its Image; expected one; the file is damaged")
    px = pixels[0]
    sizes = {ax: _int(px, f"Size{ax}", where) for ax in "TZCYX"}
    if sizes != dict(meta.sizes):
        raise SchemaError(
            f"{where} describes sizes {sizes}, but the image has {dict(meta.sizes)}; the file is damaged or edited"
        )
    if px.get("Type") != to_ome_type(meta.dtype):
        raise SchemaError(
            f"{where} says the pixel type is {px.get('Type')!r}, but the image is {to_ome_type(meta.dtype)!r}; "
            "the file is damaged or edited"
        )
    channels = _children(px, "Channel")
    samples = sum(_int(c, "SamplesPerPixel", where) if c.get("SamplesPerPixel") else 1 for c in channels)
    if channels and samples != sizes["C"]:
        raise SchemaError(
            f"{where} lists channels of {samples} samples for an image of {sizes['C']} channels; the file is damaged"
        )
    for plane in _children(px, "Plane"):
        for ax in "TZC":
            value = _int(plane, f"The{ax}", where) if plane.get(f"The{ax}") is not None else 0
            if not 0 <= value < sizes[ax]:
                raise SchemaError(
                    f"{where} has a Plane with The{ax}={value} outside the image's {ax} range 0..{sizes[ax] - 1}; "
                    "the file is damaged"
                )
    return px


def attach_ome_xml(meta: ImageMeta, xml: object) -> ImageMeta:
    """``meta`` carrying the stored OME-XML document ``xml`` (None: none stored), once it is checked
    to describe this image (SchemaError saying what disagrees otherwise)."""
    if xml is None:
        return meta
    if not isinstance(xml, str):
        raise SchemaError(f"its stored OME-XML is {type(xml).__name__}; expected text")
    pixels = _check(xml, meta)
    return replace(meta, ome_xml=xml, physical_size=_exact_sizes(meta, pixels))


def _exact_sizes(meta: ImageMeta, pixels: ET.Element) -> dict[str, float | None]:
    """``meta``'s physical sizes, each replaced by the document's when that rounds to it in float32 (a
    record's sizes are float32, the reference's schema) and names the same unit."""
    out = dict(meta.physical_size)
    for ax, have in meta.physical_size.items():
        text = pixels.get(f"PhysicalSize{ax}")
        unit = pixels.get(f"PhysicalSize{ax}Unit", "µm")
        try:
            exact = float(str(text))
        except ValueError:
            continue
        if have is not None and unit == meta.physical_unit[ax] and np.float32(exact) == np.float32(have):
            out[ax] = exact
    return out
