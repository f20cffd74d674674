"""Multi-image datasets whose chunk files are Vortex (write_dataset(chunk_format="vortex")), real vortex-data (a
missing or blocked vortex: test_vortex_blocked.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("vortex", reason="needs vortex-data (pip install -e backends/vortex)")
pytest.importorskip("ome_arrow_vortex", reason="needs ome-arrow-vortex (pip install -e backends/vortex)")

from table_digests import without_table_digests
from vortex_plates import N, random_pixels, same_bits, write_vortex_plate

from ome_arrow_core import (
    OMEArrow,
    OMEArrowDataset,
    SchemaError,
    write_dataset,
)
from ome_arrow_core.errors import ArgumentError, ChecksumError
from ome_arrow_core.testing import ChunkStoreTests, check_reader
from ome_arrow_vortex import chunk_store

DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64", "bool"]


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """The Vortex-chunked plate (see vortex_plates.py) and its pixels."""
    return write_vortex_plate(tmp_path_factory.mktemp("vx") / "plate")


class TakeSpy:
    """Records the row numbers every VortexChunkFile.take is asked for."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[list[int]] = []
        real = chunk_store.VortexChunkFile.take

        def take(this: Any, rows: np.ndarray) -> Any:
            self.calls.append(np.asarray(rows).tolist())
            return real(this, rows)

        monkeypatch.setattr(chunk_store.VortexChunkFile, "take", take)


# -- layout -----------------------------------------------------------------------------------------
def test_plate_is_parquet_tables_and_a_vortex_chunk_file(plate: tuple[Path, np.ndarray]) -> None:
    path, _ = plate
    names = sorted(p.name for p in path.iterdir())
    values = [n for n in names if n.startswith("_ome_arrow_values.images.")]  # the well column's value index
    assert len(values) == 1 and [n for n in names if n not in values] == [
        "THIS-IS-AN-OME-ARROW-DATASET.txt",
        "_ome_arrow_dataset.json",
        "chunks.vortex",
        "images.parquet",
        "index.parquet",
    ]
    with open(path / "chunks.vortex", "rb") as fh:
        assert fh.read(4) == b"VTXF"
    ours = json.loads((path / "_ome_arrow_dataset.json").read_text())["ome_arrow_core"]
    assert ours["format_version"] == 2 and ours["chunk_format"] == "vortex" and ours["fragments"] == ["chunks.vortex"]
    index = pq.read_table(path / "index.parquet")
    n_chunks = N * 2 * 3 * 3  # 2 channels, 3x3 tiles of 16x16 over 40x48
    assert index.num_rows == n_chunks
    assert index.column("row_group_id").to_pylist() == list(range(n_chunks))  # the row number
    assert set(index.column("row_index_in_group").to_pylist()) == {0}
    assert set(index.column("fragment_path").to_pylist()) == {"chunks.vortex"}
    info = OMEArrowDataset.scan(path)[0].info()
    assert info["storage"] == "vortex typed-chunk dataset" and info["rows"] == n_chunks


