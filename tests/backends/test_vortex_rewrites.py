"""A Vortex image written in place while a stream reads it raises StorageError: never another file's pixels (vortex
maps the file into memory, and each row's checksum is stored next to its pixels), never a crashed process (a mapped
file cut short is a SIGBUS). A file replaced by another (a new inode) keeps being read as it was opened."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("vortex", reason="needs vortex-data (pip install -e backends/vortex)")
pytest.importorskip("ome_arrow_vortex", reason="needs ome-arrow-vortex (pip install -e backends/vortex)")

from ome_arrow_core import OMEArrow, write_dataset
from ome_arrow_core.errors import StorageError

SHAPE = (1, 1, 4, 256, 256)  # TCZYX: 256 tiles of 32x32, streamed in groups of 64 (iteration.GROUP_ITEMS)


def written(path: Path, seed: int) -> np.ndarray:
    """An image written to ``path`` as Vortex, its modification time a second back (as a file written earlier: a
    rewrite now gets a new one, whatever the clock's granularity)."""
    a = np.random.default_rng(seed).integers(0, 60000, SHAPE).astype(np.uint16)
    OMEArrow(a, "TCZYX").export("vortex", path)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))
    return a


@pytest.mark.parametrize("memory_map", [True, False])
def test_a_file_rewritten_in_place_mid_stream_raises(tmp_path: Path, memory_map: bool) -> None:
    path, other = tmp_path / "a.vortex", tmp_path / "b.vortex"
    a = written(path, 1)
    written(other, 2)  # the same size and layout: only its pixels differ
    view = OMEArrow.scan(path, memory_map=memory_map).tensor_view(layout="ZYX")
    got = 0
    with pytest.raises(StorageError, match="was written in place after it was opened"):
        for index, tile in view.iter_tiles_3d((1, 32, 32), with_index=True):
            np.testing.assert_array_equal(np.from_dlpack(tile), a[0, 0][index])  # never the other file's pixels
            got += 1
            if got == 1:
                path.write_bytes(other.read_bytes())
    assert got <= 64  # the first group's


def test_a_file_replaced_mid_stream_is_read_as_it_was_opened(tmp_path: Path) -> None:
    path, other = tmp_path / "a.vortex", tmp_path / "b.vortex"
    a = written(path, 1)
    written(other, 2)
    view = OMEArrow.scan(path).tensor_view(layout="ZYX")
    out = np.zeros_like(a[0, 0])
    for i, (index, tile) in enumerate(view.iter_tiles_3d((1, 32, 32), with_index=True)):
        out[index] = np.from_dlpack(tile)
        if i == 0:
            os.replace(other, path)
    np.testing.assert_array_equal(out, a[0, 0])


def test_a_file_cut_short_mid_stream_raises_instead_of_crashing(tmp_path: Path) -> None:
    """In a child process: before the check, the read of the mapped bytes past the new end killed it (SIGBUS)."""
    path = tmp_path / "a.vortex"
    written(path, 3)
    code = (
        "import os, sys\n"
        "from ome_arrow_core import OMEArrow\n"
        "from ome_arrow_core.errors import StorageError\n"
        "path = sys.argv[1]\n"
        "try:\n"
        "    for i, tile in enumerate(OMEArrow.scan(path).tensor_view(layout='ZYX').iter_tiles_3d((1, 32, 32))):\n"
        "        if i == 0:\n"
        "            os.truncate(path, os.path.getsize(path) // 2)\n"
        "except StorageError as exc:\n"
        "    print('StorageError', exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "StorageError" in done.stdout and "bytes then" in done.stdout


def test_a_datasets_chunk_file_cut_short_mid_stream_raises_instead_of_crashing(tmp_path: Path) -> None:
    """``chunks.vortex`` of a dataset, as an image file (in a child process: before the check, a SIGBUS)."""
    arrs = [np.random.default_rng(i).integers(0, 60000, SHAPE[2:]).astype(np.uint16) for i in range(3)]
    out = write_dataset(arrs, tmp_path / "d", dim_order="ZYX", chunk_format="vortex", chunk_shape=(32, 32))
    code = (
        "import os, sys\n"
        "from ome_arrow_core import OMEArrowDataset\n"
        "from ome_arrow_core.errors import StorageError\n"
        "chunks = os.path.join(sys.argv[1], 'chunks.vortex')\n"
        "view = OMEArrowDataset.scan(sys.argv[1])[1].tensor_view(layout='ZYX')\n"
        "try:\n"
        "    for i, tile in enumerate(view.iter_tiles_3d((1, 32, 32))):\n"
        "        if i == 0:\n"
        "            os.truncate(chunks, os.path.getsize(chunks) // 3)\n"
        "except StorageError as exc:\n"
        "    print('StorageError', exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "StorageError" in done.stdout and "[chunks.vortex] was written in place" in done.stdout
