"""compact_dataset: appended chunk files and tables merged into chunks/images/index.parquet, streamed and atomic."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from table_records import value_files

from ome_arrow_core import OMEArrowDataset, SchemaError, cleanup_dataset, compact_dataset, write_dataset
from ome_arrow_core.safe_write import atomic
from ome_arrow_core.typed_chunk import compact, packing


def _images(n: int, seed: int, dtype: str = "uint16") -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    if dtype == "float32":
        return [rng.standard_normal((2, 20, 30)).astype(np.float32) for _ in range(n)]
    return [rng.integers(0, 65535, (2, 20, 30), dtype=np.uint16) for _ in range(n)]


def _appended(tmp: Path, **kw: Any) -> tuple[Path, list[np.ndarray]]:
    """A dataset of 3 images plus two appends (2 and 2 images, a new metadata column)."""
    arrs = _images(7, seed=0)
    out = write_dataset(
        arrs[:3], tmp / "plate", dim_order="CYX", metadata={"well": ["A1", "A2", "A3"]}, progress=False, **kw
    )
    write_dataset(
        arrs[3:5],
        out,
        dim_order="CYX",
        mode="append",
        metadata={"well": ["B1", "B2"], "dose": [1.0, 2.0]},
        progress=False,
        **kw,
    )
    write_dataset(arrs[5:], out, dim_order="CYX", mode="append", metadata={"well": ["C1", "C2"]}, progress=False, **kw)
    return out, arrs


def _files(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.iterdir())}


def _groups(file: Path) -> list[list[str]]:
    pf = pq.ParquetFile(file)
    return [pf.read_row_group(g, columns=["image_id"]).column(0).to_pylist() for g in range(pf.num_row_groups)]


@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"chunk_shape": (8, 16), "rows_per_group": 5, "compression": "zstd"},  # 12 chunks per image: partial groups
        {"chunk_shape": (16, 16), "rows_per_group": 2, "compression": None},
    ],
)
def test_compact_merges_fragments_keeping_pixels_metadata_and_row_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opts: dict[str, Any]
) -> None:
    out, arrs = _appended(tmp_path, **opts)
    ds = OMEArrowDataset.scan(out)
    table, metas = ds.table, [ds[i].meta for i in range(len(ds))]
    index = pa.concat_tables(
        pq.read_table(out / n) for n in ["index.parquet", "index-00001.parquet", "index-00002.parquet"]
    )
    names = ["chunks.parquet", "chunks-00001.parquet", "chunks-00002.parquet"]
    groups = [g for n in names for g in _groups(out / n)]
    codec = pq.ParquetFile(out / "chunks.parquet").metadata.row_group(0).column(13).compression
    monkeypatch.setattr(packing, "BATCH_BYTES", 3000)  # several batches of row groups per file

    assert compact_dataset(out) == names
    assert len(value_files(out)) == 1  # the merged table's value index (the old ones removed)
    assert sorted(p.name for p in out.iterdir()) == [
        "THIS-IS-AN-OME-ARROW-DATASET.txt",
        "_ome_arrow_dataset.json",
        *value_files(out),
        "chunks.parquet",
        "images.parquet",
        "index.parquet",
    ]
    assert pq.read_table(out / "images.parquet").column("well").to_pylist() == [
        "A1",
        "A2",
        "A3",
        "B1",
        "B2",
        "C1",
        "C2",
    ]
    ds = OMEArrowDataset.scan(out)
    assert ds.table.equals(table) and [ds[i].meta for i in range(len(ds))] == metas
    np.testing.assert_array_equal(ds.read(), np.stack(arrs))
    assert _groups(out / "chunks.parquet") == groups  # the same row groups, in the same order
    assert pq.ParquetFile(out / "chunks.parquet").metadata.row_group(0).column(13).compression == codec
    new = pq.read_table(out / "index.parquet")
    assert new.column("chunk_id").equals(index.column("chunk_id"))
    assert set(new.column("fragment_path").to_pylist()) == {"chunks.parquet"}
    pf = pq.ParquetFile(out / "chunks.parquet")
    for row in new.to_pylist():
        group = pf.read_row_group(row["row_group_id"], columns=["chunk_id"]).column(0).to_pylist()
        assert group[row["row_index_in_group"]] == row["chunk_id"]
    manifest = json.loads((out / "_ome_arrow_dataset.json").read_text())
    assert manifest["ome_arrow_core"]["fragments"] == ["chunks.parquet"] and "appends" not in manifest["ome_arrow_core"]
    assert manifest["ome_arrow_core"]["format_version"] == 1 and manifest["image_count"] == 7
    assert manifest["ome_arrow_core"]["rows_per_group"] == opts.get("rows_per_group", 1)

    write_dataset(_images(1, seed=9), out, dim_order="CYX", mode="append", progress=False, **opts)  # appends go on
    assert len(OMEArrowDataset.scan(out)) == 8


def test_compact_reads_one_batch_of_row_groups_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, arrs = _appended(tmp_path, chunk_shape=(8, 16))  # 12 chunks of 256 bytes per image
    monkeypatch.setattr(packing, "BATCH_BYTES", 2000)
    seen: list[int] = []
    real = compact._write_groups

    def spy(table: Any, rows: list[int], *args: Any) -> None:
        seen.append(table.num_rows)
        real(table, rows, *args)

    monkeypatch.setattr(compact, "_write_groups", spy)
    compact_dataset(out)
    assert sum(seen) == 7 * 12 and max(seen) < 12  # never a whole file, let alone the dataset
    np.testing.assert_array_equal(OMEArrowDataset.scan(out).read(), np.stack(arrs))


def test_compact_leaves_a_one_file_dataset_untouched(tmp_path: Path) -> None:
    out = write_dataset(_images(2, seed=1), tmp_path / "one", dim_order="CYX", progress=False)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert compact_dataset(out) == []
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_compact_failures_leave_the_dataset_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, arrs = _appended(tmp_path)
    files = _files(out)
    real_copy = compact._copy
    calls: list[int] = []

    def copy_then_fail(*args: Any) -> None:  # fails while the second chunk file is being copied
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        real_copy(*args)

    with monkeypatch.context() as m:
        m.setattr(compact, "_copy", copy_then_fail)
        with pytest.raises(OSError, match="disk full"):
            compact_dataset(out)
    assert _files(out) == files  # no temporary files, nothing changed

    real_move = atomic._move
    moved: list[Path] = []

    def move_then_fail(src: Path, dst: Path) -> None:  # fails after chunks.parquet was replaced
        if dst.name == "index.parquet":
            raise PermissionError("read-only")
        moved.append(dst)
        real_move(src, dst)

    with monkeypatch.context() as m:
        m.setattr(atomic, "_move", move_then_fail)
        with pytest.raises(PermissionError):
            compact_dataset(out)
    assert [p.name for p in moved] == ["chunks.parquet"]
    assert _files(out) == files  # chunks.parquet was put back
    np.testing.assert_array_equal(OMEArrowDataset.scan(out).read(), np.stack(arrs))


def test_a_compaction_killed_between_renames_leaves_a_readable_dataset(tmp_path: Path) -> None:
    out, arrs = _appended(tmp_path, rows_per_group=5)
    done = shutil.copytree(out, tmp_path / "done")
    compact_dataset(done)
    shutil.copy2(done / "chunks.parquet", out / "chunks.parquet")  # killed after chunks.parquet was replaced
    np.testing.assert_array_equal(OMEArrowDataset.scan(out).read(), np.stack(arrs))  # the old index finds every chunk
    compact_dataset(out)  # again: the copies the new chunks.parquet already holds are not merged twice
    assert _groups(out / "chunks.parquet") == _groups(done / "chunks.parquet")
    assert pq.read_table(out / "index.parquet").equals(pq.read_table(done / "index.parquet"))
    np.testing.assert_array_equal(OMEArrowDataset.scan(out).read(), np.stack(arrs))


_KILLED = """
import os, sys
from pathlib import Path
from ome_arrow_core import compact_dataset
from ome_arrow_core.safe_write import atomic
real = atomic._move
def move(src, dst):
    if dst.name == sys.argv[2]:
        os._exit(9)
    real(src, dst)
