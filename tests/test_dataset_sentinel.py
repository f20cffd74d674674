"""The note file that makes a plain Parquet reader refuse a dataset directory instead of unioning its tables."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_core.errors import UnsafeOverwriteError
from ome_arrow_core.safe_write import SENTINEL

IMAGES = [np.full((2, 8, 8), i, np.uint16) for i in range(3)]


def _write(path: Path, mode: str = "create") -> Path:
    return write_dataset(IMAGES, path, dim_order="CYX", progress=False, mode=mode)


def test_read_table_on_the_directory_fails_naming_the_note(tmp_path: Path) -> None:
    out = _write(tmp_path / "plate.ome.parquet")
    assert "OMEArrowDataset.scan" in (out / SENTINEL).read_text()
    with pytest.raises(pa.ArrowInvalid, match=SENTINEL):
        pq.read_table(out)
    assert pq.read_table(out / "images.parquet").num_rows == 3  # one member by name still reads


def test_the_note_is_ours_readers_ignore_it_and_overwrite_replaces_it(tmp_path: Path) -> None:
    out = _write(tmp_path / "plate.ome.parquet")
    ds = OMEArrowDataset.scan(out)
    np.testing.assert_array_equal(ds.read(), np.stack(IMAGES))
    _write(out, mode="overwrite")  # the note is one of our member names, not a foreign file
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UnsafeOverwriteError, match=r"notes\.txt"):
        _write(out, mode="overwrite")
    assert (out / "notes.txt").read_text() == "mine"


def test_the_reference_package_reads_a_dataset_with_the_note(tmp_path: Path) -> None:
    ref = pytest.importorskip("ome_arrow.dataset")
    out = _write(tmp_path / "plate.ome.parquet")
    ds = ref.OMEArrowDataset(str(out))
    got = np.stack([np.asarray(ds.read_image(i))[0, :, 0] for i in ds.image_ids])
    np.testing.assert_array_equal(got, np.stack(IMAGES))


def test_an_older_dataset_gets_the_note_at_its_next_append(tmp_path: Path) -> None:
    out = _write(tmp_path / "plate.ome.parquet")
    (out / SENTINEL).unlink()  # as written before the note existed
    _write(out, mode="append")
    assert (out / SENTINEL).is_file() and len(OMEArrowDataset.scan(out)) == 6


def test_a_write_killed_before_its_commit_leaves_no_note_behind(tmp_path: Path) -> None:
    """SIGKILL inside the new dataset's temporary directory: the target never appears, note or not."""
    out = tmp_path / "plate.ome.parquet"
    code = f"""
import os, signal, numpy as np
from ome_arrow_core.typed_chunk import write_steps
real = write_steps.write_manifest
def killed(root, *a, **k):
    os.kill(os.getpid(), signal.SIGKILL)
write_steps.write_manifest = killed
import ome_arrow_core.typed_chunk.writer as w
w.write_manifest = killed
from ome_arrow_core import write_dataset
write_dataset([np.zeros((2, 8, 8), np.uint16)], {str(out)!r}, dim_order="CYX", progress=False)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not os.path.lexists(out)
