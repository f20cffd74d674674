"""OMEArrowDataset and write_dataset: scans, filters, random access, batched reads, other storages, processes.

What write_dataset writes on appends, failures, streams and large images: test_dataset_writes.py.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from dataset_plates import REF, plate_pixels, write_plate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ome_arrow_core import (
    DTypeError,
    ImageMeta,
    LayoutError,
    LazyTensorView,
    OMEArrow,
    OMEArrowDataset,
    SchemaError,
    SelectionError,
    default_registry,
    write_dataset,
)
from ome_arrow_core import typed_chunk as pqd
from ome_arrow_core.errors import ArgumentError
from ome_arrow_core.record import pixels_to_record
from ome_arrow_core.typed_chunk.opening import open_dataset


# -- writing and scanning ------------------------------------------------------------------------
def test_write_scan_roundtrip_with_metadata(tmp_path: Path) -> None:
    out, arrs = write_plate(tmp_path)
    ds = OMEArrowDataset.scan(out)
    assert len(ds) == 12
    assert {"well", "site", "label"} <= set(ds.column_names)
    assert ds.extra_columns == ["well", "site", "label"]
    assert ds.metadata(4)["label"] == 4 and ds.metadata(-1)["image_id"] == "image-00011"
    img = ds[5]
    assert isinstance(img, OMEArrow) and img.is_lazy
    np.testing.assert_array_equal(img.to_numpy()[0, :, 0], arrs[5])
    assert [im.to_numpy()[0, 1, 0, 0, 0] for im in ds] == [a[1, 0, 0] for a in arrs]
    # images.parquet keeps the reference columns first, extras after
    names = pq.read_schema(out / "images.parquet").names
    assert names[: len(pqd.IMAGES_SCHEMA.names)] == pqd.IMAGES_SCHEMA.names
    assert names[len(pqd.IMAGES_SCHEMA.names) :] == ["well", "site", "label"]


def test_reference_reader_reads_what_we_write(tmp_path: Path) -> None:
    ref = pytest.importorskip("ome_arrow.dataset")
    out, arrs = write_plate(tmp_path, n=4)
    r = ref.OMEArrowDataset(out)
    assert r.image_ids == [f"image-{i:05d}" for i in range(4)]
    np.testing.assert_array_equal(r.read_image("image-00003")[0, :, 0], arrs[3])  # TCZYX


def test_inputs_paths_tuples_omearrow_and_datasets(tmp_path: Path) -> None:
    arrs = plate_pixels(3, (1, 2, 16, 16))
    files = []
    for i, a in enumerate(arrs):
        f = tmp_path / f"in{i}.ome.parquet"
        OMEArrow(a, "TZYX").export("parquet", f)
        files.append(f)
    meta = ImageMeta(sizes={"T": 1, "Z": 2, "C": 1, "Y": 16, "X": 16}, dtype=np.dtype("uint16"))
    items = [files[0], (meta, arrs[1].reshape(1, 1, 2, 16, 16)), OMEArrow(arrs[2], "TZYX")]  # pairs are TCZYX
    out = write_dataset(items, tmp_path / "ds", image_ids=["a", "b", "c"], progress=False)
    ds = OMEArrowDataset.scan(out)
    assert ds.table.column("image_id").to_pylist() == ["a", "b", "c"]
    for i in range(3):
        np.testing.assert_array_equal(ds[i].to_numpy()[0, 0], arrs[i][0])
    copy = write_dataset(OMEArrowDataset.scan(write_plate(tmp_path)[0]), tmp_path / "copy", progress=False)
    assert (
        OMEArrowDataset.scan(copy).table.column("well").to_pylist()
        == OMEArrowDataset.scan(tmp_path / "plate").table.column("well").to_pylist()
    )


@pytest.mark.parametrize("dtype", ["uint16", "float32", "int8", "uint32", "bool"])
def test_dtype_kept(tmp_path: Path, dtype: str) -> None:
    arrs = plate_pixels(3, (2, 8, 8), dtype)
    out = write_dataset(arrs, tmp_path / "d", dim_order="CYX", progress=False)
    got = OMEArrowDataset.scan(out).read()
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, np.stack(arrs))


def test_progress_bar_goes_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_dataset(plate_pixels(3), tmp_path / "d", dim_order="CYX", progress=True)
    err = capsys.readouterr().err
    assert "write_dataset" in err and "3" in err


# -- filters ---------------------------------------------------------------------------------------
def test_filter_mapping_and_expression_push_down_to_row_groups(tmp_path: Path) -> None:
    out, arrs = write_plate(tmp_path, images_per_group=3)
    everything = OMEArrowDataset.scan(out)
    assert everything.row_groups_scanned == (4, 4)
    ds = OMEArrowDataset.scan(out, filter={"well": "B01"})
    assert ds.table.column("label").to_pylist() == [7, 10]
    np.testing.assert_array_equal(ds[1].to_numpy()[0, :, 0], arrs[10])
    assert ds.row_groups_scanned[0] < ds.row_groups_scanned[1]  # statistics ruled row groups out
    late = OMEArrowDataset.scan(out, filter=pc.field("label") >= 9)
    assert late.table.column("label").to_pylist() == [9, 10, 11] and late.row_groups_scanned == (1, 4)
    some = OMEArrowDataset.scan(out, filter={"site": [1], "well": ["A00", "A01"]})
    assert some.table.column("label").to_pylist() == [1, 3]
    assert len(OMEArrowDataset.scan(out, filter={"well": "Z99"})) == 0
    assert everything.filter({"site": 0}).table.column("label").to_pylist() == [0, 2, 4, 6, 8, 10]


def test_filter_ranges_and_numpy_arrays_mean_one_of(tmp_path: Path) -> None:
    out, _ = write_plate(tmp_path)
    for spec, labels in (
        ({"label": range(2, 5)}, [2, 3, 4]),  # raised pyarrow's ArrowInvalid before
        ({"label": np.array([1, 9])}, [1, 9]),  # a SchemaError (compared to a list value) before
        ({"well": np.array(["B01", "A02"]), "site": np.array([0])}, [2, 10]),
        ({"label": np.array(3)}, [3]),
        ({"label": range(0)}, []),
    ):
        assert OMEArrowDataset.scan(out, filter=spec).table.column("label").to_pylist() == labels
        assert OMEArrowDataset.scan(out).filter(spec).table.column("label").to_pylist() == labels  # columns alone
        assert OMEArrowDataset.scan(out).select(range(12)).filter(spec).table.column("label").to_pylist() == labels
    for spec, match in (
        ({"label": np.zeros((2, 2), int)}, r"filter \{'label': array of shape \(2, 2\)\}: .* must be 1-d"),
        ({"label": object()}, r"filter \{'label': <object .*a term is one value"),
        ({"label": [1, "a"]}, r"filter \{'label': \[1, 'a'\]\}: .*values of one type"),
    ):
        with pytest.raises(ArgumentError, match=match):
            OMEArrowDataset.scan(out, filter=spec)
        with pytest.raises(ArgumentError, match=match):
            OMEArrowDataset.scan(out).filter(spec)


def test_filter_errors_name_the_columns(tmp_path: Path) -> None:
    out, _ = write_plate(tmp_path)
    with pytest.raises(ArgumentError, match="well"):
        OMEArrowDataset.scan(out, filter={"nope": 1})
    with pytest.raises(ArgumentError, match="mapping"):
        OMEArrowDataset.scan(out, filter="well == 'A01'")  # type: ignore[arg-type]


# -- random access ----------------------------------------------------------------------------------
def test_random_access_reads_only_that_images_row_groups(tmp_path: Path) -> None:
    out, arrs = write_plate(tmp_path, chunk_shape=(12, 16))  # 2 channels x 2 x 2 tiles = 8 chunks per image
    ds = OMEArrowDataset.scan(out)
    img = ds[9]
    np.testing.assert_array_equal(img.to_numpy()[0, :, 0], arrs[9])
    assert img.source.chunks_read == 8 and img.source.row_groups_read == 8
    crop = ds[3].tensor_view(c=1, roi=(0, 0, 16, 12), layout="YX")
    assert isinstance(crop, LazyTensorView)
    np.testing.assert_array_equal(crop.to_numpy(), arrs[3][1, :12, :16])
    # finding an image is a lookup in a per-process index, not a scan of the files
    opened = open_dataset(out, default_registry())
    assert opened.chunk_rows(9).tolist() == list(range(72, 80))


def test_index_errors(tmp_path: Path) -> None:
    out, _ = write_plate(tmp_path, n=3)
    ds = OMEArrowDataset.scan(out)
    with pytest.raises(IndexError, match="0..2"):
        ds[3]
    with pytest.raises(TypeError):
        ds["a"]  # type: ignore[index]
    assert len(ds.select([2, 0])) == 2 and ds.select([2, 0]).metadata(0)["label"] == 2


# -- views and batched reads ---------------------------------------------------------------------------
def test_tensor_views_one_selection_for_every_image(tmp_path: Path) -> None:
    out, arrs = write_plate(tmp_path)
    views = OMEArrowDataset.scan(out).tensor_views(c=1, roi=(4, 2, 10, 8), layout="YX")
    assert len(views) == 12 and views.shape == (8, 10) and views.dtype == np.uint16 and views.layout == "YX"
    assert all(isinstance(v, LazyTensorView) for v in views)
    np.testing.assert_array_equal(views[6].to_numpy(), arrs[6][1, 2:10, 4:14])
    stacked = views.read([6, 0, 11])
    np.testing.assert_array_equal(stacked, np.stack([a[1, 2:10, 4:14] for a in (arrs[6], arrs[0], arrs[11])]))
    assert stacked.flags.writeable and stacked.flags.c_contiguous
    wide = OMEArrowDataset.scan(out).tensor_views(layout="YXC", dtype="float32").read(range(3))
    assert wide.dtype == np.float32 and wide.shape == (3, 24, 32, 2)
    np.testing.assert_array_equal(wide[2], arrs[2].transpose(1, 2, 0).astype(np.float32))


def test_read_rois_out_and_layout_errors(tmp_path: Path) -> None:
    out, arrs = write_plate(tmp_path, chunk_shape=(8, 8))
    ds = OMEArrowDataset.scan(out)
    buf = np.zeros((2, 2, 6, 5), np.uint16)
    got = ds.read([1, 2], rois=[(0, 0, 5, 6), (20, 10, 5, 6)], out=buf)
    assert got is buf
    np.testing.assert_array_equal(buf[0], arrs[1][:, :6, :5])
    np.testing.assert_array_equal(buf[1], arrs[2][:, 10:16, 20:25])
    first = ds.read([4], layout="YX", channel_policy="first")
    np.testing.assert_array_equal(first[0], arrs[4][0])
    with pytest.raises(LayoutError, match="drops non-singleton axis C"):
        ds.read([0], layout="YX")
    with pytest.raises(ArgumentError, match="writable"):  # arguments, not files: never SchemaError
        ds.read([0, 1], out=np.zeros((1, 2, 24, 32), np.uint16))
    with pytest.raises(ArgumentError, match="one per image"):
        ds.read([0, 1], rois=[(0, 0, 4, 4)])


def test_read_refuses_mixed_shapes(tmp_path: Path) -> None:
    arrs = [np.zeros((8, 8), np.uint8), np.ones((8, 10), np.uint8)]
    ds = OMEArrowDataset.scan(write_dataset(arrs, tmp_path / "d", progress=False))
    with pytest.raises(SchemaError, match="different shapes"):
        ds.read()
    np.testing.assert_array_equal(ds.read([1], roi=(0, 0, 8, 8))[0, 0], np.ones((8, 8), np.uint8))


def test_views_dtype_is_the_first_images_or_the_casts(tmp_path: Path) -> None:
    arrs = [np.zeros((8, 8), np.uint16), np.ones((8, 8), np.uint16), np.full((8, 8), 2.5, np.float32)]
    out = write_dataset(arrs, tmp_path / "d", metadata={"label": [0, 1, 2]}, progress=False)
    views = OMEArrowDataset.scan(out).tensor_views()
    assert (views.dtype, views.shape) == (np.uint16, (1, 8, 8))  # the first image's, as documented
    with pytest.raises(SchemaError, match=r"different dtypes \['float32', 'uint16'\]"):
        views.read()
    assert OMEArrowDataset.scan(out).tensor_views(dtype="float32").dtype == np.float32
    none = OMEArrowDataset.scan(out, filter={"label": 7})
    assert none.tensor_views(dtype="float32").dtype == np.float32  # every view's: no image opened (was an error)


def test_images_of_different_dtypes_read_as_one_with_a_cast(tmp_path: Path) -> None:
    arrs = [np.full((2, 8, 8), 3, np.uint16), np.full((2, 8, 8), 2.5, np.float32), np.arange(128, dtype=np.uint16)]
    arrs[2] = arrs[2].reshape(2, 8, 8)
    ds = OMEArrowDataset.scan(write_dataset(arrs, tmp_path / "d", dim_order="CYX", progress=False))
    with pytest.raises(SchemaError, match=r"different dtypes \['float32', 'uint16'\].*pass dtype= to read them"):
        ds.read()
    got = ds.read(dtype=np.float32)
    assert got.dtype == np.float32 and got.shape == (3, 2, 8, 8)
    for k, a in enumerate(arrs):
        np.testing.assert_array_equal(got[k], a.astype(np.float32))
    crops = ds.read([2, 1], dtype="float64", rois=[(1, 2, 4, 3), (0, 0, 4, 3)], c=1, layout="YX")
    np.testing.assert_array_equal(crops[0], arrs[2][1, 2:5, 1:5].astype(np.float64))
    np.testing.assert_array_equal(crops[1], arrs[1][1, 0:3, 0:4].astype(np.float64))
    out = np.empty((3, 2, 8, 8), np.float32)
    assert ds.read(dtype=np.float32, out=out) is out
    np.testing.assert_array_equal(out, got)
    np.testing.assert_array_equal(ds.tensor_views(dtype="float32").read(), got)
    with pytest.raises(DTypeError, match="would change values"):
        OMEArrowDataset.scan(
            write_dataset(
                [np.full((8, 8), 300, np.uint16), np.zeros((8, 8), np.float32)], tmp_path / "e", progress=False
            )
        ).read(dtype=np.uint8)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    chunk=st.tuples(st.integers(1, 3), st.integers(1, 9), st.integers(1, 11)),
    roi=st.tuples(st.integers(0, 10), st.integers(0, 8), st.integers(1, 9), st.integers(1, 7)),
    z=st.one_of(st.none(), st.integers(0, 2), st.lists(st.integers(0, 2), min_size=1, max_size=3)),  # repeats too
    idx=st.lists(st.integers(0, 3), min_size=1, max_size=5),
)
def test_batched_reads_match_numpy(
    tmp_path_factory: pytest.TempPathFactory,
    chunk: tuple[int, int, int],
    roi: tuple[int, int, int, int],
    z: object,
    idx: list[int],
) -> None:
    tmp = tmp_path_factory.mktemp("prop")
    arrs = plate_pixels(4, (1, 3, 2, 15, 19), seed=sum(chunk))  # TZCYX
    out = write_dataset(arrs, tmp / "d", dim_order="TZCYX", chunk_shape=chunk, rows_per_group=3, progress=False)
    x, y, w, h = roi
    got = OMEArrowDataset.scan(out).read(idx, z=z, roi=roi, layout="TZCYX")
    zz = [z] if isinstance(z, int) else (list(range(3)) if z is None else z)
    want = np.stack([arrs[i][:, zz][..., y : y + h, x : x + w] for i in idx])
    np.testing.assert_array_equal(got, want)


# -- other storages -----------------------------------------------------------------------------------
def _record_table(arrs: list[np.ndarray], wells: list[str]) -> pa.Table:
    recs = []
    for i, a in enumerate(arrs):
        meta = ImageMeta(
            sizes={"T": 1, "Z": 1, "C": a.shape[0], "Y": a.shape[1], "X": a.shape[2]}, dtype=a.dtype, id=f"r{i}"
        )
        recs.append(pixels_to_record(meta, a[None, None]))
    return pa.table({"cell": pa.array(range(len(arrs))), "well": wells, "ome_arrow": pa.concat_arrays(recs)})


def test_struct_column_parquet_one_image_per_row(tmp_path: Path) -> None:
    arrs = plate_pixels(6, (2, 10, 12))
    pq.write_table(
        _record_table(arrs, ["A01", "A01", "A02", "A02", "B01", "B01"]), tmp_path / "cells.parquet", row_group_size=2
    )
    ds = OMEArrowDataset.scan(tmp_path / "cells.parquet", filter={"well": "A02"})
    assert ds.column_names == ["cell", "well"] and len(ds) == 2 and ds.row_groups_scanned == (1, 3)
    np.testing.assert_array_equal(ds[1].to_numpy()[0, :, 0], arrs[3])
    np.testing.assert_array_equal(ds.read(c=0, layout="YX"), np.stack([arrs[2][0], arrs[3][0]]))
    # a directory of such files is one dataset, in file-name order
    pq.write_table(_record_table(arrs[:2], ["C01", "C02"]), tmp_path / "more.parquet")
    both = OMEArrowDataset.scan(tmp_path)
    assert len(both) == 8 and both.table.column("well").to_pylist()[:2] == ["A01", "A01"]
    np.testing.assert_array_equal(both[7].to_numpy()[0, :, 0], arrs[1])


def test_directory_of_image_files(tmp_path: Path) -> None:
    pytest.importorskip("vortex")
    arrs = plate_pixels(3, (2, 8, 8))
    for i, a in enumerate(arrs):
        OMEArrow(a, "CYX").export("vortex", tmp_path / f"img{i}.vortex")
    (tmp_path / "notes.txt").write_text("not an image")
    ds = OMEArrowDataset.scan(tmp_path)
    assert ds.table.column("image_id").to_pylist() == ["img0.vortex", "img1.vortex", "img2.vortex"]
    np.testing.assert_array_equal(ds.read(), np.stack(arrs))
    assert len(OMEArrowDataset.scan(tmp_path, filter={"image_id": "img1.vortex"})) == 1


def test_reference_fixtures_read_as_datasets() -> None:
    for name in ("oa010_dataset_tiles_two_images.ome-arrow", "oa010_dataset_noindex_float32.ome-arrow"):
        path = REF / name
        ds = OMEArrowDataset.scan(path)
        for i in range(len(ds)):
            np.testing.assert_array_equal(
                ds.read([i])[0], OMEArrow(path, row=i).tensor_view(layout=ds.tensor_views().layout).to_numpy()
            )


def test_empty_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="holds no images"):
        OMEArrowDataset.scan(tmp_path)
    with pytest.raises(FileNotFoundError):
        OMEArrowDataset.scan(tmp_path / "missing")


# -- processes ------------------------------------------------------------------------------------------
def test_dataset_pickles_and_locations_open_anywhere(tmp_path: Path) -> None:
    out, arrs = write_plate(tmp_path, n=3)
    ds = pickle.loads(pickle.dumps(OMEArrowDataset.scan(out, filter={"site": 1})))
    assert len(ds) == 1
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(ds.locate(0))).open().to_numpy()[0, :, 0], arrs[1])
    src = pickle.loads(pickle.dumps(ds[0].source))
    assert isinstance(src, pqd.DatasetSource) and src.meta.id == "image-00001"


def _child(path: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    opened = open_dataset(Path(path), default_registry())
    queue.put((opened is _PARENT.get("opened"), os.getpid(), open_dataset(Path(path), default_registry()) is opened))


_PARENT: dict[str, object] = {}


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method")
@pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")  # JAX, if imported, warns
def test_a_forked_process_takes_over_its_parents_opened_files(tmp_path: Path) -> None:
    """Unchanged files: the child reads through what its parent opened (and loaded), kept under its own pid."""
    out, _ = write_plate(tmp_path, n=2)
    _PARENT["opened"] = open_dataset(out, default_registry())
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(str(out), queue))
    proc.start()
    shared, pid, cached = queue.get(timeout=30)
    proc.join(30)
    assert shared and pid != os.getpid() and cached


def test_a_batch_crop_that_does_not_fit_names_the_image(tmp_path: Path) -> None:
    arrs = [np.zeros((2, 64, 64), np.uint16), np.zeros((2, 64, 64), np.uint16), np.zeros((2, 20, 20), np.uint16)]
    ds = OMEArrowDataset.scan(write_dataset(arrs, tmp_path / "d", dim_order="CYX", progress=False))
    with pytest.raises(SelectionError, match=r"^image 2: y range \[10, 26\) does not fit in \[0, 20\)"):
        ds.read([0, 2], c=0, roi=(10, 10, 16, 16))
    assert ds.read([0, 1], c=0, roi=(10, 10, 16, 16)).shape == (2, 1, 16, 16)  # CYX, C kept


@pytest.mark.parametrize("seed", ["a", 1.5, -3])
def test_a_seed_numpy_refuses_is_an_argument_error(tmp_path: Path, seed: object) -> None:
    """``ds.shuffled(seed)`` raised numpy's TypeError or ValueError (the streams' shuffle checked it already)."""
    ds = OMEArrowDataset.scan(write_dataset([np.zeros((4, 4), np.uint8)] * 3, tmp_path / "d", progress=False))
    with pytest.raises(ArgumentError, match="seed takes an int >= 0"):
        ds.shuffled(seed)  # type: ignore[arg-type]
    assert ds.shuffled(3).table.equals(ds.shuffled(3).table)