atomic._move = move
compact_dataset(Path(sys.argv[1]))
"""


@pytest.mark.parametrize("replaced", [["index.parquet"], ["index.parquet", "images.parquet"]])
def test_a_compaction_killed_before_its_manifest_leaves_each_image_once(tmp_path: Path, replaced: list[str]) -> None:
    out, arrs = _appended(tmp_path, rows_per_group=5)
    table = OMEArrowDataset.scan(out).table
    done = shutil.copytree(out, tmp_path / "done")
    compact_dataset(done)
    # a real kill (the process exits at once) after these renames, before the manifest's: what it leaves
    # is the manifest the compaction put there before its swap (it accepts the old and the new tables)
    stop = {1: "images.parquet", 2: "_ome_arrow_dataset.json"}[len(replaced)]
    child = subprocess.run([sys.executable, "-c", _KILLED, str(out), stop], capture_output=True, text=True)
    assert child.returncode == 9, child.stderr
    for name in ["chunks.parquet", *replaced]:
        assert (out / name).read_bytes() == (done / name).read_bytes()
    ds = OMEArrowDataset.scan(out)  # the appended tables the old manifest lists are read once (or not at all)
    assert ds.table.equals(table)
    np.testing.assert_array_equal(ds.read(), np.stack(arrs))
    np.testing.assert_array_equal(OMEArrowDataset.scan(out, filter={"well": "C2"}).read(), arrs[6][None])
    compact_dataset(out)  # finishes the job
    cleanup_dataset(out)  # the killed compaction's temporary directory
    assert _files(out) == _files(done)
    np.testing.assert_array_equal(OMEArrowDataset.scan(out).read(), np.stack(arrs))


def test_compact_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such dataset"):
        compact_dataset(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(SchemaError, match="not an OME-Arrow dataset"):
        compact_dataset(tmp_path / "plain")
    arrs = _images(2, seed=2)
    out = write_dataset(arrs[:1], tmp_path / "mixed", dim_order="CYX", progress=False)
    write_dataset(arrs[1:], out, dim_order="CYX", mode="append", compression="zstd", progress=False)
    files = _files(out)
    with pytest.raises(SchemaError, match=r"different compressions \(chunks.parquet: none, chunks-00001.parquet: zstd"):
        compact_dataset(out)
    assert _files(out) == files
