"""An image's stored OME-XML carried into the OME-XML of an OME-TIFF just written (see ``ImageMeta.ome_xml``).

tifffile writes the pixels' own description (sizes, type, dimension order, TiffData, channel
names); from the stored document come the rest of the Image (description, instrument and
objective settings, stage label, annotation links...), the channels' other attributes and
settings, the Planes (positions, exposure times, DeltaT), and the document's instruments,
experimenters, ROIs and structured annotations (less ome-arrow-core's own checksum annotations,
which are rewritten for the new file). Sizes, type and physical sizes stay as written: they are
the image's, checked against the stored document when it was read.
"""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from typing import Final

from ome_arrow_core.plugin_api import ome_xml_text

from .integrity import NAMESPACE

__all__ = ["carry_stored_ome"]

#: Pixels attributes the written document owns (what tifffile writes and the image's own sizes).
_OWN_PIXELS: Final[frozenset[str]] = frozenset(
    {"ID", "DimensionOrder", "Type", "BigEndian", "Interleaved", "SignificantBits"}
    | {f"Size{a}" for a in "XYZCT"}
    | {f"PhysicalSize{a}{u}" for a in "XYZ" for u in ("", "Unit")}
)
#: Root elements that come before Image in the OME schema (the others, ROI, after StructuredAnnotations).
_BEFORE_IMAGE: Final[frozenset[str]] = frozenset(
    {
        "Rights",
        "Project",
        "Dataset",
        "Folder",
        "Experiment",
        "Plate",
        "Screen",
        "Experimenter",
        "ExperimenterGroup",
        "Instrument",
    }
)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(elem: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in elem if _local(e.tag) == name]


def _retag(elem: ET.Element, old_ns: str, new_ns: str) -> ET.Element:
    """``elem`` (in place) with the elements of namespace ``old_ns`` moved to ``new_ns`` (the written schema)."""
    if old_ns != new_ns:
        prefix = f"{{{old_ns}}}" if old_ns else ""
        for e in elem.iter():
            if isinstance(e.tag, str) and (e.tag.startswith(prefix) if prefix else not e.tag.startswith("{")):
                e.tag = f"{{{new_ns}}}{_local(e.tag)}"
    return elem


def _per_written_channel(stored: list[ET.Element]) -> list[tuple[ET.Element, int]]:
    """Each stored channel once per sample it holds, with that count: an RGB channel (SamplesPerPixel 3) was
    read, and is written, as three one-sample channels."""
    out = []
    for s in stored:
        try:
            n = int(s.get("SamplesPerPixel") or 1)
        except ValueError:
            n = 1
        out += [(s, n)] * max(n, 1)
    return out


def _carry_channels(written: ET.Element, stored: ET.Element) -> None:
    """Each stored channel's attributes and settings onto the written channel(s) it describes: one written
    channel per sample of a stored channel (the written name of such a sample, ``name:k``, stays)."""
    mine = _children(written, "Channel")
    theirs = _per_written_channel(_children(stored, "Channel"))
    if len(mine) != len(theirs):  # samples per pixel told apart differently: names and colours only
        return
    for w, (s, n) in zip(mine, theirs):
        own = {"ID", "SamplesPerPixel"} | ({"Name"} if n > 1 else set())
        for key, value in s.attrib.items():
            if key not in own:
                w.set(key, value)
        for child in list(w):
            w.remove(child)
        w.extend(copy.deepcopy(list(s)))


def _carry_pixels(written: ET.Element, stored: ET.Element) -> None:
    for key, value in stored.attrib.items():
        if key not in _OWN_PIXELS:
            written.set(key, value)
    _carry_channels(written, stored)
    for plane in _children(written, "Plane"):
        written.remove(plane)
    written.extend(_children(stored, "Plane"))


def _carry_image(written: ET.Element, stored: ET.Element) -> None:
    w_pixels, s_pixels = _children(written, "Pixels")[0], _children(stored, "Pixels")[0]
    _carry_pixels(w_pixels, s_pixels)
    if stored.get("ID"):
        written.set("ID", str(stored.get("ID")))
    stored_children = list(stored)
    at = stored_children.index(s_pixels)
    for child in list(written):
        if child is not w_pixels:
            written.remove(child)
    for child in reversed(stored_children[:at]):
        written.insert(0, child)
    written.extend(stored_children[at + 1 :])


def _annotations(stored_root: ET.Element) -> list[ET.Element]:
    """The stored structured annotations, less checksum annotations (they were another file's)."""
    out = []
    for sa in _children(stored_root, "StructuredAnnotations"):
        out += [a for a in sa if a.get("Namespace") != NAMESPACE]
    return out


def carry_stored_ome(written_xml: str, stored_xml: str) -> str:
    """``written_xml`` (one Image, as tifffile wrote it) with what ``stored_xml`` (a one-Image document
    that describes the same pixels) says beyond it; ValueError when either is not such a document."""
    written = ET.fromstring(written_xml.encode("utf-8"))
    stored = ET.fromstring(stored_xml.encode("utf-8"))
    w_images, s_images = _children(written, "Image"), _children(stored, "Image")
    if len(w_images) != 1 or len(s_images) != 1 or not _children(s_images[0], "Pixels"):
        raise ValueError("the OME-XML to carry over is not one Image with Pixels")
    new_ns = written.tag[1:].split("}", 1)[0] if written.tag.startswith("{") else ""
    old_ns = stored.tag[1:].split("}", 1)[0] if stored.tag.startswith("{") else ""
    _retag(stored, old_ns, new_ns)
    _carry_image(w_images[0], s_images[0])
    image_at = list(written).index(w_images[0])
    before = [e for e in stored if _local(e.tag) in _BEFORE_IMAGE]
    after = [e for e in stored if _local(e.tag) == "ROI"]
    for k, elem in enumerate(before):
        written.insert(image_at + k, elem)
    annotations = _annotations(stored)
    if annotations:
        sa = ET.SubElement(written, f"{{{new_ns}}}StructuredAnnotations" if new_ns else "StructuredAnnotations")
        sa.extend(annotations)
    written.extend(after)
    return ome_xml_text(written)
