"""The Dask engine (ome-arrow-dask): datasets and views as dask arrays chunked like their storage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
pytest.importorskip("ome_arrow_dask")

from ome_arrow_core import OMEArrow, OMEArrowDataset, SchemaError, write_dataset  # noqa: E402
from ome_arrow_dask import storage_chunks, to_dask  # noqa: E402

N = 7


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    arrs = np.random.default_rng(1).integers(0, 4096, (N, 1, 3, 2, 40, 50), dtype=np.uint16)  # TZCYX
    out = write_dataset(list(arrs), tmp_path_factory.mktemp("dask") / "plate", dim_order="TZCYX",
                        chunk_shape=(2, 16, 32), metadata={"well": [f"A{i % 2}" for i in range(N)]}, progress=False)
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
    arr = to_dask(ds)
    assert arr.shape == (N, 1, 3, 2, 40, 50) and arr.dtype == np.uint16
    assert arr.chunks == ((1,) * N, (1,), (2, 1), (1, 1), (16, 16, 8), (32, 18))
    np.testing.assert_array_equal(arr.compute(), arrs)
    grouped = to_dask(ds, images_per_chunk=3, z=1, c=0, layout="YX")
    assert grouped.chunks == ((3, 3, 1), (16, 16, 8), (32, 18))
    np.testing.assert_array_equal(grouped.compute(), arrs[:, 0, 1, 0])
    assert float(arr.mean().compute()) == pytest.approx(float(arrs.mean()))


def test_blocks_read_lazily_and_only_what_is_asked(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    base = OMEArrowDataset.scan(path)
    ds = CountingDataset(base._parts, base.table, base._part_of, base._rows)
    CountingDataset.reads = 0
    arr = to_dask(ds.tensor_views(t=0, z=2, layout="CYX"))
    assert CountingDataset.reads == 0  # building the graph reads no pixels
    crop = arr[4, 1, 20:30, 40:45].compute(scheduler="sync")
    np.testing.assert_array_equal(crop, arrs[4, 0, 2, 1, 20:30, 40:45])
    assert CountingDataset.reads == 1  # one block: (image 4, channel 1, y 16..32, x 32..50)


def test_filters_views_dtype_and_processes(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    ds = OMEArrowDataset.scan(path, filter={"well": "A1"})
    arr = to_dask(ds.tensor_views(c=1, z=0, roi=(5, 6, 30, 20), layout="YX", dtype="float32"))
    assert arr.dtype == np.float32 and arr.shape == (3, 20, 30)
    np.testing.assert_array_equal(arr.compute(scheduler="processes"), arrs[1::2, 0, 0, 1, 6:26, 5:35].astype(np.float32))


def test_images_and_views(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    img = OMEArrowDataset.scan(path)[2]
    arr = to_dask(img, layout="ZCYX")
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
    path, _ = plate
    with pytest.raises(TypeError, match="OMEArrowDataset"):
        to_dask(np.zeros(3))
    mixed = write_dataset([np.zeros((4, 4), np.uint8), np.zeros((4, 6), np.uint8)], tmp_path / "m", progress=False)
    with pytest.raises(SchemaError, match="one shape"):
        to_dask(OMEArrowDataset.scan(mixed))
    assert to_dask(OMEArrowDataset.scan(mixed), roi=(0, 0, 4, 4)).shape == (2, 1, 4, 4)
