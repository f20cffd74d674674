"""Which files a typed-chunk dataset is: paths read from its files stay inside it, and its manifest agrees with
the files present (appends reset, deleted, killed or left by a compaction; members listed but missing).

Each dataset is written by our writer, then its manifest, a table or a file is changed as a damaged disk, a buggy
tool or a killed process would leave it. The index's lies about pixels: test_integrity.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from integrity_samples import MANIFEST, SHAPE, appended_sample, edit_table, refused, sample_images, write_sample

from ome_arrow_core import OMEArrowDataset, compact_dataset, write_dataset
from ome_arrow_core.boundary import is_within
from ome_arrow_core.errors import DamagedFileError


# -- paths read from files --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../other/chunks.parquet", "ABSOLUTE", "sub/chunks.parquet", "..", ""])
def test_fragment_paths_must_stay_inside_the_dataset(tmp_path: Path, name: str) -> None:
    """A crafted index would otherwise serve another dataset's pixels."""
    other, _ = write_sample(tmp_path / "other", seed=1)
    root, _ = write_sample(tmp_path / "d")
    target = str(other / "chunks.parquet") if name == "ABSOLUTE" else name
    (root / "sub").mkdir()
    shutil.copy(other / "chunks.parquet", root / "sub" / "chunks.parquet")

    def point(cols: dict[str, list[Any]]) -> None:
        cols["fragment_path"] = [target] * len(cols["fragment_path"])

    edit_table(root / "index.parquet", point)
    if name == "":  # an empty name is the default chunks.parquet (ome-arrow 0.1.0 leaves it null)
        OMEArrowDataset.scan(root).read()
        return
    assert "not a plain file name inside" in refused(root, repr(target))


@pytest.mark.parametrize("key", ["images", "index"])
def test_manifest_append_tables_must_stay_inside_the_dataset(tmp_path: Path, key: str) -> None:
    other, _ = write_sample(tmp_path / "other", seed=1)
    write_dataset(sample_images(1, 2), other, mode="append", chunk_shape=(16, 16), dim_order="CYX")
    root, _ = write_sample(tmp_path / "d")
    write_dataset(sample_images(1, 3), root, mode="append", chunk_shape=(16, 16), dim_order="CYX")
    manifest = json.loads((root / MANIFEST).read_text())
    entry = manifest["ome_arrow_core"]["appends"][0]
    entry[key] = f"../other/{entry[key]}"
    (root / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DamagedFileError, match="not a plain file name inside") as err:
        OMEArrowDataset.scan(root)
    assert MANIFEST in str(err.value) and "../other/" in str(err.value)


@pytest.mark.parametrize("where", ["outside", "inside", "dangling"])
def test_a_member_that_is_a_symlink_counts_where_it_points(tmp_path: Path, where: str) -> None:
    """A chunks file that is a symbolic link is the file it points at: another dataset's is refused, one inside the
    dataset (and a link to nothing, which names no file) is a member like any other."""
    other, _ = write_sample(tmp_path / "other", seed=1)
    root, _ = write_sample(tmp_path / "d")
    target = {"outside": other / "chunks.parquet", "inside": root / "kept.parquet", "dangling": root / "nowhere"}[where]
    if where == "inside":
        shutil.copy(root / "chunks.parquet", target)
    (root / "chunks.parquet").unlink()
    os.symlink(target, root / "chunks.parquet")
    assert is_within(root, "chunks.parquet") is (where != "outside")
    assert is_within(root, "kept.parquet") and is_within(root, "no-such-file")  # plain names, present or not
    if where == "outside":
        with pytest.raises(DamagedFileError, match="'chunks.parquet', which is not a plain file name inside"):
            OMEArrowDataset.scan(root)[0].to_numpy()
    elif where == "inside":
        OMEArrowDataset.scan(root)[0].to_numpy()


def test_manifest_fragments_must_stay_inside_the_dataset(tmp_path: Path) -> None:
    root, _ = write_sample(tmp_path / "d")
    manifest = json.loads((root / MANIFEST).read_text())
    manifest["ome_arrow_core"]["fragments"] = ["/etc/passwd"]
    (root / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DamagedFileError, match="'/etc/passwd', which is not a plain file name"):
        OMEArrowDataset.scan(root)[0].to_numpy()


