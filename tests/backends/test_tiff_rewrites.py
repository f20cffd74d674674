"""TIFF files written after they were opened: the pages' IFDs (where each strip and tile lies) were read when the
file was opened, so a file written in place since (or a multi-file OME-TIFF's other file, replaced or written) is
StorageError (ESTALE) at the next read, never the new bytes read at the old places; a file replaced by another
is still read as it was opened."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

tifffile = pytest.importorskip("tifffile")
pytest.importorskip("ome_arrow_tiff", reason="needs ome-arrow-tiff (pip install -e backends/tiff)")

from test_tiff_multifile import write_multifile  # noqa: E402

from ome_arrow_core import OMEArrow  # noqa: E402
from ome_arrow_core.errors import StorageError  # noqa: E402

OLD = np.arange(3 * 32 * 32, dtype=np.uint16).reshape(3, 32, 32)
NEW = OLD[::-1] + 7  # same size and layout, other pixels


def _aged(path: Path) -> Path:
    """``path`` with its modification time a second back (as a file written earlier: a rewrite now gets a new one,
    whatever the clock's granularity)."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))
    return path


def _rewrite_in_place(path: Path, like: Path) -> None:
    """Write ``like``'s bytes over ``path`` in place (same inode), as a program saving over a file does."""
    with open(path, "r+b") as f:
        f.write(like.read_bytes())
        f.truncate()


@pytest.mark.parametrize("options", [{}, {"compression": "zlib"}, {"tile": (16, 16)}], ids=["raw", "zlib", "tiled"])
def test_a_plain_tiff_written_in_place_after_it_was_opened_raises(tmp_path: Path, options: dict[str, object]) -> None:
    path, other = tmp_path / "a.tif", tmp_path / "b.tif"
    tifffile.imwrite(path, OLD, photometric="minisblack", metadata={"axes": "ZYX"}, **options)
    tifffile.imwrite(other, NEW, photometric="minisblack", metadata={"axes": "ZYX"}, **options)
    img = OMEArrow.scan(_aged(path))
    assert np.array_equal(img.tensor_view(z=0, layout="YX").to_numpy(), OLD[0])
    _rewrite_in_place(path, other)
    for read in (img.to_numpy, lambda: img.tensor_view(z=1, layout="YX").to_numpy()):
        with pytest.raises(StorageError, match="written after it was opened") as err:
            read()  # it read the new file's pixels (or a mix of both) at the old IFDs' places
        assert err.value.errno == errno.ESTALE and str(path) in str(err.value)
    assert np.array_equal(OMEArrow.scan(path).tensor_view(layout="ZYX").to_numpy(), NEW)  # opened again: the new


def test_a_plain_tiff_replaced_after_it_was_opened_is_read_as_opened(tmp_path: Path) -> None:
    path, other = tmp_path / "a.tif", tmp_path / "b.tif"
    tifffile.imwrite(path, OLD, photometric="minisblack", metadata={"axes": "ZYX"})
    tifffile.imwrite(other, NEW, photometric="minisblack", metadata={"axes": "ZYX"})
    img = OMEArrow.scan(path)
    os.replace(other, path)
    assert np.array_equal(img.tensor_view(layout="ZYX").to_numpy(), OLD)


@pytest.mark.parametrize("how", ["replaced", "in-place"])
def test_another_file_of_a_multifile_ome_tiff_written_since_raises(tmp_path: Path, how: str) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    first = write_multifile(tmp_path / "old", OLD)
    write_multifile(tmp_path / "new", NEW)
    for file in (tmp_path / "old").iterdir():
        _aged(file)
    img = OMEArrow.scan(first)
    assert np.array_equal(img.tensor_view(z=2, layout="YX").to_numpy(), OLD[2])
    sibling = tmp_path / "old" / "p2.ome.tif"
    if how == "replaced":  # tifffile reopens the other files by name for each read: it read the new one
        shutil.copyfile(tmp_path / "new" / "p2.ome.tif", tmp_path / "x")
        os.replace(tmp_path / "x", sibling)
    else:
        _rewrite_in_place(sibling, tmp_path / "new" / "p2.ome.tif")
    with pytest.raises(StorageError, match="written after it was opened") as err:
        img.tensor_view(z=2, layout="YX").to_numpy()
    assert err.value.errno == errno.ESTALE and "p2.ome.tif" in str(err.value)
    assert np.array_equal(img.tensor_view(z=1, layout="YX").to_numpy(), OLD[1])  # its other files read on


@pytest.mark.parametrize("what", ["view", "image"])
@pytest.mark.parametrize("now", ["fewer rows, more planes", "another dtype"])
def test_a_view_pickled_then_read_after_its_file_was_replaced_by_another_image_raises(
    tmp_path: Path, what: str, now: str
) -> None:
    """A pickled view or image reopens its file where it is unpickled; its selection was planned on the image then.
    A file replaced by 4 planes of 16 rows read plane 1 of 32 rows as rows of planes 1 and 2, stitched, silently."""
    import pickle

    path = tmp_path / "a.tif"
    old = np.arange(2 * 32 * 48, dtype=np.float32).reshape(2, 32, 48)
    tifffile.imwrite(path, old, photometric="minisblack", metadata={"axes": "ZYX"})
    img = OMEArrow.scan(path)
    shipped = pickle.dumps(img.tensor_view(z=1, layout="YX") if what == "view" else img)
    new = (
        np.stack([np.full((16, 48), k, np.float32) for k in range(4)])
        if now.startswith("fewer")
        else np.full((2, 32, 48), 9, np.uint8)
    )
    tifffile.imwrite(tmp_path / "b.tif", new, photometric="minisblack", metadata={"axes": "ZYX"})
    os.replace(tmp_path / "b.tif", path)
    got = pickle.loads(shipped)
    with pytest.raises(StorageError, match=r"a\.tif changed after this image or view was made") as err:
        got.to_numpy()
    assert err.value.errno == errno.ESTALE
    same = pickle.loads(pickle.dumps(OMEArrow.scan(path).tensor_view(z=1, layout="YX")))
    np.testing.assert_array_equal(same.to_numpy(), new[1])  # unchanged since pickled: read
