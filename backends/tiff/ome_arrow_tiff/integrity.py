"""Checksums of an OME-TIFF's strips and tiles, stored in its OME-XML, checked on read.

What we write carries one XXH3-64 checksum per strip or tile of every page (every pyramid
level too), in a ``MapAnnotation`` of the OME-XML's ``StructuredAnnotations`` with the
namespace :data:`NAMESPACE`; other readers ignore it. A checksum covers the segment's
*decoded* samples (little-endian, C order, in the shape tifffile decodes it: a strip is its
rows, a tile is the whole tile with its padding), so it also catches damage to the tags that
say how to decode (compression, predictor, strip rows). The annotation's entries:

- ``format`` (``"1"``), ``algorithm`` (``"xxh3_64"``), ``image`` (the Image index),
  ``dtype``, ``uuid`` (the OME document's ``UUID``: a copy of the annotation in another
  file, e.g. one converted by another program, does not apply there and is ignored);
- ``level L``: that level's sizes, ``"T=1 Z=2 C=3 Y=100 X=70"``;
- ``level L plane K``: the checksums (16 hex digits each, space-separated) of the segments
  of the page holding canonical plane ``K = (t * Z + z) * C + c`` of level ``L``.

Keying by canonical plane, not by page, means a file whose OME-XML was edited to map the
planes to other pages (``DimensionOrder``, ``TiffData``) fails the check too.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import PurePath
from typing import Any, Final

import numpy as np

from ome_arrow_core.plugin_api import (
    CHECKSUM_ALGORITHM,
    ChunkChecksums,
    DamagedFileError,
    checksums_of,
    to_hex,
)

__all__ = [
    "NAMESPACE",
    "SOFTWARE",
    "annotated",
    "find_annotation",
    "written_by_us",
    "LevelChecksums",
    "TiffChecksums",
    "annotate",
    "find_checksums",
    "le_bytes",
    "page_checksums",
    "segment_checksum",
]

NAMESPACE: Final[str] = "urn:ome-arrow-core:tiff-checksums:1"
#: The ``Software`` tag of the OME-TIFFs we write: such a file must be OME and carry checksums,
#: so a flip that hides its OME-XML (the ImageDescription tag's code or offset) is caught.
SOFTWARE: Final[str] = "ome-arrow-core"
_ANNOTATION_ID: Final[str] = "Annotation:ome-arrow-core-checksums:"
_PLANE = re.compile(r"level (\d+) plane (\d+)")
_LEVEL = re.compile(r"level (\d+)")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def le_bytes(arr: np.ndarray) -> np.ndarray:
    """The samples of ``arr`` as little-endian bytes, C order (a view when already so)."""
    little = arr.dtype.byteorder == "<" or (arr.dtype.byteorder == "=" and sys.byteorder == "little")
    if arr.dtype.itemsize > 1 and not little:
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return np.ascontiguousarray(arr).reshape(-1).view(np.uint8)


def segment_checksum(seg: np.ndarray) -> int:
    """The checksum of one decoded strip or tile."""
    data = le_bytes(seg)
    return int(checksums_of(data, np.array([0, data.size], dtype=np.int64))[0])


def _sizes_text(sizes: Mapping[str, int]) -> str:
    return " ".join(f"{a}={int(sizes[a])}" for a in "TZCYX")


@dataclass(frozen=True)
class TiffChecksums:
    """The checksums one annotation stores for one image: per level, per canonical plane, per segment."""

    path: PurePath
    algorithm: str
    uuid: str
    dtype: str
    sizes: dict[int, dict[str, int]]
    planes: dict[tuple[int, int], tuple[int, ...]]

    def for_level(self, level: int, sizes: Mapping[str, int], dtype: np.dtype) -> LevelChecksums:
        """The checks of ``level``, after comparing its sizes and dtype with what the annotation recorded."""
        recorded = self.sizes.get(level)
        if recorded is None:
            raise DamagedFileError(
                f"{self.path}: its checksum annotation has no entry for pyramid level {level}; "
                "the annotation is damaged (read with verify=False to skip the check)"
            )
        if any(recorded[a] != sizes[a] for a in "TZCYX") or self.dtype != np.dtype(dtype).name:
            raise DamagedFileError(
                f"{self.path}: its checksum annotation records level {level} as {_sizes_text(recorded)} "
                f"{self.dtype} but the file's pages hold {_sizes_text(sizes)} {np.dtype(dtype).name}; "
                "the file's metadata or its annotation is damaged"
            )
        n = recorded["T"] * recorded["Z"] * recorded["C"]
        missing = [k for k in range(n) if (level, k) not in self.planes]
        if missing:
            raise DamagedFileError(
                f"{self.path}: its checksum annotation lacks plane(s) {missing[:5]} of level {level}; "
                "the annotation is damaged"
            )
        return LevelChecksums(self, level, n)


class LevelChecksums:
    """The checks of one pyramid level's segments, with the core's checksum error messages."""

    def __init__(self, sums: TiffChecksums, level: int, planes: int) -> None:
        import pyarrow as pa

        self.path = sums.path
        self.level = level
        self.first = np.zeros(planes + 1, dtype=np.int64)
        values: list[int] = []
        for k in range(planes):
            values.extend(sums.planes[(level, k)])
            self.first[k + 1] = len(values)
        self._values = np.array(values, dtype=np.uint64)
        self._sums = ChunkChecksums(pa.array(values, pa.uint64()), sums.algorithm, str(sums.path))
        self._native = sums.algorithm == CHECKSUM_ALGORITHM  # checksums_of computes it: one call per plane

    def segments(self, plane: int) -> int:
        """How many segments the page of ``plane`` must have."""
        return int(self.first[plane + 1] - self.first[plane])

    def require_segments(self, plane: int, count: int, where: str) -> None:
        """Refuse a page whose segment count differs from the annotation's."""
        if count != self.segments(plane):
            raise DamagedFileError(
                f"{self.path}: {where} has {count} strips or tiles but its checksum annotation lists "
                f"{self.segments(plane)}; the file's tags or its annotation are damaged"
            )

    def verify_strips(
        self, plane: int, computed: np.ndarray, rows: np.ndarray, per: int, where: Callable[[int], str]
    ) -> None:
        """Compare the checksums ``computed`` (with :func:`segment_checksum`) of the strips of a whole plane
        ``rows`` (Y, X; ``per`` rows a strip) with the stored ones; raise for the first that differs."""
        first, last = int(self.first[plane]), int(self.first[plane + 1])
        if self._native and np.array_equal(computed, self._values[first:last]):
            return
        for j in range(last - first):  # find the damaged strip (or an algorithm this version lacks)
            self.check(plane, j, rows[j * per : (j + 1) * per], partial(where, j))

    def check(self, plane: int, index: int, seg: np.ndarray | None, where: Callable[[], str]) -> None:
        """Raise ChecksumError unless decoded segment ``index`` of ``plane`` matches its checksum."""
        if seg is None:
            raise DamagedFileError(f"{self.path}: {where()} is missing (no bytes stored); the file is damaged")
        data = le_bytes(seg)
        self._sums.check(int(self.first[plane]) + index, data, 0, data.size, lambda: (str(self.path), where()))


