"""The manifest parsed once per file version and shared by the readers (scan, open): a manifest replaced or
rewritten after a first read is read again, so its damage and lies are refused as on a first read."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from table_digests import without_image_records

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_core.errors import ChecksumError, DamagedFileError, SchemaError
from ome_arrow_core.typed_chunk import read_manifest, shared_manifest

MANIFEST = "_ome_arrow_dataset.json"


def _plate(root: Path, n: int = 7) -> Path:
    images = (np.full((1, 4, 4), i, dtype=np.uint16) for i in range(n))
    return write_dataset(images, root, dim_order="ZYX", images_per_group=3, progress=False)


def _replace(root: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` as a writer does: a new file renamed over the old (a new inode)."""
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest))
    os.replace(tmp, root / MANIFEST)


def test_one_parse_per_version_shared_by_scan_and_open(tmp_path: Path) -> None:
    root = _plate(tmp_path / "p")
    first = shared_manifest(root)
    assert first == read_manifest(root)
    assert shared_manifest(root) is first  # the same version: not parsed again
    ds = OMEArrowDataset.scan(root)
    assert ds[3].to_numpy().max() == 3
    assert shared_manifest(root) is first


def test_a_replaced_manifest_is_read_again(tmp_path: Path) -> None:
    root = _plate(tmp_path / "p")
    first = shared_manifest(root)
    changed = read_manifest(root)
    changed["note"] = "rewritten"
    _replace(root, changed)
    again = shared_manifest(root)
    assert again is not first and again["note"] == "rewritten"


@pytest.mark.parametrize("table", ["images.parquet", "index.parquet"])
def test_a_lying_manifest_written_after_a_read_is_refused(tmp_path: Path, table: str) -> None:
    """A footer that passed against one manifest is checked again against a replaced manifest that records another
    digest for it (the same bytes, a lying record): refused before any pixel is returned."""
    root = _plate(tmp_path / "p")
    ds = OMEArrowDataset.scan(root)
    assert ds[6].to_numpy().max() == 6  # every check passed, remembered in this process
    lying = read_manifest(root)
    entry = lying["ome_arrow_core"]["table_groups_packed"][table]
    entry["sums"] = entry["sums"][:-16] + "0123456789abcdef"  # the footer's recorded digest: a lie
    _replace(root, lying)
    with pytest.raises(ChecksumError, match="footer"):
        OMEArrowDataset.scan(root)[0].to_numpy()
    with pytest.raises(ChecksumError, match="footer"):
        ds[6].to_numpy()  # the dataset opened before the lie: its next image opens through the new manifest


def test_a_lying_row_group_digest_written_after_a_read_is_refused(tmp_path: Path) -> None:
    root = without_image_records(_plate(tmp_path / "p"))  # images from their row groups (records: below's analog)
    assert OMEArrowDataset.scan(root)[0].to_numpy().max() == 0  # row group 0 of each table checked
    lying = read_manifest(root)
    entry = lying["ome_arrow_core"]["table_groups_packed"]["images.parquet"]
    entry["sums"] = "0123456789abcdef" + entry["sums"][16:]  # row group 0's recorded digest: a lie
    _replace(root, lying)
    with pytest.raises(ChecksumError, match="row group 0"):
        OMEArrowDataset.scan(root)[0].to_numpy()


def test_a_manifest_damaged_in_place_after_a_read_is_refused(tmp_path: Path) -> None:
    root = _plate(tmp_path / "p")
    shared_manifest(root)
    text = (root / MANIFEST).read_bytes()
    with open(root / MANIFEST, "r+b") as fh:  # same inode; its size and times change
        fh.write(b"{" + b"x" * 40)
    with pytest.raises(DamagedFileError, match="not valid UTF-8 JSON"):
        shared_manifest(root)
    (root / MANIFEST).write_bytes(text)
    assert shared_manifest(root)["image_count"] == 7


def test_a_missing_manifest_is_none_kept(tmp_path: Path) -> None:
    root = _plate(tmp_path / "p")
    shared_manifest(root)
    (root / MANIFEST).unlink()
    assert shared_manifest(root) == {}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_manifest_is_refused_unopened(tmp_path: Path) -> None:
    root = _plate(tmp_path / "p")
    (root / MANIFEST).unlink()
    os.mkfifo(root / MANIFEST)
    with pytest.raises((SchemaError, DamagedFileError, OSError), match="FIFO|fifo|regular"):
        shared_manifest(root)
