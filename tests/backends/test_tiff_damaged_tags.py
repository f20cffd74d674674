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


@pytest.mark.parametrize(("compression", "to"), [("zlib", 1), ("lzw", 4)])  # -> none, -> CCITT T.6
def test_damaged_compression_of_the_first_page_is_refused(tmp_path: Path, compression: str, to: int) -> None:
    """tifffile decodes every page of a series with the first page's tags: all planes would be misdecoded."""
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, planes(), compression=compression, photometric="minisblack")
    with tifffile.TiffFile(path) as tif:
        value = tif.pages[0].tags["Compression"].valueoffset
    patch(path, value, struct.pack("<H", to))
    with pytest.raises(DamagedFileError, match=r"cells\.tif: page 2 does not decode like the first page .*compression"):
        OMEArrow.scan(path).to_numpy()


def test_shifted_offset_of_the_first_page_of_a_contiguous_stack_is_refused(tmp_path: Path) -> None:
    """An uncompressed stack is read by offset from its first page: one byte off shifts every plane."""
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, planes(), photometric="minisblack")
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[0].tags["StripOffsets"]
        value, offset = tag.valueoffset, tag.value[0]
    patch(path, value, struct.pack("<I", offset + 1))
    with pytest.raises(DamagedFileError, match=r"cells\.tif: its 3 pages .* page 2 at byte \d+, but its IFD says"):
        OMEArrow.scan(path)


@pytest.mark.parametrize("kwargs", [{}, {"compression": "zlib"}, {"imagej": True}, {"ome": True, "tile": (32, 32)}])
def test_undamaged_stacks_still_read_bit_exact(tmp_path: Path, kwargs: dict[str, object]) -> None:
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, planes(), photometric="minisblack", **kwargs)
    assert np.array_equal(OMEArrow.scan(path).to_numpy().reshape(planes().shape), planes())


@pytest.mark.parametrize("word", [b"channels=3", b"slices=2"])
def test_imagej_description_that_loses_an_axis_is_refused(tmp_path: Path, word: bytes) -> None:
    """tifffile builds an ImageJ series from channels=/slices=/frames=: a damaged one silently dropped planes."""
    path = tmp_path / "stack.tif"
    data = np.random.default_rng(1).integers(0, 60000, (2, 3, 16, 16), dtype=np.uint16)
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "ZCYX"})
    raw = path.read_bytes()
    assert raw.count(word) == 1
    path.write_bytes(raw.replace(word, b"x" + word[1:]))
    with pytest.raises(DamagedFileError, match=r"stack\.tif: its ImageJ description says images=6 but .* planes"):
        OMEArrow.scan(path)


def test_a_series_tifffile_dropped_as_damaged_is_damage_not_out_of_range(tmp_path: Path) -> None:
    """The OME-XML's second image points past the file's IFDs: tifffile drops it (logging why); row=1 must say
    the file is damaged, not that it "holds 1 image series"."""
    path = tmp_path / "two.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as w:
        w.write(planes(), metadata={"axes": "ZYX"})
        w.write(planes(1)[:2], metadata={"axes": "ZYX"})
    raw = path.read_bytes()
    assert raw.count(b'IFD="3"') == 1
    path.write_bytes(raw.replace(b'IFD="3"', b'IFD="9"'))
    with pytest.raises(DamagedFileError, match=r"two\.ome\.tif: .*tifffile reports .*out of range"):
        OMEArrow.scan(path, row=1)
