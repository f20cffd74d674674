"""write_dataset: appends keep old bytes, failures leave nothing, streams hold one image, large images go band by
band, and batched writes keep each image's row groups."""

from __future__ import annotations

import errno
import gc
import signal
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dataset_plates import REF, plate_pixels, records_table, write_plate

from ome_arrow_core import OMEArrow, OMEArrowDataset, SchemaError, write_dataset
from ome_arrow_core.errors import ArgumentError, StorageError
from ome_arrow_core.typed_chunk import packing


# -- appends and atomicity ----------------------------------------------------------------------------
def test_append_writes_a_new_fragment_and_keeps_old_bytes(tmp_path: Path) -> None:
    out, arrs = write_plate(tmp_path, n=4)
    before = (out / "chunks.parquet").stat()
    more = plate_pixels(3, seed=9)
    write_dataset(
        more,
        out,
        dim_order="CYX",
        mode="append",
        progress=False,
        metadata={"well": ["C01"] * 3, "label": [40, 41, 42], "treatment": ["x", "y", "z"]},
    )
    after = (out / "chunks.parquet").stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert sorted(p.name for p in out.glob("chunks*.parquet")) == ["chunks-00001.parquet", "chunks.parquet"]
    ds = OMEArrowDataset.scan(out)
    assert len(ds) == 7 and ds.table.column("image_id").to_pylist()[-1] == "image-00006"
    assert ds.table.column("treatment").to_pylist() == [None] * 4 + ["x", "y", "z"]
    assert ds.table.column("site").to_pylist()[-1] is None
    np.testing.assert_array_equal(ds.read(), np.stack(arrs + more))
    index = pa.concat_tables([pq.read_table(out / "index.parquet"), pq.read_table(out / "index-00001.parquet")])
    assert index.column("fragment_path").to_pylist() == ["chunks.parquet"] * 8 + ["chunks-00001.parquet"] * 6
    assert index.column("chunk_id").to_pylist() == list(range(14))  # unique across fragments
    write_dataset(plate_pixels(1, seed=5), out, dim_order="CYX", mode="append", progress=False)
    assert (out / "chunks-00002.parquet").exists() and len(OMEArrowDataset.scan(out)) == 8


def test_append_to_reference_dataset_without_index(tmp_path: Path) -> None:
    import shutil

    src = tmp_path / "ref"
    shutil.copytree(REF / "oa010_dataset_noindex_float32.ome-arrow", src)
    first = OMEArrow(src).to_numpy()
    new = np.ones(first.shape, first.dtype)
    write_dataset([OMEArrow(new)], src, mode="append", progress=False)
    ds = OMEArrowDataset.scan(src)
    assert len(ds) == 2
    np.testing.assert_array_equal(ds[0].to_numpy(), first)
    np.testing.assert_array_equal(ds[1].to_numpy(), new)


def test_create_refuses_existing_and_failures_leave_nothing(tmp_path: Path) -> None:
    out, arrs = write_plate(tmp_path, n=3)
    with pytest.raises(FileExistsError, match="mode='append'"):
        write_dataset(arrs, out, dim_order="CYX", progress=False)

    def broken() -> Iterator[np.ndarray]:
        yield arrs[0]
        raise RuntimeError("source failed")

    with pytest.raises(RuntimeError):
        write_dataset(broken(), tmp_path / "new", dim_order="CYX", progress=False)
    assert not (tmp_path / "new").exists()
    files = sorted(p.name for p in out.iterdir())
    table = pq.read_table(out / "images.parquet")
    with pytest.raises(RuntimeError):
        write_dataset(broken(), out, dim_order="CYX", mode="append", progress=False)
    assert sorted(p.name for p in out.iterdir()) == files
    assert pq.read_table(out / "images.parquet").equals(table)
    write_dataset(arrs[:1], out, dim_order="CYX", mode="overwrite", progress=False)
    assert len(OMEArrowDataset.scan(out)) == 1


