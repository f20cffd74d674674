"""``cleanup_dataset`` removes the records, value index and row-group lists files no manifest entry names, and nothing else.

They are made from the tables (no data of their own): a killed append leaves its new ones, a replaced table
its old ones. Names are matched exactly: files that only look like ours stay.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from table_records import value_files

from ome_arrow_core import OMEArrowDataset, cleanup_dataset, write_dataset
from ome_arrow_core.typed_chunk.group_lists import LISTS_FILE
from ome_arrow_core.typed_chunk.value_index import VALUES_FILE

OPTS: dict[str, Any] = {"dim_order": "YX", "progress": False}
WELLS = ["A01", "B02", "A01", "C03"]

#: Files that look like ours but are not (a user's notes, a backup, another case or stem): cleanup keeps them.
LOOKALIKES = [
    "_ome_arrow_values.images.0123456789ABCDEF.bin",
    "_ome_arrow_values.images.0123456789abcde.bin",
    "_ome_arrow_values.images.notes.bin",
    "_ome_arrow_values.images.0123456789abcdef.bin.bak",
    "_ome_arrow_values.wells.0123456789abcdef.bin",
    "_ome_arrow_values.images-1.0123456789abcdef.bin",
    "images.records.txt",
    "images-1.records",
    "index-00003.records",
    "images-00003.notes.txt",
    "chunks-00003.parquet.bak",
]


def _plate(root: Path) -> tuple[Path, list[np.ndarray]]:
    arrs = [np.full((6, 8), k, np.uint16) for k in range(len(WELLS))]
    return write_dataset(arrs, root, metadata={"well": WELLS}, **OPTS), arrs


def _ours(root: Path) -> dict[str, Any]:
    return dict(json.loads((root / "_ome_arrow_dataset.json").read_text())["ome_arrow_core"])


def _reads(root: Path) -> tuple[list[np.ndarray], list[int]]:
    ds = OMEArrowDataset.scan(root)
    b02 = OMEArrowDataset.scan(root, filter={"well": "B02"})
    return [ds[i].to_numpy() for i in range(len(ds))], [b02.locate(i).row for i in range(len(b02))]


def test_the_pattern_is_exactly_the_names_we_write(tmp_path: Path) -> None:
    root, _ = _plate(tmp_path / "p")
    write_dataset([np.zeros((6, 8), np.uint16)], root, mode="append", metadata={"well": ["D04"]}, **OPTS)
    names = value_files(root)
    assert len(names) == 2 and all(VALUES_FILE.match(n) for n in names)
    assert not any(VALUES_FILE.match(n) for n in LOOKALIKES)


def test_cleanup_removes_unnamed_records_and_value_indexes_and_keeps_lookalikes(tmp_path: Path) -> None:
    root, arrs = _plate(tmp_path / "p")
    ours = _ours(root)
    assert set(ours["image_records"]) == {"images.parquet"} and set(ours["value_index"]) == {"images.parquet"}
    before = sorted(p.name for p in root.iterdir())
    want = _reads(root)
    (index,) = value_files(root)
    orphans = [
        "_ome_arrow_values.images.0123456789abcdef.bin",  # an older version of the table's
        "_ome_arrow_values.images-00003.fedcba9876543210.bin",  # a killed append's
        "images-00003.records",
    ]
    for name in orphans:
        shutil.copyfile(root / (index if name.endswith(".bin") else "images.records"), root / name)
    for name in LOOKALIKES:
        (root / name).write_text("the user's\n")
    report = cleanup_dataset(root)
    assert sorted(report.removed) == sorted(str(root / n) for n in orphans)
    assert report.kept == []
    assert sorted(p.name for p in root.iterdir()) == sorted([*before, *LOOKALIKES])
    assert all((root / n).read_text() == "the user's\n" for n in LOOKALIKES)
    got = _reads(root)
    assert got[1] == want[1] == [1]
    for a, b, arr in zip(got[0], want[0], arrs, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a[0, 0, 0], arr)
    assert cleanup_dataset(root).removed == []


def test_a_records_file_the_manifest_no_longer_names_is_removed(tmp_path: Path) -> None:
    root, _ = _plate(tmp_path / "p")
    manifest = json.loads((root / "_ome_arrow_dataset.json").read_text())
    del manifest["ome_arrow_core"]["image_records"]  # as a writer that does not know records leaves it
    (root / "_ome_arrow_dataset.json").write_text(json.dumps(manifest))
    report = cleanup_dataset(root)
    assert report.removed == [str(root / "images.records")] and report.kept == []
    assert len(OMEArrowDataset.scan(root)) == len(WELLS)


def test_a_malformed_manifest_section_leaves_every_file(tmp_path: Path) -> None:
    root, _ = _plate(tmp_path / "p")
    (root / "_ome_arrow_values.images.0123456789abcdef.bin").write_bytes(b"x")
    manifest = json.loads((root / "_ome_arrow_dataset.json").read_text())
    manifest["ome_arrow_core"]["value_index"] = ["not", "a", "mapping"]
    (root / "_ome_arrow_dataset.json").write_text(json.dumps(manifest))
    before = sorted(p.name for p in root.iterdir())
    report = cleanup_dataset(root)
    assert report.removed == [] and "could not be read" in report.kept[0]
    assert sorted(p.name for p in root.iterdir()) == before


#: An append of two images, killed (SIGKILL) as it renames its manifest into place: after writing every file.
CHILD = """
import os, signal, sys
import numpy as np
from ome_arrow_core import write_dataset