# -- the dataset API -------------------------------------------------------------------------------
def test_scan_pushes_the_filter_down_and_keeps_metadata_columns(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    ds = OMEArrowDataset.scan(path, filter={"well": "W2"})
    assert len(ds) == 3 and ds.table.column("label").to_pylist() == [6, 7, 8]
    assert {"well", "site", "label", "image_id", "size_x"} <= set(ds.column_names)
    assert ds.extra_columns == ["well", "site", "label"]
    assert ds.row_groups_scanned == (
        2,
        3,
    )  # images.parquet: groups of 4 images; W2 (6..8) spans two, the third is skipped
    for i, img in enumerate(ds):
        assert same_bits(img.tensor_view(layout="CYX").to_numpy(), arrs[6 + i])


def test_random_access_is_lazy_and_takes_only_that_images_rows(
    plate: tuple[Path, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, arrs = plate
    spy = TakeSpy(monkeypatch)
    ds = OMEArrowDataset.scan(path)
    img = ds[7]
    assert spy.calls == []  # opening reads no pixels
    crop = img.tensor_view(c=1, roi=(5, 20, 20, 10), layout="YX").to_numpy()  # x 5..25, y 20..30
    assert same_bits(crop, arrs[7, 1, 20:30, 5:25])
    # image 7 owns rows 7*18 .. 7*18+17 (c, tile-y, tile-x order); the crop touches c=1, tiles y=1, x=0..1
    first = 7 * 18 + 9
    assert spy.calls == [[first + 3, first + 4]]
    assert img.source.chunks_read == 2


def test_batched_reads_and_tensor_views_equal_the_source(
    plate: tuple[Path, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, arrs = plate
    ds = OMEArrowDataset.scan(path)
    np.testing.assert_array_equal(ds.read([3, 0, 11]), arrs[[3, 0, 11]])
    spy = TakeSpy(monkeypatch)
    got = ds.read([9, 2, 5], c=0, roi=(16, 0, 16, 16), layout="YX")
    np.testing.assert_array_equal(got, arrs[[9, 2, 5], 0, 0:16, 16:32])
    assert len(spy.calls) == 1 and len(spy.calls[0]) == 3  # one scan, one chunk row per image
    rois = [(0, 0, 8, 8), (30, 25, 8, 8)]
    got = ds.read([1, 4], c=1, rois=rois, layout="YX")
    np.testing.assert_array_equal(got[1], arrs[4, 1, 25:33, 30:38])
    views = ds.tensor_views(c=1, roi=(3, 4, 30, 20), layout="YX")
    np.testing.assert_array_equal(views.read(range(N)), arrs[:, 1, 4:24, 3:33])
    np.testing.assert_array_equal(views[6].to_numpy(), arrs[6, 1, 4:24, 3:33])


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_round_trips_bit_exactly(tmp_path: Path, dtype: str) -> None:
    arrs = random_pixels((3, 2, 3, 17, 23), dtype, seed=DTYPES.index(dtype))
    out = write_dataset(
        list(arrs), tmp_path / "d", dim_order="ZCYX", chunk_format="vortex", chunk_shape=(1, 8, 8), progress=False
    )
    ds = OMEArrowDataset.scan(out)
    for i in range(3):
        assert same_bits(ds[i].tensor_view(layout="ZCYX").to_numpy(), arrs[i])
    got = ds.read(range(3), layout="ZCYX")
    assert same_bits(got, arrs)
    check_reader(out, arrs[1][None], row=1)  # the plugin kit on one image of the dataset


class TestVortexChunkStore(ChunkStoreTests):
    """The plugin kit's chunk-store checks: write, reopen, take any rows bit-exactly, threads, damaged files."""

    store_name = "vortex"


def test_zstd_and_wrong_options(tmp_path: Path) -> None:
    arrs = random_pixels((2, 30, 30), "float32")
    out = write_dataset(
        list(arrs), tmp_path / "z", dim_order="YX", chunk_format="vortex", compression="zstd", progress=False
    )
    assert same_bits(OMEArrowDataset.scan(out).read([0, 1], layout="YX"), arrs)
    assert pq.read_table(out / "images.parquet").column("compression").to_pylist() == ["zstd", "zstd"]
    with pytest.raises(ArgumentError, match=r"takes compression in \['none', 'zstd'\], got 'lz4'"):
        write_dataset(list(arrs), tmp_path / "bad", dim_order="YX", chunk_format="vortex", compression="lz4")
    with pytest.raises(ArgumentError, match="rows_per_group applies to Parquet chunks"):
        write_dataset(list(arrs), tmp_path / "bad", dim_order="YX", chunk_format="vortex", rows_per_group=4)
    assert not (tmp_path / "bad").exists()


def test_append_adds_a_vortex_fragment_and_a_parquet_one_on_request(tmp_path: Path) -> None:
    arrs = random_pixels((6, 2, 12, 14), "int16")
    out = tmp_path / "p"
    write_dataset(
        list(arrs[:2]), out, dim_order="CYX", metadata={"well": ["A", "A"]}, chunk_format="vortex", progress=False
    )
    write_dataset(list(arrs[2:4]), out, dim_order="CYX", metadata={"well": ["B", "B"]}, mode="append", progress=False)
    write_dataset(
        list(arrs[4:]),
        out,
        dim_order="CYX",
        metadata={"well": ["C", "C"]},
        mode="append",
        chunk_format="parquet",
        progress=False,
    )
    names = sorted(p.name for p in out.iterdir() if p.name.startswith("chunks"))
    assert names == ["chunks-00001.vortex", "chunks-00002.parquet", "chunks.vortex"]
    ds = OMEArrowDataset.scan(out)
    assert len(ds) == 6 and ds.table.column("image_id").to_pylist() == [f"image-{i:05d}" for i in range(6)]
    np.testing.assert_array_equal(ds.read(range(6)), arrs)
    assert [ds.metadata(i)["well"] for i in (1, 3, 5)] == ["A", "B", "C"]
    assert same_bits(OMEArrowDataset.scan(out, filter={"well": "B"})[1].tensor_view(layout="CYX").to_numpy(), arrs[3])
    ours = json.loads((out / "_ome_arrow_dataset.json").read_text())["ome_arrow_core"]
    assert ours["format_version"] == 2 and ours["chunk_format"] == "vortex"


def test_a_parquet_dataset_stays_format_version_1(tmp_path: Path) -> None:
    out = write_dataset([np.zeros((4, 4), np.uint8)], tmp_path / "p", dim_order="YX", progress=False)
    assert json.loads((out / "_ome_arrow_dataset.json").read_text())["ome_arrow_core"]["format_version"] == 1


def test_a_damaged_index_is_reported(tmp_path: Path) -> None:
    out = write_dataset(
        [np.ones((2, 8, 8), np.uint8)], tmp_path / "d", dim_order="CYX", chunk_format="vortex", progress=False
    )
    index = pq.read_table(out / "index.parquet")
    rg = index.column("row_group_id").to_numpy().copy()
    rg[1] = 99
    pq.write_table(
        index.set_column(index.schema.get_field_index("row_group_id"), "row_group_id", pa.array(rg)),
        out / "index.parquet",
    )
    with pytest.raises(ChecksumError, match=r"index.parquet\]: the table's bytes do not match"):
        OMEArrowDataset.scan(out)[0].to_numpy()  # the table checksum refuses the rewritten index at the first read
    without_table_digests(out)  # as a dataset written before table checksums: the cross-check catches the lie
    with pytest.raises(SchemaError, match=r"points at rows \[99\] of chunks.vortex, which has 2"):
        OMEArrowDataset.scan(out)[0].to_numpy()


# -- torch loaders -----------------------------------------------------------------------------------
@pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")
def test_torch_loaders_read_the_vortex_plate(plate: tuple[Path, np.ndarray]) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("ome_arrow_torch")
    from torch.utils.data import DataLoader

    from ome_arrow_torch.data import OMEArrowIterableDataset, OMEArrowTorchDataset

    path, arrs = plate
    ds = OMEArrowIterableDataset(path, batch_size=5, c=1, roi=(2, 3, 16, 8), layout="YX")
    loader = DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="fork")
    batches = list(loader)
    assert [b.shape[0] for b in batches] == [5, 5, 2] and all(b.dtype == torch.uint16 for b in batches)
    np.testing.assert_array_equal(torch.cat(batches).numpy(), arrs[:, 1, 3:11, 2:18])
    labelled = OMEArrowIterableDataset(path, target="label", shuffle=True, seed=3, batch_size=4)
    seen = [y for _, yb in labelled for y in yb.tolist()]
    assert sorted(seen) == list(range(N))
    x, y = OMEArrowTorchDataset(path, target="label", filter={"well": "W3"})[2]
    assert y == 11 and np.array_equal(x.numpy(), arrs[11])


def test_chunks_roll_over_to_new_vortex_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from ome_arrow_core.typed_chunk import write_steps

    real = write_steps.chunk_store
    small = lambda name, registry: dataclasses.replace(real(name, registry), max_file_bytes=3 * 2 * 20 * 20 * 2)
    monkeypatch.setattr(write_steps, "chunk_store", small)
    arrs = random_pixels((8, 2, 20, 20), "uint16")
    out = write_dataset(list(arrs[:7]), tmp_path / "r", dim_order="CYX", chunk_format="vortex", progress=False)
    assert sorted(p.name for p in out.glob("chunks*")) == [
        "chunks-00001.vortex",
        "chunks-00002.vortex",
        "chunks.vortex",
    ]
    write_dataset([arrs[7]], out, dim_order="CYX", mode="append", progress=False)
    ours = json.loads((out / "_ome_arrow_dataset.json").read_text())["ome_arrow_core"]
    assert ours["fragments"] == ["chunks-00001.vortex", "chunks-00002.vortex", "chunks-00003.vortex", "chunks.vortex"]
    index = pq.read_table(out / "index.parquet").to_pydict()
    per_file = {
        f: [r for r, g in zip(index["row_group_id"], index["fragment_path"]) if g == f] for f in ours["fragments"]
    }
    assert per_file["chunks.vortex"] == list(range(6)) and per_file["chunks-00002.vortex"] == [0, 1]
    ds = OMEArrowDataset.scan(out)
    np.testing.assert_array_equal(ds.read(range(8)), arrs)
    assert same_bits(ds[4].tensor_view(layout="CYX").to_numpy(), arrs[4])


def test_compaction_refuses_vortex_chunks_and_names_the_rewrite(tmp_path: Path) -> None:
    from ome_arrow_core import SchemaError, compact_dataset

    arrs = random_pixels((3, 2, 8, 8), "uint16")
    out = write_dataset(list(arrs[:2]), tmp_path / "v", dim_order="CYX", chunk_format="vortex", progress=False)
    write_dataset([arrs[2]], out, dim_order="CYX", mode="append", progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(SchemaError, match=r"not Parquet.*chunk_format='parquet'"):
        compact_dataset(out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    back = write_dataset(OMEArrowDataset.scan(out), tmp_path / "p", chunk_format="parquet", progress=False)
    np.testing.assert_array_equal(OMEArrowDataset.scan(back).read(range(3)), arrs)


def test_cli_converts_tiffs_into_a_vortex_chunked_dataset(tmp_path: Path) -> None:
    pytest.importorskip("ome_arrow_tiff", reason="TIFF backend not installed")
    from ome_arrow_core.cli import main

    inputs = sorted((Path(__file__).parents[1] / "data" / "ome-artificial").glob("*.ome.tif*"))
    out = tmp_path / "plate.ome.parquet"
    assert main(["convert", *map(str, inputs), "-o", str(out), "-q", "--chunk-format", "vortex"]) == 0
    assert (out / "chunks.vortex").exists() and not (out / "chunks.parquet").exists()
    ds = OMEArrowDataset.scan(out)
    assert ds.table.column("name").to_pylist() == [p.stem for p in inputs]
    for i, path in enumerate(inputs):
        np.testing.assert_array_equal(ds[i].to_numpy(), OMEArrow(path).to_numpy())