def test_a_handle_opened_before_an_overwrite_with_fewer_images_says_to_scan_again(tmp_path: Path) -> None:
    arrs = plate_pixels(3)
    out = write_dataset(arrs, tmp_path / "d", dim_order="CYX", metadata={"k": [0, 1, 2]}, progress=False)
    lazy, filtered = OMEArrowDataset.scan(out), OMEArrowDataset.scan(out, filter={"k": [0, 2]})
    write_dataset(arrs[:1], out, dim_order="CYX", metadata={"k": [5]}, mode="overwrite", progress=False)
    stale = r"d changed since this dataset was scanned \(overwritten\): .* scan it again"
    for ds in (lazy, filtered):  # ds[1] raised ArgumentError, read() SchemaError, metadata() IndexError before
        assert len(ds) in (2, 3)
        np.testing.assert_array_equal(ds[0].to_numpy()[0, :, 0], arrs[0])  # the copy in place, as docs/datasets.md says
        for call in (lambda d: d[1], lambda d: d.read(), lambda d: d.tensor_views(c=0).read([1])):
            with pytest.raises(StorageError, match=stale) as info:
                call(ds)
            assert info.value.errno == errno.ESTALE
    with pytest.raises(StorageError, match=stale):
        lazy.metadata(1)
    assert len(OMEArrowDataset.scan(out)) == 1


def test_a_first_read_of_only_rows_an_overwrite_removed_says_to_scan_again(tmp_path: Path) -> None:
    # a DataLoader worker's batch after the plate was rewritten smaller: it said DamagedFileError ("damaged")
    arrs = plate_pixels(4)
    out = write_dataset(arrs, tmp_path / "d", dim_order="CYX", progress=False)
    ds = OMEArrowDataset.scan(out)
    write_dataset(arrs[:1], out, dim_order="CYX", mode="overwrite", progress=False)
    with pytest.raises(
        StorageError, match=r"changed since this dataset was scanned .* row 2 of the scan is gone"
    ) as info:
        ds.read([2, 3])
    assert info.value.errno == errno.ESTALE


def test_copies_change_with_an_overwrite_and_not_with_an_append_or_a_compaction(tmp_path: Path) -> None:
    from ome_arrow_core import compact_dataset

    arrs = plate_pixels(3)
    out = write_dataset(arrs, tmp_path / "d", dim_order="CYX", progress=False)
    ds = OMEArrowDataset.scan(out)
    first = ds.copies()
    assert [p for p, _, _ in first] == [str(out)] and ds.copies([2]) == first
    write_dataset(arrs, out, dim_order="CYX", mode="append", progress=False)
    assert compact_dataset(out) and ds.copies() == first
    write_dataset(arrs, out, dim_order="CYX", mode="overwrite", progress=False)
    assert ds.copies() != first and ds.copies()[0][0] == str(out)


def test_metadata_errors(tmp_path: Path) -> None:
    arrs = plate_pixels(2)
    with pytest.raises(ArgumentError, match="one value per image"):
        write_dataset(arrs, tmp_path / "a", dim_order="CYX", metadata={"x": [1]}, progress=False)
    with pytest.raises(ArgumentError, match="collide"):
        write_dataset(arrs, tmp_path / "b", dim_order="CYX", metadata={"name": ["a", "b"]}, progress=False)
    with pytest.raises(ArgumentError, match="ran out"):
        write_dataset(iter(arrs), tmp_path / "c", dim_order="CYX", metadata=iter([{"x": 1}]), progress=False)
    with pytest.raises(ArgumentError, match="unique"):
        write_dataset(arrs, tmp_path / "d", dim_order="CYX", image_ids=["a", "a"], progress=False)
    out = write_dataset(arrs, tmp_path / "e", dim_order="CYX", metadata={"x": [1, 2]}, progress=False)
    with pytest.raises(SchemaError, match="metadata column .x.: the dataset.s column is int64"):
        write_dataset(arrs, out, dim_order="CYX", mode="append", metadata={"x": ["a", "b"]}, progress=False)
    assert len(OMEArrowDataset.scan(out)) == 2


def test_a_reserved_metadata_column_is_refused_before_any_pixel_is_read(tmp_path: Path) -> None:
    """The clash used to surface only when the images table was written, after every image's pixels."""
    read: list[int] = []

    def images() -> Iterator[np.ndarray]:
        for i in range(3):
            read.append(i)
            yield np.full((2, 8, 8), i, np.uint16)

    for metadata in ({"name": ["a", "b", "c"]}, iter([{"well": "A01", "size_x": 3}] * 3)):
        read.clear()
        with pytest.raises(ArgumentError, match=r"collide with the dataset's own columns.*(name|size_x)"):
            write_dataset(images(), tmp_path / "r", dim_order="CYX", metadata=metadata, progress=False)
        assert read == [0] and not (tmp_path / "r").exists()


def test_streaming_holds_one_image_at_a_time(tmp_path: Path) -> None:
    alive: list[weakref.ref[np.ndarray]] = []

    def images() -> Iterator[np.ndarray]:
        for i in range(6):
            gc.collect()
            # the writer may still hold the image before the last one; never older ones
            assert all(r() is None for r in alive[:-1]), f"image {len(alive) - 2} still alive at {i}"
            a = np.full((2, 64, 64), i, np.uint16)
            alive.append(weakref.ref(a))
            yield a

    write_dataset(images(), tmp_path / "s", dim_order="CYX", progress=False)
    assert len(OMEArrowDataset.scan(tmp_path / "s")) == 6


