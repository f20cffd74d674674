"""Opening a dataset directory reads footers, not tables: what it reads, and that the lazy path still refuses lies."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from parquet_spies import PARQUET_FILES, spy_on
from table_digests import without_table_digests
from table_records import groups_of

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_core.errors import ChecksumError, DamagedFileError, OMEArrowError, SchemaError
from ome_arrow_core.typed_chunk.opening import open_dataset

N = 23


def _image(i: int) -> np.ndarray:
    return ((np.arange(2 * 8 * 8, dtype=np.int64) + 7 * i) % 4096).astype(np.uint16).reshape(2, 8, 8)


def _plate(root: Path, n: int = N, seed: int = 0, **kw: Any) -> Path:
    meta = [{"well": f"W{i % 4}", "label": i + seed} for i in range(n)]
    return write_dataset(
        (_image(i + seed) for i in range(n)),
        root,
        dim_order="CYX",
        metadata=meta,
        images_per_group=5,
        progress=False,
        **kw,
    )


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _plate(tmp_path_factory.mktemp("scale") / "plate")


class Reads:
    """Counts the real pyarrow reads of each file (the wrapped methods still run)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: Counter[tuple[str, str, str]] = Counter()
        calls = self.calls

        def read(real: Any) -> Any:
            def spy(pf: Any, columns: list[str] | None = None, *a: Any, **k: Any) -> pa.Table:
                calls[(pf.__dict__.get("_name", "?"), "read", "all" if columns is None else ",".join(columns))] += 1
                return real(pf, columns, *a, **k)

            return spy

        def group(real: Any) -> Any:
            def spy(pf: Any, i: int, *a: Any, **k: Any) -> pa.Table:
                calls[(pf.__dict__.get("_name", "?"), "row_group", str(i))] += 1
                return real(pf, i, *a, **k)

            return spy

        def batches(real: Any) -> Any:
            def spy(pf: Any, *a: Any, **k: Any) -> Iterator[pa.RecordBatch]:
                calls[(pf.__dict__.get("_name", "?"), "batches", ",".join(k.get("columns") or []))] += 1
                return real(pf, *a, **k)  # type: ignore[no-any-return]

            return spy

        def table(real: Any) -> Any:
            def spy(source: Any, *a: Any, **k: Any) -> pa.Table:
                calls[(Path(str(source)).name, "read_table", "")] += 1
                return real(source, *a, **k)

            return spy

        def init(real: Any) -> Any:
            def spy(pf: Any, source: Any, *a: Any, **k: Any) -> None:
                real(pf, source, *a, **k)
                pf.__dict__["_name"] = Path(str(source)).name

            return spy

        spy_on(monkeypatch, PARQUET_FILES, "__init__", init)
        spy_on(monkeypatch, PARQUET_FILES, "read", read)
        spy_on(monkeypatch, PARQUET_FILES, "read_row_group", group)
        spy_on(monkeypatch, PARQUET_FILES, "iter_batches", batches)
        monkeypatch.setattr(pq, "read_table", table(pq.read_table))  # parquet_lite's read_table is this one

    def of(self, file: str) -> dict[tuple[str, str], int]:
        return {(how, what): n for (f, how, what), n in self.calls.items() if f == file}