def _map_values(annotation: ET.Element) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in annotation:
        if _local(value.tag) != "Value":
            continue
        for m in value:
            if _local(m.tag) == "M" and m.get("K") is not None:
                out[str(m.get("K"))] = (m.text or "").strip()
    return out


def _annotations(root: ET.Element) -> Iterator[dict[str, str]]:
    for sa in root:
        if _local(sa.tag) != "StructuredAnnotations":
            continue
        for ann in sa:
            if _local(ann.tag) == "MapAnnotation" and ann.get("Namespace") == NAMESPACE:
                yield _map_values(ann)


def _parse(entries: dict[str, str], path: PurePath) -> TiffChecksums:
    def bad(what: str) -> DamagedFileError:
        return DamagedFileError(
            f"{path}: its checksum annotation ({NAMESPACE}) is damaged: {what}; "
            "read with verify=False to skip the check"
        )

    sizes: dict[int, dict[str, int]] = {}
    planes: dict[tuple[int, int], tuple[int, ...]] = {}
    for key, text in entries.items():
        plane = _PLANE.fullmatch(key)
        level = _LEVEL.fullmatch(key)
        try:
            if plane:
                values = tuple(int(v, 16) for v in text.split())
                if not values or any(len(v) != 16 for v in text.split()):
                    raise ValueError(text[:40])
                planes[(int(plane.group(1)), int(plane.group(2)))] = values
            elif level:
                parts = dict(p.split("=", 1) for p in text.split())
                sizes[int(level.group(1))] = {a: int(parts[a]) for a in "TZCYX"}
        except (ValueError, KeyError) as exc:
            raise bad(f"entry {key!r} is {text[:60]!r} ({exc})") from None
    for key in ("algorithm", "dtype", "uuid"):
        if not entries.get(key):
            raise bad(f"entry {key!r} is missing")
    return TiffChecksums(path, entries["algorithm"], entries["uuid"], entries["dtype"], sizes, planes)


