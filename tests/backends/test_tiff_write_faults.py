"""The OME-TIFF writer killed mid-write: while writing the levels, before or after stamping the checksums.

The pixels and the checksums are written into a temporary beside the target and renamed into
place last (``atomic_path``), so a kill at any of these points leaves the old file, which
still reads with its checksums verified, and the next write leaves nothing behind.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

tifffile = pytest.importorskip("tifffile", reason="needs tifffile (pip install -e backends/tiff)")
pytest.importorskip("ome_arrow_tiff", reason="needs ome-arrow-tiff (pip install -e backends/tiff)")

from ome_arrow_core import OMEArrow  # noqa: E402

CHILD = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    import tifffile
    import ome_arrow_tiff.stamp as stamp
    from ome_arrow_core import OMEArrow

    target, point = sys.argv[1], sys.argv[2]

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "levels":  # the second TiffWriter.write: level 0 written, level 1 not
        write, calls = tifffile.TiffWriter.write, []
        def second(self, *args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                die()
            return write(self, *args, **kwargs)
        tifffile.TiffWriter.write = second
    elif point == "stamp":  # the pixels written, the checksums not yet
        tifffile.tiffcomment = die
    elif point == "stamped":  # the checksums written, the file not yet renamed into place
        add = stamp.add_checksums
        def then_die(path, *edit):
            add(path, *edit)
            die()
        stamp.add_checksums = then_die
    OMEArrow(np.full((2, 40, 36), 9, np.uint16)).export("ome-tiff", target, levels=2)
""")


def old_pixels() -> np.ndarray:
    return np.arange(2 * 40 * 36, dtype=np.uint16).reshape(2, 40, 36)


@pytest.mark.parametrize("point", ["levels", "stamp", "stamped"])
def test_a_write_killed_leaves_the_old_file_and_no_litter_after_the_next(tmp_path: Path, point: str) -> None:
    target = tmp_path / "img.ome.tiff"
    OMEArrow(old_pixels()).export("ome-tiff", target, levels=2)
    before = target.read_bytes()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(target), point], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert target.read_bytes() == before
    img = OMEArrow.scan(target)
    assert img.info()["verified"]
    np.testing.assert_array_equal(img.to_numpy()[0, 0], old_pixels())
    assert OMEArrow(target, level=1).shape == (1, 1, 2, 20, 18)
    new = np.ones((3, 16, 16), np.uint8)
    OMEArrow(new).export("ome-tiff", target)  # the next write removes what the killed one left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.ome.tiff"]
    np.testing.assert_array_equal(OMEArrow(target).to_numpy()[0, 0], new)


def test_an_interrupt_while_stamping_leaves_the_old_file_and_nothing_else(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = tmp_path / "img.ome.tiff"
    OMEArrow(old_pixels()).export("ome-tiff", target)
    before = target.read_bytes()

    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(tifffile, "tiffcomment", interrupt)
    with pytest.raises(KeyboardInterrupt):
        OMEArrow(np.zeros((2, 40, 36), np.uint16)).export("ome-tiff", target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.ome.tiff"]


@pytest.mark.parametrize("out", ["out.ome.tif", "out.tif"])
def test_a_source_damaged_mid_write_raises_and_leaves_the_old_file(tmp_path: Path, out: str) -> None:
    """The writer reads the image a page at a time while tifffile writes: a plane of the source that fails its
    checksum half-way through raises the read's error, the old file stays as it was, and nothing is left beside."""
    from conversion_memory import scanned_source

    from ome_arrow_core.errors import OMEArrowError

    src, _ = scanned_source(tmp_path)
    chunks = src / "chunks.parquet"
    data = bytearray(chunks.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a plane in the middle of the pixel column
    chunks.write_bytes(bytes(data))
    target = tmp_path / "out" / out
    target.parent.mkdir()
    OMEArrow(old_pixels()).export("tiff", target)
    before = target.read_bytes()
    with pytest.raises(OMEArrowError, match="chunks.parquet"):
        OMEArrow.scan(src).export("tiff", target)
    assert target.read_bytes() == before and sorted(p.name for p in target.parent.iterdir()) == [out]