def test_scan_reads_no_table_and_an_image_reads_one_images_row_group(
    plate: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = Reads(monkeypatch)
    ds = OMEArrowDataset.scan(plate)
    assert len(ds) == N and reads.calls == Counter()  # footers only
    np.testing.assert_array_equal(ds[17].to_numpy()[0, :, 0], _image(17))
    images = reads.of("images.parquet")
    assert ("read", "all") not in images and ("read_table", "") not in images  # never the whole images table
    # rows 15..19: its own group only (row group 3, read through a footer of that group alone: row group 0 there)
    assert [(k, n) for k, n in images.items() if k[0] == "row_group"] == [(("row_group", "0"), 1)]
    assert sorted(open_dataset(plate).images._decoded) == [(0, 3)]  # (part, row group) decoded (its columns)
    np.testing.assert_array_equal(ds.read([3, 22, 17]), np.stack([_image(i) for i in (3, 22, 17)]))
    assert ("read", "all") not in reads.of("images.parquet")
    assert ds._table is None  # the metadata table was never needed
    assert ds.table.column("label").to_pylist() == list(range(N))  # read when asked for


def test_a_sliced_lazy_dataset_matches_the_eager_one(plate: Path) -> None:
    lazy = OMEArrowDataset.scan(plate)
    eager = OMEArrowDataset.scan(plate, filter=pc.field("label") >= 0)  # a filter reads the table
    assert lazy._positions.implicit and not eager._positions.implicit

    @settings(max_examples=40, deadline=None)
    @given(st.lists(st.integers(-N, N - 1), max_size=12), st.integers(1, 5), st.integers(0, 4))
    def check(picks: list[int], step: int, start: int) -> None:
        a, b = lazy.select(range(start, N, step)), eager.select(range(start, N, step))
        assert len(a) == len(b) and a.table.equals(b.table)
        if len(a):
            k = [p % len(a) for p in picks]
            assert [a.locate(i) for i in k] == [b.locate(i) for i in k]
            if k:
                np.testing.assert_array_equal(a.read(k), b.read(k))
                sub_a, sub_b = a.select(k), b.select(k)
                assert sub_a.table.equals(sub_b.table) and len(sub_a) == len(k)

    check()


def test_select_checks_every_index(plate: Path) -> None:
    ds = OMEArrowDataset.scan(plate)
    with pytest.raises(IndexError):
        ds.select(np.array([0, N]))
    with pytest.raises(IndexError):
        ds.select(range(0, N + 1))
    assert ds.select(np.array([-1])).metadata(0)["label"] == N - 1


def test_filter_and_shard_of_a_lazy_dataset(plate: Path) -> None:
    ds = OMEArrowDataset.scan(plate)
    shard = ds.select(range(1, len(ds), 4))
    assert shard._table is None and [shard.metadata(i)["label"] for i in range(len(shard))] == list(range(1, N, 4))
    kept = ds.filter({"well": "W2"})
    assert kept.table.column("label").to_pylist() == list(range(2, N, 4))
    np.testing.assert_array_equal(kept[1].to_numpy()[0, :, 0], _image(6))


def test_read_of_images_of_different_shapes_is_refused_without_the_table(tmp_path: Path) -> None:
    arrs = [np.zeros((1, 8, 8), np.uint16), np.ones((1, 8, 6), np.uint16), np.full((1, 8, 8), 2, np.uint16)]
    out = write_dataset(arrs, tmp_path / "mixed", dim_order="CYX", progress=False)
    ds = OMEArrowDataset.scan(out)
    np.testing.assert_array_equal(ds.read([0, 2]).reshape(2, 8, 8), np.stack([arrs[0][0], arrs[2][0]]))
    with pytest.raises(SchemaError, match="different shapes"):
        ds.read([0, 1])
    assert ds._table is None


def _rewrite_images(root: Path, change: dict[str, Any], row: int) -> None:
    """Rewrite images.parquet with column values of row ``row`` changed (row groups of 5 kept); digests dropped."""
    file = root / "images.parquet"
    table = pq.read_table(file)
    cols = {}
    for name in table.column_names:
        values = table.column(name).to_pylist()
        if name in change:
            values[row] = change[name]
        cols[name] = pa.array(values, table.schema.field(name).type)
    pq.write_table(pa.table(cols, schema=table.schema), file, row_group_size=5)
    without_table_digests(root)


@pytest.mark.parametrize(
    "change", [{"size_x": 9}, {"size_y": 4}, {"image_id": "image-00003"}, {"dtype": "uint8"}, {"dtype": "float64"}]
)
def test_a_lying_images_row_is_refused_on_the_lazy_path(tmp_path: Path, change: dict[str, Any]) -> None:
    root = _plate(tmp_path / "p")
    _rewrite_images(root, change, 12)
    ds = OMEArrowDataset.scan(root)
    if "image_id" in change and open_dataset(root).aligned is None:  # ids must be unique: the dataset is refused
        with pytest.raises(DamagedFileError, match="more than once"):
            ds[11]
    else:  # (an aligned index checks ids as groups load: row 12's id has no chunks in its group)
        np.testing.assert_array_equal(ds[11].to_numpy()[0, :, 0], _image(11))  # its neighbours in the group still read
    with pytest.raises(OMEArrowError):
        got = ds[12].to_numpy()
        assert np.array_equal(got[0, 0], _image(12))  # never reached: a lie is refused, not read
    with pytest.raises(OMEArrowError):
        ds.read([11, 12])


def test_images_footer_claiming_other_row_groups_is_refused(tmp_path: Path) -> None:
    root = _plate(tmp_path / "p")
    file = root / "images.parquet"
    table = pq.read_table(file)
    pq.write_table(table.slice(0, N - 2), file, row_group_size=5)  # two images gone, the index still has them
    without_table_digests(root)
    ds = OMEArrowDataset.scan(root)
    assert len(ds) == N - 2
    np.testing.assert_array_equal(ds[N - 3].to_numpy()[0, :, 0], _image(N - 3))


def test_a_damaged_images_row_group_is_refused_by_its_digest_after_the_scan(tmp_path: Path) -> None:
    root = _plate(tmp_path / "p")
    ds = OMEArrowDataset.scan(root)
    file = root / "images.parquet"
    bounds = groups_of(json.loads((root / "_ome_arrow_dataset.json").read_text())["ome_arrow_core"])["images.parquet"][
        "bounds"
    ]
    data = bytearray(file.read_bytes())
    data[(bounds[2] + bounds[3]) // 2] ^= 0xFF  # in row group 2's pages (images 10..14): the footer still parses
    file.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=r"\[images.parquet\]: .* row group 2 .*was not parsed"):
        ds[12]
    np.testing.assert_array_equal(ds[3].to_numpy(layout="CYX"), _image(3))  # its own row group is intact
    again = OMEArrowDataset.scan(root)  # the footer is intact: a scan reads it
    assert len(again) == N
    with pytest.raises(ChecksumError):
        again[10]


def test_a_lying_index_is_refused_on_the_lazy_path(tmp_path: Path) -> None:
    root = _plate(tmp_path / "p")
    file = root / "index.parquet"
    index = pq.read_table(file)
    ids = index.column("image_id").to_pylist()
    swap = {"image-00008": "image-00009", "image-00009": "image-00008"}
    ids = [swap.get(v, v) for v in ids]  # two images swap their chunks
    pq.write_table(index.set_column(0, "image_id", pa.array(ids, pa.string())), file)
    without_table_digests(root)
    ds = OMEArrowDataset.scan(root)
    np.testing.assert_array_equal(ds[7].to_numpy()[0, :, 0], _image(7))
    for i in (8, 9):
        with pytest.raises(DamagedFileError):
            ds[i].to_numpy()


@pytest.mark.parametrize("n_new", [N, 5])
def test_a_dataset_replaced_after_the_scan_reads_fresh_pixels_or_refuses(tmp_path: Path, n_new: int) -> None:
    root = _plate(tmp_path / "p")
    ds = OMEArrowDataset.scan(root)
    np.testing.assert_array_equal(ds[2].to_numpy()[0, :, 0], _image(2))
    _plate(root, n=n_new, seed=1000, mode="overwrite")
    np.testing.assert_array_equal(ds[2].to_numpy()[0, :, 0], _image(1002))  # the new writer's pixels, never the old
    np.testing.assert_array_equal(ds.read([3])[0], _image(1003))
    if n_new < N:
        with pytest.raises(OMEArrowError, match="changed since this dataset was scanned .* scan it again"):
            ds[N - 1]


def test_an_append_after_the_scan_is_seen_by_a_new_scan(tmp_path: Path) -> None:
    root = _plate(tmp_path / "p", n=6)
    ds = OMEArrowDataset.scan(root)
    _plate(root, n=3, seed=100, mode="append")
    again = OMEArrowDataset.scan(root)
    assert len(ds) == 6 and len(again) == 9
    np.testing.assert_array_equal(again[7].to_numpy()[0, :, 0], _image(101))
    assert again.metadata(8)["label"] == 102
    manifest = json.loads((root / "_ome_arrow_dataset.json").read_text())
    assert manifest["image_count"] == 9


def test_a_lazy_dataset_pickles_without_its_table(plate: Path) -> None:
    import pickle

    ds = OMEArrowDataset.scan(plate)
    shard = ds.select(range(2, N, 3))
    assert ds.table.num_rows == N  # read in this process: not sent along
    for d, first in ((ds, 0), (shard, 2)):
        again = pickle.loads(pickle.dumps(d))
        assert again._table is None and len(again) == len(d)
        np.testing.assert_array_equal(again[0].to_numpy()[0, :, 0], _image(first))
        assert again.table.equals(d.table)