def written_by_us(tif: Any) -> bool:
    """True when the first page's ``Software`` tag says ome-arrow-core wrote the file (with checksums)."""
    return str(getattr(tif.pages.first, "software", "") or "") == SOFTWARE


def annotated(root: ET.Element | None) -> bool:
    """True when the OME-XML ``root`` holds a checksum annotation (for any image, of any file)."""
    return root is not None and any(True for _ in _annotations(root))


def find_annotation(root: ET.Element | None, image: int) -> dict[str, str] | None:
    """The entries of this file's checksum annotation for Image ``image``; None without (or for another file's)."""
    if root is None:
        return None
    for entries in _annotations(root):
        if entries.get("image", "0") != str(image):
            continue
        if entries.get("uuid") != root.get("UUID"):
            return None  # copied from another file by a program that rewrote it: not this file's bytes
        return entries
    return None


def find_checksums(root: ET.Element | None, image: int, path: PurePath) -> TiffChecksums | None:
    """The checksums the OME-XML ``root`` stores for Image ``image``; None without (or for another file's)."""
    entries = find_annotation(root, image)
    return None if entries is None else _parse(entries, path)


def annotate(
    xml: str, image: int, uuid: str, dtype: str, levels: Sequence[tuple[Mapping[str, int], Sequence[Sequence[int]]]]
) -> str:
    """``xml`` with a checksum annotation for Image ``image``: per level, its sizes and per-plane segment checksums."""
    entries: dict[str, str] = {
        "format": "1",
        "algorithm": CHECKSUM_ALGORITHM,
        "image": str(image),
        "dtype": dtype,
        "uuid": uuid,
    }
    for level, (sizes, planes) in enumerate(levels):
        entries[f"level {level}"] = _sizes_text(sizes)
        for plane, values in enumerate(planes):
            entries[f"level {level} plane {plane}"] = " ".join(to_hex(v) for v in values)
    ann = ET.Element("MapAnnotation", {"ID": f"{_ANNOTATION_ID}{image}", "Namespace": NAMESPACE})
    value = ET.SubElement(ann, "Value")
    for key, text in entries.items():
        ET.SubElement(value, "M", {"K": key}).text = text
    element = ET.tostring(ann, encoding="unicode")
    end = xml.rfind("</OME>")
    if end < 0 or xml.count("<StructuredAnnotations") != xml.count("</StructuredAnnotations>") or "<ome:" in xml:
        raise ValueError("the OME-XML to annotate does not end as tifffile (or the stored OME-XML carried) writes it")
    if "</StructuredAnnotations>" in xml:  # carried from the image's stored OME-XML: one more annotation
        at = xml.rfind("</StructuredAnnotations>")
        return f"{xml[:at]}{element}{xml[at:]}"
    roi = re.search(r"<ROI[\s>/]", xml)  # ROIs follow the annotations in the OME schema
    at = roi.start() if roi else end
    return f"{xml[:at]}<StructuredAnnotations>{element}</StructuredAnnotations>{xml[at:]}"


def page_checksums(page: Any) -> tuple[list[int], np.ndarray]:
    """The checksums of every decoded strip or tile of a tifffile page (used when writing), and the page decoded
    (shaped ``(S, D, Y, X, S)``)."""
    from .segments import read_segments, segment_geometry

    kf = page.keyframe
    out: list[int] = [0] * len(page.dataoffsets)

    def record(i: int, seg: np.ndarray | None) -> None:
        if seg is None:
            raise ValueError(f"segment {i} of a page just written is empty")
        out[i] = segment_checksum(seg)

    decoded, _, _ = read_segments(page, segment_geometry(kf), (0, kf.imagelength, 0, kf.imagewidth), kf.dtype, record)
    return out, decoded