real = os.replace
def replace(src, dst, *a, **k):
    if os.path.basename(os.fspath(dst)) == "_ome_arrow_dataset.json":
        os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *a, **k)
os.replace = replace
arrs = [np.full((6, 8), 7, np.uint16)] * 2
write_dataset(arrs, sys.argv[1], mode="append", metadata={"well": ["B02", "E05"]}, dim_order="YX", progress=False)
"""


def test_what_an_append_killed_before_its_manifest_left_is_cleaned_and_the_dataset_reads_as_before(
    tmp_path: Path,
) -> None:
    root, _ = _plate(tmp_path / "p")
    before = {p.name: p.read_bytes() for p in root.iterdir()}
    want = _reads(root)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(root)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = sorted(set(p.name for p in root.iterdir()) - set(before))
    assert [n for n in left if VALUES_FILE.match(n)] != []  # the killed append's value index
    assert "images-00001.records" in left and "images-00001.parquet" in left and ".append-00001.pending" in left
    got = _reads(root)  # the files no manifest lists are passed by
    assert got[1] == want[1] and all(np.array_equal(a, b) for a, b in zip(got[0], want[0], strict=True))
    report = cleanup_dataset(root)
    assert sorted(report.removed) == sorted(str(root / n) for n in left) and report.kept == []
    assert {p.name: p.read_bytes() for p in root.iterdir()} == before
    got = _reads(root)
    assert got[1] == want[1] and all(np.array_equal(a, b) for a, b in zip(got[0], want[0], strict=True))
    # the next append writes its own files and reads through them
    write_dataset([np.full((6, 8), 9, np.uint16)], root, mode="append", metadata={"well": ["B02"]}, **OPTS)
    assert OMEArrowDataset.scan(root, filter={"well": "B02"}).table.column("image_id").to_pylist() == [
        "image-00001",
        "image-00004",
    ]
    assert cleanup_dataset(root).removed == [] and len(value_files(root)) == 2


def _listed_plate(root: Path) -> Path:
    """A plate whose row-group lists are in their sidecar (one image a row group: over the split size)."""
    arrs = [np.full((6, 8), k, np.uint16) for k in range(48)]
    wells = [WELLS[k % len(WELLS)] for k in range(48)]
    return write_dataset(arrs, root, metadata={"well": wells}, images_per_group=1, rows_per_group=2, **OPTS)


def test_a_row_group_lists_sidecar_no_manifest_names_is_removed_and_lookalikes_stay(tmp_path: Path) -> None:
    root = _listed_plate(tmp_path / "p")
    (named,) = [p.name for p in root.iterdir() if LISTS_FILE.match(p.name)]
    assert _ours(root)["group_lists"]["file"] == named
    before = {p.name: p.read_bytes() for p in root.iterdir()}
    want = _reads(root)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(root)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = sorted(set(p.name for p in root.iterdir()) - set(before))
    assert [n for n in left if LISTS_FILE.match(n)] != []  # the killed append's sidecar
    lookalikes = ["_ome_arrow_groups.0123456789ABCDEF.json", "_ome_arrow_groups.notes.json", named + ".bak"]
    for name in lookalikes:
        (root / name).write_text("the user's\n")
    report = cleanup_dataset(root)
    assert sorted(report.removed) == sorted(str(root / n) for n in left) and report.kept == []
    assert {p.name: p.read_bytes() for p in root.iterdir() if p.name not in lookalikes} == before
    assert all((root / n).read_text() == "the user's\n" for n in lookalikes)
    got = _reads(root)
    assert got[1] == want[1] and all(np.array_equal(a, b) for a, b in zip(got[0], want[0], strict=True))


def test_a_malformed_lists_entry_leaves_every_file(tmp_path: Path) -> None:
    root = _listed_plate(tmp_path / "p")
    (root / "_ome_arrow_groups.0123456789abcdef.json").write_bytes(b"{}")
    manifest = json.loads((root / "_ome_arrow_dataset.json").read_text())
    manifest["ome_arrow_core"]["group_lists"]["file"] = 7
    (root / "_ome_arrow_dataset.json").write_text(json.dumps(manifest))
    before = sorted(p.name for p in root.iterdir())
    report = cleanup_dataset(root)
    assert report.removed == [] and "could not be read" in report.kept[0]
    assert sorted(p.name for p in root.iterdir()) == before