def test_large_images_are_written_band_by_band(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packing, "BAND_BYTES", 1000)
    shapes: list[tuple[int, ...]] = []
    img = OMEArrow(plate_pixels(1, (2, 3, 2, 20, 20))[0], "TZCYX")
    real = img.tensor_view

    def spy(*args: object, **kw: object) -> object:
        view = real(*args, **kw)  # type: ignore[arg-type]
        shapes.append(view.shape)
        return view

    monkeypatch.setattr(img, "tensor_view", spy)
    out = write_dataset([img], tmp_path / "b", progress=False)
    assert shapes and all(s[:3] == (1, 1, 1) for s in shapes) and len(shapes) == 12
    np.testing.assert_array_equal(OMEArrowDataset.scan(out)[0].to_numpy(), img.to_numpy())


def _row_groups(path: Path) -> list[list[tuple[str, int]]]:
    """(image_id, chunk_id) of each row of each row group of a chunks file."""
    pf = pq.ParquetFile(path)
    return [
        list(
            zip(
                *(
                    pf.read_row_group(g, columns=["image_id", "chunk_id"]).column(c).to_pylist()
                    for c in ("image_id", "chunk_id")
                )
            )
        )
        for g in range(pf.num_row_groups)
    ]


@pytest.mark.parametrize("rows_per_group", [1, 2, 3])
def test_batched_writes_keep_the_row_groups_of_one_write_per_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows_per_group: int
) -> None:
    """Chunk rows of several images go out in one write; each image (or band) still starts its own row groups."""
    monkeypatch.setattr(packing, "BAND_BYTES", 4000)  # the 6 KiB image goes band by band
    arrs = [
        *plate_pixels(3, (1, 1, 2, 24, 32)),
        *plate_pixels(1, (2, 1, 2, 24, 32), seed=1),
        *plate_pixels(3, (1, 1, 2, 24, 32), seed=2),
    ]
    images = [OMEArrow(a, "TZCYX") for a in arrs]  # 3 KiB each but the 4th: 8 chunks of 16x16 per plane pair
    outs = {}
    for name, batch in {
        "one-by-one": {"BATCH_BYTES": 0},
        "straddling": {"BATCH_BYTES": 5000},
        "few-pieces": {"BATCH_PIECES": 2},
        "default": {},
    }.items():
        with monkeypatch.context() as m:
            for k, v in batch.items():
                m.setattr(packing, k, v)
            outs[name] = write_dataset(
                images[:5], tmp_path / name, chunk_shape=(16, 16), rows_per_group=rows_per_group, progress=False
            )
            write_dataset(
                images[5:],
                outs[name],
                mode="append",
                chunk_shape=(16, 16),
                rows_per_group=rows_per_group,
                progress=False,
            )
    ref = outs.pop("one-by-one")
    for name in ("chunks.parquet", "chunks-00001.parquet"):
        groups = _row_groups(ref / name)
        assert all(len(g) <= rows_per_group and len({i for i, _ in g}) == 1 for g in groups)
        index = [
            *pq.read_table(ref / "index.parquet").to_pylist(),
            *pq.read_table(ref / "index-00001.parquet").to_pylist(),
        ]
        at = {(r["fragment_path"], r["row_group_id"], r["row_index_in_group"]): r["chunk_id"] for r in index}
        assert all(at[(name, g, r)] == c for g, rows in enumerate(groups) for r, (_, c) in enumerate(rows))
        for out in outs.values():
            assert _row_groups(out / name) == groups
            assert pq.read_table(out / name).equals(pq.read_table(ref / name))
    for out in [ref, *outs.values()]:
        for name in ("index.parquet", "index-00001.parquet"):
            assert pq.read_table(out / name).equals(pq.read_table(ref / name))
        ds = OMEArrowDataset.scan(out)
        for i, a in enumerate(arrs):
            np.testing.assert_array_equal(ds[i].to_numpy(layout="TZCYX"), a)


# -- a source that fails, a process killed, mid-export -------------------------------------------------
OLD = np.arange(3 * 20 * 24, dtype=np.uint16).reshape(3, 20, 24)


