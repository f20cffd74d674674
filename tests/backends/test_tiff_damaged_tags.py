"""TIFF files written by tifffile whose tags were then damaged (a flipped bit in an IFD): the read raises
DamagedFileError naming the file and page, never returns zeros or misdecoded pixels in their place."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

tifffile = pytest.importorskip("tifffile")
pytest.importorskip("ome_arrow_tiff", reason="needs ome-arrow-tiff (pip install -e backends/tiff)")

from ome_arrow_core import OMEArrow  # noqa: E402
from ome_arrow_core.plugin_api import DamagedFileError  # noqa: E402


def planes(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 60000, (3, 64, 64), dtype=np.uint16)


def patch(path: Path, at: int, data: bytes) -> None:
    raw = bytearray(path.read_bytes())
    raw[at : at + len(data)] = data
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("damage", ["offset 0", "offsets as doubles"])
def test_segment_offset_that_is_not_a_byte_position_is_refused(tmp_path: Path, damage: str) -> None:
    """tifffile reads a strip or tile at offset 0 (the header), or at a fractional offset, as zeros."""
    path = tmp_path / "cells.ome.tif"
    tifffile.imwrite(path, planes(), ome=True, tile=(32, 32), compression="zlib", metadata={"axes": "CYX"})
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[2].tags["TileOffsets"]
        entry, value = tag.offset, tag.valueoffset
    if damage == "offset 0":
        patch(path, value, struct.pack("<I", 0))
    else:
        patch(path, entry + 2, struct.pack("<H", 12))  # field type LONG -> DOUBLE
    img = OMEArrow.scan(path)
    assert np.array_equal(img.tensor_view(c=0, layout="YX").to_numpy(), planes()[0])  # undamaged pages read
    with pytest.raises(DamagedFileError, match=r"cells\.ome\.tif: page 2 .*offsets are damaged"):
        img.tensor_view(c=2, layout="YX").to_numpy()
