"""Which checksums a TIFF source checks: those its OME-XML holds, and none missing from a file we wrote."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from ome_arrow_core.plugin_api import DamagedFileError, verify_enabled

from .damage import ome_root
from .integrity import TiffChecksums, annotated, find_annotation, find_checksums, written_by_us

__all__ = ["FoundChecksums", "load_checksums", "segment_name"]


@dataclass(frozen=True)
class FoundChecksums:
    """The checksums to check (None: verification off, or the file has none) and whether the file has any."""

    checksums: TiffChecksums | None
    present: bool


def load_checksums(tif: Any, kind: str, series: int, path: PurePath, verify: bool | None) -> FoundChecksums:
    """The checksums of image ``series`` (a tifffile series of ``kind``) of ``tif``.

    DamagedFileError when ome-arrow-core wrote the file (its Software tag says so) but its OME-XML or
    checksum annotation is gone. With verification off the annotation is only looked for, not parsed.
    """
    ours = written_by_us(tif)
    if ours and kind != "ome":
        raise DamagedFileError(
            f"{path}: ome-arrow-core wrote it as an OME-TIFF (its Software tag says so) but tifffile finds "
            f"no usable OME-XML in it (it reads a {kind!r} series); its ImageDescription is damaged"
        )
    root = ome_root(tif) if kind == "ome" else None
    if not verify_enabled(verify):  # the annotation is not even parsed
        return FoundChecksums(None, find_annotation(root, series) is not None)
    checksums = find_checksums(root, series, path)
    if checksums is None and ours and not annotated(root):
        raise DamagedFileError(
            f"{path}: ome-arrow-core wrote it with checksums (its Software tag says so) but its OME-XML "
            "holds no checksum annotation; the OME-XML is damaged (read with verify=False to skip the check)"
        )
    return FoundChecksums(checksums, checksums is not None)


def segment_name(sizes: Mapping[str, int], tiled: bool, level: int, page: int, plane: int, segment: int) -> str:
    """Strip or tile ``segment`` of canonical ``plane`` (``(t * Z + z) * C + c``) in page ``page``, in words."""
    n_z, n_c = sizes["Z"], sizes["C"]
    t, rest = divmod(plane, n_z * n_c)
    kind = "tile" if tiled else "strip"
    where = f" of pyramid level {level}" if level else ""
    return f"{kind} {segment} of plane t={t} z={rest // n_c} c={rest % n_c}{where} (page {page})"