@pytest.mark.parametrize("chunk_format", ["parquet", "vortex"])
def test_a_source_damaged_mid_export_raises_and_leaves_the_old_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], chunk_format: str
) -> None:
    """The export reads the source a band of planes at a time, writing each batch before the next: a chunk that
    fails its checksum after 32 bands raises the read's DamagedFileError naming the source's file; the dataset it
    would replace stays byte for byte and nothing is left beside it, from export() and ``convert --force``."""
    from source_faults import counting_reads, damaged_source, small_budgets, snapshot

    from ome_arrow_core.cli import main
    from ome_arrow_core.errors import DamagedFileError

    if chunk_format == "vortex":
        pytest.importorskip("ome_arrow_vortex", reason="needs ome-arrow-vortex (pip install -e backends/vortex)")
    src, _ = damaged_source(tmp_path)
    small_budgets(monkeypatch, "parquet")
    target = tmp_path / "out.ome.parquet"
    OMEArrow(OLD).export("parquet", target)
    before = snapshot(target)
    reads = counting_reads(monkeypatch)
    if chunk_format == "parquet":
        with pytest.raises(DamagedFileError, match="source.ome.parquet/chunks.parquet"):
            OMEArrow.scan(src).export("parquet", target)
        assert len(reads) == 33  # time point 0's 32 bands (one plane each) written, the 33rd refused
        assert snapshot(target) == before
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, target.name])
    argv = ["convert", str(src), "-o", str(target), "--force", "--chunk-format", chunk_format, "-q"]
    assert main(argv) == 1
    line = capsys.readouterr().err
    assert "source.ome.parquet/chunks.parquet" in line and "C Data interface" not in line, line
    assert snapshot(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, target.name])


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_an_export_killed_after_its_first_band_leaves_the_old_dataset(tmp_path: Path, sig: signal.Signals) -> None:
    """``convert --force`` to a dataset killed once its first band is written: the dataset it would replace stays
    byte for byte. SIGKILL leaves the dead writer's temporary (ours, named for the target, holding the bands
    written), which the next write removes; Ctrl-C exits 130 and leaves nothing."""
    from source_faults import killed_convert, reads_of, scanned_source, snapshot, temporaries

    from ome_arrow_core.safe_write.ownership import parse_temp

    src, arr = scanned_source(tmp_path)
    target = tmp_path / "out.ome.parquet"
    OMEArrow(OLD).export("parquet", target)
    before = snapshot(target)
    pid, done = killed_convert("parquet", sig, [str(src), "-o", str(target), "--force", "-q"])
    assert snapshot(target) == before
    left = temporaries(tmp_path, target)
    if sig == signal.SIGKILL:
        assert done.returncode == -9, done.stderr[-2000:]
        assert [parse_temp(p.name).pid for p in left] == [pid]  # type: ignore[union-attr]
        assert any(p.name.startswith("chunks") and p.stat().st_size for p in left[0].rglob("*"))
    else:
        assert done.returncode == 130 and "error: interrupted" in done.stderr, done.stderr[-2000:]
        assert reads_of(done) == 2  # stopped in the read it was in, not once the whole image was read
        assert left == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, target.name, *(p.name for p in left)])
    OMEArrow.scan(src).export("parquet", target)  # the next write removes what the killed one left
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, target.name])
    np.testing.assert_array_equal(OMEArrow.scan(target).to_numpy(), arr)


@pytest.mark.parametrize("how", ["replaced", "in-place"])
def test_copies_change_when_a_table_of_records_is_written_again(tmp_path: Path, how: str) -> None:
    """copies() listed chunk datasets only: a torch dataset (or a dask array, a Ray dataset) over a table of records
    written again read its new rows' pixels beside the targets of the rows planned (label 1 with image 30)."""
    import os

    path = tmp_path / "cells.parquet"
    pq.write_table(records_table([1, 2, 3]), path, row_group_size=1)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))  # written earlier: a rewrite now gets another time
    ds = OMEArrowDataset.scan(path)
    made = ds.copies()
    assert [p for p, _, _ in made] == [str(path)] and ds.copies([1]) == made
    ds.check_copies(made, [0, 1, 2], "the test")  # unchanged: nothing raised
    new = records_table([30, 10, 20])
    if how == "replaced":
        pq.write_table(new, tmp_path / "new.parquet", row_group_size=1)
        os.replace(tmp_path / "new.parquet", path)
    else:  # pyarrow truncates the file it writes: the same inode
        pq.write_table(new, path, row_group_size=1)
        assert os.stat(path).st_ino == st.st_ino
    assert ds.copies() != made
    with pytest.raises(StorageError, match=r"cells\.parquet was overwritten after the test was made from it") as e:
        ds.check_copies(made, [0], "the test")
    assert e.value.errno == errno.ESTALE
