"""The Dask engine (ome-arrow-dask): datasets and views as dask arrays chunked like their storage."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

da = pytest.importorskip("dask.array")
pytest.importorskip("ome_arrow_dask")

from ome_arrow_core import OMEArrow, OMEArrowDataset, SchemaError, write_dataset  # noqa: E402
from ome_arrow_core.errors import ArgumentError, ArgumentTypeError, StorageError  # noqa: E402
from ome_arrow_dask import storage_chunks, to_dask  # noqa: E402

N = 7


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    arrs = np.random.default_rng(1).integers(0, 4096, (N, 1, 3, 2, 40, 50), dtype=np.uint16)  # TZCYX
    out = write_dataset(
        list(arrs),
        tmp_path_factory.mktemp("dask") / "plate",
        dim_order="TZCYX",
        chunk_shape=(2, 16, 32),
        metadata={"well": [f"A{i % 2}" for i in range(N)]},
        progress=False,
    )
    return out, arrs


class CountingDataset(OMEArrowDataset):
    """Counts batched reads (to check that building an array reads nothing)."""

    reads = 0

    def read(self, *args: Any, **kwargs: Any) -> np.ndarray:
        type(self).reads += 1
        return super().read(*args, **kwargs)


def test_dataset_to_dask_follows_storage_chunks(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    ds = OMEArrowDataset.scan(path)
    arr = to_dask(ds, chunks="storage")  # the default layout: TCZYX
    assert arr.shape == (N, 1, 2, 3, 40, 50) and arr.dtype == np.uint16
    assert arr.chunks == ((1,) * N, (1,), (1, 1), (2, 1), (16, 16, 8), (32, 18))
    np.testing.assert_array_equal(arr.compute(), arrs.transpose(0, 1, 3, 2, 4, 5))
    storage = to_dask(ds, chunks="storage", layout="TZCYX")
    assert storage.chunks == ((1,) * N, (1,), (2, 1), (1, 1), (16, 16, 8), (32, 18))
    np.testing.assert_array_equal(storage.compute(), arrs)
    grouped = to_dask(ds, chunks="storage", images_per_chunk=3, z=1, c=0, layout="YX")
    assert grouped.chunks == ((3, 3, 1), (16, 16, 8), (32, 18))
    np.testing.assert_array_equal(grouped.compute(), arrs[:, 0, 1, 0])
    assert float(arr.mean().compute()) == pytest.approx(float(arrs.mean()))


def test_blocks_read_lazily_and_only_what_is_asked(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    base = OMEArrowDataset.scan(path)
    ds = CountingDataset(base._parts, base.table, base._part_of, base._rows)
    CountingDataset.reads = 0
    arr = to_dask(ds.tensor_views(t=0, z=2, layout="CYX"), chunks="storage")
    assert CountingDataset.reads == 0  # building the graph reads no pixels
    crop = arr[4, 1, 20:30, 40:45].compute(scheduler="sync")
    np.testing.assert_array_equal(crop, arrs[4, 0, 2, 1, 20:30, 40:45])
    assert CountingDataset.reads == 1  # one block: (image 4, channel 1, y 16..32, x 32..50)


def test_filters_views_dtype_and_processes(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    ds = OMEArrowDataset.scan(path, filter={"well": "A1"})
    arr = to_dask(ds.tensor_views(c=1, z=0, roi=(5, 6, 30, 20), layout="YX", dtype="float32"))
    assert arr.dtype == np.float32 and arr.shape == (3, 20, 30)
    np.testing.assert_array_equal(
        arr.compute(scheduler="processes"), arrs[1::2, 0, 0, 1, 6:26, 5:35].astype(np.float32)
    )


def test_images_and_views(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    img = OMEArrowDataset.scan(path)[2]
    arr = to_dask(img, layout="ZCYX", chunks="storage")
    assert arr.chunks == ((2, 1), (1, 1), (16, 16, 8), (32, 18))
    np.testing.assert_array_equal(arr.compute(), arrs[2, 0])
    view = OMEArrow.scan(path, row=3).tensor_view(z=1, layout="CYX")
    np.testing.assert_array_equal(to_dask(view).compute(), arrs[3, 0, 1])
    eager = OMEArrow(arrs[0], "TZCYX").tensor_view(layout="TZCYX")
    np.testing.assert_array_equal(to_dask(eager)[0, 1].compute(), arrs[0, 0, 1])


def test_storage_chunks_of_strided_selections() -> None:
    from ome_arrow_core import Selection

    sel = Selection(t=range(1), z=(0, 1, 5, 6), c=range(0, 4, 2), y=range(3, 20), x=range(0, 8))
    assert storage_chunks(sel, "ZCYX", (1, 1, 2, 8, 8)) == ((2, 1, 1), (1, 1), (5, 8, 4), (8,))


def test_errors(plate: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    _path, _ = plate
    with pytest.raises(ArgumentTypeError, match="OMEArrowDataset"):
        to_dask(np.zeros(3))
    mixed = write_dataset([np.zeros((4, 4), np.uint8), np.zeros((4, 6), np.uint8)], tmp_path / "m", progress=False)
    with pytest.raises(SchemaError, match="one shape"):
        to_dask(OMEArrowDataset.scan(mixed))
    assert to_dask(OMEArrowDataset.scan(mixed), roi=(0, 0, 4, 4)).shape == (2, 1, 4, 4)


def test_images_of_several_dtypes_need_dtype_and_read_with_it(tmp_path: Path) -> None:
    arrs = [np.arange(32, dtype=np.int8).reshape(2, 4, 4), np.full((2, 4, 4), 2.5, np.float32)]
    ds = OMEArrowDataset.scan(write_dataset(arrs, tmp_path / "m", dim_order="CYX", progress=False))
    with pytest.raises(SchemaError, match=r"one dtype.*\['float32', 'int8'\].*dtype="):
        to_dask(ds)  # refused here: it made an int8 array whose compute failed, saying to pass dtype=
    for chunks in ("auto", "storage"):
        arr = to_dask(ds, dtype="float32", chunks=chunks)  # computing this raised MixedDtypes: dtype= was not read
        assert arr.dtype == np.float32
        np.testing.assert_array_equal(arr.compute(), np.stack([a.astype(np.float32) for a in arrs]))


def test_auto_chunks_fill_the_limit_with_whole_storage_chunks(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    ds = OMEArrowDataset.scan(path)
    image = 1 * 3 * 2 * 40 * 50 * 2  # bytes of one image
    arr = to_dask(ds)  # 128 MiB blocks: every image in one block (TCZYX)
    assert arr.chunks == ((N,), (1,), (2,), (3,), (40,), (50,))
    three = to_dask(ds, chunks=3 * image)
    assert three.chunks[0] == (3, 3, 1) and three.chunks[1:] == ((1,), (2,), (3,), (40,), (50,))
    np.testing.assert_array_equal(three.compute(), arrs.transpose(0, 1, 3, 2, 4, 5))
    # An image larger than the limit: cut along its storage chunks, merged from X outwards.
    # storage chunks along C, Z, Y, X: (1, 1), (2, 1), (16, 16, 8), (32, 18)
    stack = to_dask(ds, chunks=4 * 40 * 50 * 2, t=0, layout="CZYX")  # two Z chunks (2 + 1 planes) fit
    assert stack.chunks == ((1,) * N, (1, 1), (3,), (40,), (50,))
    planes = to_dask(ds, chunks=8000, t=0, layout="CZYX")  # whole planes; Z keeps its storage chunks
    assert planes.chunks == ((1,) * N, (1, 1), (2, 1), (40,), (50,))
    cut = to_dask(ds, chunks=6400, t=0, layout="CZYX")  # X whole, Y in pairs of storage chunks
    assert cut.chunks == ((1,) * N, (1, 1), (2, 1), (32, 8), (50,))
    np.testing.assert_array_equal(cut.compute(), arrs[:, 0].transpose(0, 2, 1, 3, 4))
    rows = to_dask(ds, chunks=2048, t=0, z=0, c=0, layout="YX")
    assert rows.chunks == ((1,) * N, (16, 16, 8), (50,))
    np.testing.assert_array_equal(rows.compute(), arrs[:, 0, 0, 0])
    assert to_dask(ds, images_per_chunk=2).chunks[0] == (2, 2, 2, 1)
    assert to_dask(ds, chunks="1KiB", t=0, z=0, c=0, layout="YX").chunks[1:] == ((16, 16, 8), (32, 18))


def test_auto_chunks_of_a_large_plate_make_few_tasks(tmp_path: Path) -> None:
    # 1,000 images of 2x64x64 uint16 (16 KiB): 8 blocks of 128 images at a 2 MiB limit, 10 graph entries in all
    # (the blocks, the dataset and the copies on disk it was planned from; one image per block made 2,001).
    n = 1000
    out = write_dataset(
        (np.full((2, 64, 64), i, np.uint16) for i in range(n)), tmp_path / "big", dim_order="CYX", progress=False
    )
    arr = to_dask(OMEArrowDataset.scan(out), chunks="2MiB")
    assert arr.chunks[0] == (128,) * 7 + (104,) and arr.numblocks == (8, 1, 1, 1)
    assert len(dict(arr.__dask_graph__())) == 10
    np.testing.assert_array_equal(arr[:, 0, 0, 0].compute(), np.arange(n))


@pytest.mark.parametrize("chunks", ["lots", -1, 0, 1.5, True])
def test_bad_chunks_are_refused(plate: tuple[Path, np.ndarray], chunks: Any) -> None:
    with pytest.raises(ArgumentError, match="chunks"):
        to_dask(OMEArrowDataset.scan(plate[0]), chunks=chunks)


@pytest.mark.parametrize("images_per_chunk", [0, -2, "2", 2.5, True])
def test_bad_images_per_chunk_is_refused(plate: tuple[Path, np.ndarray], images_per_chunk: Any) -> None:
    # 0 and -2 were taken as 1, "2" and 2.5 as 2, True as 1: a typo gave another blocking, unasked
    with pytest.raises(ArgumentError, match="images_per_chunk"):
        to_dask(OMEArrowDataset.scan(plate[0]), images_per_chunk=images_per_chunk)


def test_distributed_local_cluster_of_processes(plate: tuple[Path, np.ndarray]) -> None:
    distributed = pytest.importorskip("dask.distributed")
    path, arrs = plate
    arr = to_dask(OMEArrowDataset.scan(path), chunks=3 * 1 * 3 * 2 * 40 * 50 * 2, c=1, layout="TZYX")
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        got = arr.compute()
        pids = client.run(lambda: __import__("os").getpid())
        assert len(set(pids.values())) == 2 and __import__("os").getpid() not in pids.values()
        mean = float(client.compute(arr.astype(np.float64).mean()).result())
    np.testing.assert_array_equal(got, arrs[:, :, :, 1])
    assert mean == pytest.approx(float(arrs[:, :, :, 1].mean()))


@given(
    inner=st.lists(st.lists(st.integers(1, 9), min_size=1, max_size=5), min_size=1, max_size=4),
    itemsize=st.sampled_from([1, 2, 4]),
    images=st.integers(1, 50),
    limit=st.integers(1, 20_000),
)
def test_plan_keeps_storage_boundaries_and_the_limit(
    inner: list[list[int]], itemsize: int, images: int, limit: int
) -> None:
    from ome_arrow_dask.chunking import plan

    outer, merged = plan(inner, itemsize, images, limit, None)
    assert sum(outer) == images
    for sizes, blocks in zip(inner, merged):
        assert sum(blocks) == sum(sizes)
        assert set(np.cumsum(blocks).tolist()) <= set(np.cumsum(sizes).tolist())  # cut only where storage is
    one_chunk = itemsize * int(np.prod([max(s) for s in inner]))
    block = itemsize * max(outer) * int(np.prod([max(b) for b in merged]))
    assert block <= max(limit, one_chunk)  # over the limit only when one storage chunk of one image is


def test_a_dataset_rewritten_in_another_dtype_raises_when_computed(tmp_path: Path) -> None:
    # the graph planned uint16 blocks; after the overwrite dask handed on float32 blocks under a uint16 array
    path = write_dataset([np.full((2, 6, 8), i, np.uint16) for i in range(3)], tmp_path / "p", progress=False)
    arr = to_dask(OMEArrowDataset.scan(path), chunks="storage")
    cast = to_dask(OMEArrowDataset.scan(path), dtype="float32")  # its plan's shape and dtype still hold
    write_dataset([np.full((2, 6, 8), i + 0.5, np.float32) for i in range(3)], path, mode="overwrite", progress=False)
    for built in (arr, cast):  # other images than planned, whatever they look like
        with pytest.raises(StorageError, match="was overwritten after this dask array was made") as err:
            built.compute(scheduler="sync")
        assert err.value.errno == errno.ESTALE
    again = to_dask(OMEArrowDataset.scan(path)).compute()  # a new scan reads the new copy
    assert again.dtype == np.float32 and again[2].max() == 2.5


@pytest.mark.parametrize("scheduler", ["sync", "processes"])
def test_a_dataset_overwritten_with_larger_images_raises_instead_of_serving_a_crop(
    tmp_path: Path, scheduler: str
) -> None:
    # the blocks read the new, larger images cropped to the planned shape, silently
    path = write_dataset([np.full((2, 6, 8), i, np.uint16) for i in range(3)], tmp_path / "p", progress=False)
    arr = to_dask(OMEArrowDataset.scan(path))
    write_dataset([np.full((2, 12, 16), 9, np.uint16) for _ in range(3)], path, mode="overwrite", progress=False)
    with pytest.raises(StorageError, match="was overwritten after this dask array was made"):
        arr.compute(scheduler=scheduler)


def test_an_append_after_the_array_was_built_keeps_its_blocks(tmp_path: Path) -> None:
    path = write_dataset([np.full((2, 6, 8), i, np.uint16) for i in range(3)], tmp_path / "p", progress=False)
    arr = to_dask(OMEArrowDataset.scan(path))
    write_dataset([np.full((2, 6, 8), 7, np.uint16)], path, mode="append", progress=False)
    got = arr.compute(scheduler="sync")  # the images it planned are still those in the dataset
    assert got.shape[0] == 3 and [int(got[i].max()) for i in range(3)] == [0, 1, 2]


@pytest.mark.parametrize("sizes", [((10, 12), (14, 12)), ((14, 12), (10, 12))])
def test_a_folder_of_images_of_several_shapes_is_refused(tmp_path: Path, sizes: tuple[tuple[int, int], ...]) -> None:
    # A folder of TIFFs has no size columns: the larger second image was read cropped to the first's size,
    # silently (or a smaller one failed with "y range does not fit")
    pytest.importorskip("ome_arrow_tiff")
    for i, yx in enumerate(sizes):
        OMEArrow.from_numpy(np.ones((2, *yx), np.uint16), dim_order="CYX").export(None, tmp_path / f"im{i}.ome.tiff")
    ds = OMEArrowDataset.scan(tmp_path)
    with pytest.raises(SchemaError, match="one shape for every image; image 1 gives"):
        to_dask(ds).compute()
    assert to_dask(ds, roi=(0, 0, 12, 10)).compute().shape == (2, 2, 10, 12)  # a common crop is fine


def test_layouts_with_the_aliases_h_and_w(plate: tuple[Path, np.ndarray]) -> None:
    # layout="HWC" (H and W: Y and X) failed with "'Selection' object has no attribute 'h'"
    from ome_arrow_dask import to_xarray

    path, _ = plate
    ds = OMEArrowDataset.scan(path)
    want = [OMEArrowDataset.scan(path)[i].tensor_view(layout="HWC", z=1).to_numpy() for i in range(N)]
    for chunks in ("storage", 4000):
        np.testing.assert_array_equal(to_dask(ds, chunks=chunks, layout="HWC", z=1).compute(), np.stack(want))
        np.testing.assert_array_equal(to_dask(ds[2], chunks=chunks, layout="HWC", z=1).compute(), want[2])
        np.testing.assert_array_equal(to_dask(ds[3].tensor_view(layout="HWC", z=1), chunks=chunks).compute(), want[3])
    labelled = to_xarray(ds, layout="HWC", z=1)
    assert labelled.dims == ("image", "H", "W", "C") and labelled.shape == (N, 40, 50, 2)
    np.testing.assert_array_equal(labelled.values, np.stack(want))


def test_a_folder_of_images_of_several_dtypes_raises_our_error_from_worker_processes(tmp_path: Path) -> None:
    # MixedDtypes did not unpickle (its dtypes argument was lost): dask's processes scheduler (and Ray, whose
    # read tasks raise it) gave a foreign error about deserialising the exception instead
    import pickle

    from ome_arrow_core.errors import SchemaError as Schema

    pytest.importorskip("ome_arrow_tiff")
    for i, dtype in enumerate((np.uint16, np.float32)):
        OMEArrow.from_numpy(np.ones((2, 4, 5), dtype), dim_order="CYX").export(None, tmp_path / f"im{i}.ome.tiff")
    arr = to_dask(OMEArrowDataset.scan(tmp_path), images_per_chunk=2)
    with pytest.raises(Schema, match="different dtypes") as raised:
        arr.compute(scheduler="processes", num_workers=1)
    again = pickle.loads(pickle.dumps(raised.value))
    assert str(again) == str(raised.value) and getattr(again, "dtypes", None) == raised.value.dtypes