# -- the manifest against the files present ---------------------------------------------------------
def test_a_manifest_reset_to_its_pre_append_copy_is_refused(tmp_path: Path) -> None:
    root, _, before = appended_sample(tmp_path)
    (root / MANIFEST).write_text(before)
    with pytest.raises(DamagedFileError, match=r"append tables \['images-00001.parquet'\] hold images") as err:
        OMEArrowDataset.scan(root)
    assert str(root) in str(err.value) and MANIFEST in str(err.value)


def test_a_manifest_deleted_after_an_append_is_refused(tmp_path: Path) -> None:
    root, _, _ = appended_sample(tmp_path)
    (root / MANIFEST).unlink()
    with pytest.raises(DamagedFileError, match="does not list"):
        OMEArrowDataset.scan(root)
    with pytest.raises(DamagedFileError, match="does not list"):
        write_dataset(sample_images(1), root, mode="append", chunk_shape=(16, 16), dim_order="CYX")


def test_files_of_a_killed_append_are_ignored(tmp_path: Path) -> None:
    """Killed before its manifest commit: its files and its marker are left, and the dataset is the old one."""
    root, arrs, before = appended_sample(tmp_path)
    (root / MANIFEST).write_text(before)
    (root / ".append-00001.pending").touch()
    np.testing.assert_array_equal(OMEArrowDataset.scan(root).read(layout="CYX"), np.stack(arrs[:2]))
    write_dataset(sample_images(1, 9), root, mode="append", chunk_shape=(16, 16), dim_order="CYX")
    ds = OMEArrowDataset.scan(root)
    assert len(ds) == 3 and (root / ".append-00001.pending").exists() and not (root / ".append-00002.pending").exists()
    np.testing.assert_array_equal(ds.read(layout="CYX"), np.stack([*arrs[:2], *sample_images(1, 9)]))


def test_append_tables_left_by_a_compaction_are_ignored(tmp_path: Path) -> None:
    """A compaction that could not remove an appended table: its images are in images.parquet already."""
    root, arrs, _ = appended_sample(tmp_path)
    kept = (root / "images-00001.parquet").read_bytes()
    compact_dataset(root)
    (root / "images-00001.parquet").write_bytes(kept)
    np.testing.assert_array_equal(OMEArrowDataset.scan(root).read(layout="CYX"), np.stack(arrs))


def test_an_intact_appended_dataset_reads_back(tmp_path: Path) -> None:
    root, arrs, _ = appended_sample(tmp_path)
    ds = OMEArrowDataset.scan(root)
    np.testing.assert_array_equal(ds.read(layout="CYX"), np.stack(arrs))
    np.testing.assert_array_equal(ds[3].tensor_view(layout="CYX").to_numpy(), arrs[3])


def test_an_append_killed_before_its_manifest_leaves_a_readable_dataset(tmp_path: Path) -> None:
    """SIGKILL at the commit point: the append's files and its pending marker stay; readers ignore both."""
    root, arrs = write_sample(tmp_path / "d", n=2)
    script = f"""
import os, signal, numpy as np
from ome_arrow_core import write_dataset
from ome_arrow_core.typed_chunk import append
append.write_manifest = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
write_dataset([np.ones({SHAPE}, np.uint16)], {str(root)!r}, mode="append", chunk_shape=(16, 16), dim_order="CYX")
"""
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ}, capture_output=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    assert (root / "images-00001.parquet").exists() and (root / ".append-00001.pending").exists()
    np.testing.assert_array_equal(OMEArrowDataset.scan(root).read(layout="CYX"), np.stack(arrs))
    (root / ".append-00001.pending").unlink()  # without its marker, the same files mean a lost manifest
    with pytest.raises(DamagedFileError, match="does not list"):
        OMEArrowDataset.scan(root)


def test_a_listed_member_that_is_missing_is_damage(tmp_path: Path) -> None:
    root, _, _ = appended_sample(tmp_path)
    (root / "chunks-00001.parquet").unlink()
    with pytest.raises(DamagedFileError, match="chunks-00001.parquet' in its index, but it is missing"):
        OMEArrowDataset.scan(root).read()
    other, _, _ = appended_sample(tmp_path / "other")
    (other / "index-00001.parquet").unlink()
    with pytest.raises(DamagedFileError, match="lists index table 'index-00001.parquet', but it is missing"):
        OMEArrowDataset.scan(other).read()
