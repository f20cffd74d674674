"""Appends write their own images and index tables: they read like one write, cost the new images, commit atomically."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from table_records import value_files

from ome_arrow_core import OMEArrowDataset, SchemaError, compact_dataset, write_dataset
from ome_arrow_core.cli import main
from ome_arrow_core.errors import ArgumentError
from ome_arrow_core.typed_chunk import append, opening

N = 9
FORMATS = [
    "parquet",
    pytest.param(
        "vortex",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("vortex") is None or importlib.util.find_spec("ome_arrow_vortex") is None,
            reason="needs vortex-data and ome-arrow-vortex (pip install -e backends/vortex)",
        ),
    ),
]


def _images(n: int = N, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 65535, (2, 12, 20), dtype=np.uint16) for _ in range(n)]


#: Metadata of the N images, one dict each; the columns come and go between the three writes.
META: list[dict[str, Any]] = [
    *({"well": f"A{i}", "site": i % 2, "label": i} for i in range(4)),
    *({"well": f"B{i}", "label": 10 + i, "treatment": "dmso"} for i in range(3)),
    *({"well": "A1", "site": 1, "label": None, "dose": 0.5} for _ in range(2)),
]
OPTS: dict[str, Any] = {"dim_order": "CYX", "chunk_shape": (8, 16), "images_per_group": 2, "progress": False}


def _appended(root: Path, arrs: list[np.ndarray], chunk_format: str = "parquet") -> Path:
    """The N images written as 4, then appends of 3 and 2."""
    out = write_dataset(arrs[:4], root / "appended", metadata=META[:4], chunk_format=chunk_format, **OPTS)
    write_dataset(arrs[4:7], out, mode="append", metadata=META[4:7], **OPTS)
    write_dataset(arrs[7:], out, mode="append", metadata=META[7:], **OPTS)
    return out


def _files(root: Path) -> dict[str, tuple[str, int]]:
    """(sha256, mtime_ns) of every file of a dataset directory."""
    return {
        p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.iterdir())
        if p.is_file()
    }


@pytest.mark.parametrize("chunk_format", FORMATS)
def test_appends_read_exactly_like_one_write(tmp_path: Path, chunk_format: str) -> None:
    arrs = _images()
    one = write_dataset(arrs, tmp_path / "one", metadata=META, chunk_format=chunk_format, **OPTS)
    out = _appended(tmp_path, arrs, chunk_format)
    suffix = ".parquet" if chunk_format == "parquet" else ".vortex"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            "THIS-IS-AN-OME-ARROW-DATASET.txt",
            "_ome_arrow_dataset.json",
            "images.parquet",
            "index.parquet",
            f"chunks{suffix}",
            *(
                f"{kind}-0000{k}.{ext}"
                for k in (1, 2)
                for kind, ext in (("images", "parquet"), ("index", "parquet"), ("chunks", suffix[1:]))
            ),
            *value_files(out),  # one per images table (each append indexes its own)
        ]
    )
    assert len(value_files(out)) == 3
    ours = json.loads((out / "_ome_arrow_dataset.json").read_text())["ome_arrow_core"]
    assert ours["format_version"] == 2 and ours["appends"] == [
        {"images": f"images-0000{k}.parquet", "index": f"index-0000{k}.parquet"} for k in (1, 2)
    ]

    ds, ref = OMEArrowDataset.scan(out), OMEArrowDataset.scan(one)
    assert ds.table.equals(ref.table)  # the same columns, types and values: image k is row k
    assert ds.table.column("image_id").to_pylist() == [f"image-{i:05d}" for i in range(N)]
    for i in range(N):
        assert ds.locate(i).row == i and ds.metadata(i) == ref.metadata(i)
        assert ds[i].meta == ref[i].meta
        np.testing.assert_array_equal(ds[i].tensor_view(layout="CYX").to_numpy(), arrs[i])
    np.testing.assert_array_equal(ds.read(), np.stack(arrs))
    np.testing.assert_array_equal(
        ds.read([8, 0, 5], c=1, roi=(3, 2, 9, 7), layout="YX"), np.stack([arrs[i][1, 2:9, 3:12] for i in (8, 0, 5)])
    )
    for spec in ({"well": "A1"}, {"treatment": "dmso"}, {"site": 1}, {"dose": 0.5}, {"label": [2, 11]}):
        got, want = OMEArrowDataset.scan(out, filter=spec), OMEArrowDataset.scan(one, filter=spec)
        assert got.table.equals(want.table), spec
        assert [got.locate(i).row for i in range(len(got))] == [want.locate(i).row for i in range(len(want))]
        np.testing.assert_array_equal(got.read(), want.read())
    # pushed into each images table's row groups (2 images per group): only those holding A1 are read
    a1 = OMEArrowDataset.scan(out, filter={"well": "A1"})
    assert a1.table.column("label").to_pylist() == [1, None, None]
    assert a1.row_groups_scanned[1] == 2 + 2 + 1
    assert a1.row_groups_scanned[0] < a1.row_groups_scanned[1]


def test_an_append_reads_and_rewrites_none_of_the_old_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrs = _images()
    out = write_dataset(arrs[:4], tmp_path / "d", metadata=META[:4], **OPTS)
    write_dataset(arrs[4:7], out, mode="append", metadata=META[4:7], **OPTS)
    before = _files(out)
    reads: list[tuple[str, Any]] = []
    real = pq.read_table

    def spy(source: Any, *args: Any, **kw: Any) -> pa.Table:
        reads.append((Path(source).name, kw.get("columns")))
        return real(source, *args, **kw)

    monkeypatch.setattr(pq, "read_table", spy)
    write_dataset(arrs[7:], out, mode="append", metadata=META[7:], **OPTS)
    monkeypatch.undo()
    # old tables: only the image ids are read (the rest are footers); no old file changes
    assert sorted(reads) == [("images-00001.parquet", ["image_id"]), ("images.parquet", ["image_id"])]
    after = _files(out)
    assert {k: v for k, v in after.items() if k in before and k != "_ome_arrow_dataset.json"} == {
        k: v for k, v in before.items() if k != "_ome_arrow_dataset.json"
    }
    new = [n for n in value_files(out) if n.startswith("_ome_arrow_values.images-00002.")]  # the append's own index
    assert (
        sorted(set(after) - set(before))
        == sorted(["chunks-00002.parquet", "images-00002.parquet", "index-00002.parquet", *new])
        and len(new) == 1
    )
    assert pq.read_table(out / "images-00002.parquet").column("image_id").to_pylist() == ["image-00007", "image-00008"]
    assert pq.read_table(out / "index-00002.parquet").column("chunk_id").to_pylist() == list(
        range(7 * 8, 9 * 8)
    )  # 8 chunks per image
    np.testing.assert_array_equal(OMEArrowDataset.scan(out).read(), np.stack(arrs))


def test_appends_refuse_an_image_id_already_in_any_part(tmp_path: Path) -> None:
    arrs = _images(3)
    out = write_dataset(arrs[:1], tmp_path / "d", image_ids=["a"], **OPTS)
    write_dataset(arrs[1:2], out, mode="append", image_ids=["b"], **OPTS)
    files = _files(out)
    for taken in ("a", "b"):
        with pytest.raises(ArgumentError, match=f"image id '{taken}' is already in the dataset"):
            write_dataset(arrs[2:], out, mode="append", image_ids=[taken], **OPTS)
    assert _files(out) == files
    write_dataset(arrs[2:], out, mode="append", image_ids=["c"], metadata={"n": [1]}, **OPTS)
    files = _files(out)
    with pytest.raises(SchemaError, match="metadata column 'n': the dataset's column is int64"):
        write_dataset(arrs[:1], out, mode="append", image_ids=["d"], metadata={"n": ["one"]}, **OPTS)
    assert _files(out) == files


def test_an_interrupted_append_leaves_the_dataset_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrs = _images()
    out = write_dataset(arrs[:4], tmp_path / "d", metadata=META[:4], **OPTS)
    write_dataset(arrs[4:7], out, mode="append", metadata=META[4:7], **OPTS)
    files = _files(out)
    table = OMEArrowDataset.scan(out).table

    def fail(*args: Any, **kw: Any) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as m:  # fails at the commit point: the new files are written, not listed
        m.setattr(append, "write_manifest", fail)
        with pytest.raises(OSError, match="disk full"):
            write_dataset(arrs[7:], out, mode="append", metadata=META[7:], **OPTS)
    assert _files(out) == files  # the new files were removed again
    ds = OMEArrowDataset.scan(out)
    assert ds.table.equals(table)
    np.testing.assert_array_equal(ds.read(), np.stack(arrs[:7]))

    # a process killed at that point leaves its files behind; readers and the next append pass them by
    for name in ("chunks-00002.parquet", "images-00002.parquet", "index-00002.parquet", "index-00003.parquet"):
        (out / name).write_bytes(b"left by a killed append")
    (out / ".append-00002.pending").touch()  # what an append writes before its first file
    opening.clear_cache()
    ds = OMEArrowDataset.scan(out)
    assert ds.table.equals(table)
    np.testing.assert_array_equal(ds.read(), np.stack(arrs[:7]))
    write_dataset(arrs[7:], out, mode="append", metadata=META[7:], **OPTS)
    ours = json.loads((out / "_ome_arrow_dataset.json").read_text())["ome_arrow_core"]
    assert ours["appends"][-1] == {"images": "images-00004.parquet", "index": "index-00004.parquet"}
    assert "chunks-00004.parquet" in ours["fragments"] and "chunks-00002.parquet" not in ours["fragments"]
    ds = OMEArrowDataset.scan(out)
    assert len(ds) == N and ds.table.column("well").to_pylist() == [m["well"] for m in META]
    np.testing.assert_array_equal(ds.read(), np.stack(arrs))


def test_a_reader_opened_before_an_append_keeps_its_images(tmp_path: Path) -> None:
    arrs = _images()
    out = write_dataset(arrs[:4], tmp_path / "d", **OPTS)
    old = OMEArrowDataset.scan(out)
    write_dataset(arrs[4:], out, mode="append", **OPTS)
    np.testing.assert_array_equal(old.read(), np.stack(arrs[:4]))  # rows 0..3 are what they were
    new = OMEArrowDataset.scan(out)
    assert len(old) == 4 and len(new) == N
    np.testing.assert_array_equal(new.read(range(4, N)), np.stack(arrs[4:]))


def test_index_rows_left_by_an_older_interrupted_append_do_not_leak_into_a_new_image(tmp_path: Path) -> None:
    """Older versions could leave index.parquet rows of an image that images.parquet lacks."""
    arrs = _images(3)
    out = write_dataset(arrs[:2], tmp_path / "d", **OPTS)
    index = pq.read_table(out / "index.parquet")
    stray = index.filter(pa.compute.equal(index.column("image_id"), "image-00001"))
    stray = stray.set_column(0, "image_id", pa.array(["image-00002"] * stray.num_rows))
    pq.write_table(pa.concat_tables([index, stray]), out / "index.parquet")
    manifest = json.loads((out / "_ome_arrow_dataset.json").read_text())
    del manifest["ome_arrow_core"]["tables"]  # older versions recorded no table checksums
    (out / "_ome_arrow_dataset.json").write_text(json.dumps(manifest))
    write_dataset(arrs[2:], out, mode="append", **OPTS)  # takes the free id image-00002
    ds = OMEArrowDataset.scan(out)
    np.testing.assert_array_equal(ds[2].tensor_view(layout="CYX").to_numpy(), arrs[2])
    np.testing.assert_array_equal(ds.read(), np.stack(arrs))
    compact_dataset(out)
    assert pq.read_table(out / "index.parquet").num_rows == 3 * 8  # the stray rows are dropped
    np.testing.assert_array_equal(OMEArrowDataset.scan(out).read(), np.stack(arrs))


def test_cli_info_and_compact_on_an_appended_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arrs = _images()
    out = _appended(tmp_path, arrs)
    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format_version"] == 2 and info["images_in_file"] == N
    assert main(["compact", str(out)]) == 0
    assert capsys.readouterr().out.strip() == (
        f"compacted {out}: chunks.parquet, chunks-00001.parquet, chunks-00002.parquet -> chunks.parquet"
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "THIS-IS-AN-OME-ARROW-DATASET.txt",
        "_ome_arrow_dataset.json",
        *value_files(out),
        "chunks.parquet",
        "images.parquet",
        "index.parquet",
    ]
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format_version"] == 1 and info["images_in_file"] == N
    np.testing.assert_array_equal(OMEArrowDataset.scan(out).read(), np.stack(arrs))
