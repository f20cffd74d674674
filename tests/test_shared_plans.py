"""An image opened anew reads a box seen before by the plan its earlier handles made (typed_chunk/kept_plans.py:
plans_of), and the same crop asked again is resolved once (view_spec.ViewSpec.selection): every read still reads
and checks the file's bytes, a changed file is a new opening with plans of its own, and a selection is remembered
only for plain arguments, never for an argument that fails."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from damage import chunk_page, flip_byte

import ome_arrow_core.typed_chunk.box_plans as box_plans
from ome_arrow_core import OMEArrow
from ome_arrow_core.errors import ChecksumError, DamagedFileError, OMEArrowError, SelectionError
from ome_arrow_core.selection import resolve_selection
from ome_arrow_core.typed_chunk import DatasetSource
from ome_arrow_core.typed_chunk.kept_plans import IMAGES_KEPT, plans_of
from ome_arrow_core.typed_chunk.whole_chunks import WholeChunk

CROPS = {
    "whole chunk": {"t": 0, "c": 1, "z": 1, "roi": (64, 64, 64, 64), "layout": "YX"},
    "unaligned": {"t": 0, "c": 1, "z": 1, "roi": (40, 50, 90, 70), "layout": "YX"},
}


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4096, (1, 2, 3, 192, 192), dtype=np.uint16)


def _write(path: Path, arr: np.ndarray) -> Path:
    OMEArrow(arr).export("parquet", path, chunk_shape=(1, 64, 64))
    return path


def _crop(path: Path, crop: str) -> np.ndarray:
    """compare_peers' open + crop: a new handle and one crop."""
    return OMEArrow.scan(path).tensor_view(**CROPS[crop]).to_numpy()  # type: ignore[arg-type]


def _want(arr: np.ndarray, crop: str) -> np.ndarray:
    x, y, w, h = CROPS[crop]["roi"]  # type: ignore[misc]
    return arr[0, 1, 1, y : y + h, x : x + w]


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, np.ndarray]:
    arr = _image()
    path = _write(tmp_path / "img.ome.parquet", arr)
    OMEArrow.scan(path).to_numpy()  # every chunk audited, as compare_peers' handles find it
    return path, arr


@pytest.mark.parametrize("crop", list(CROPS))
def test_new_handles_share_the_plan_and_read_right(dataset: tuple[Path, np.ndarray], crop: str) -> None:
    path, arr = dataset
    for _ in range(4):
        np.testing.assert_array_equal(_crop(path, crop), _want(arr, crop))
    src = OMEArrow.scan(path)._source
    assert isinstance(src, DatasetSource)
    plans = list(src._plans._plans.values())
    assert len(plans) == 1
    assert isinstance(plans[0], WholeChunk if crop == "whole chunk" else box_plans.BoxPlan)


@pytest.mark.parametrize("crop", list(CROPS))
def test_a_flipped_byte_is_refused_through_the_shared_plan(
    dataset: tuple[Path, np.ndarray], crop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, arr = dataset
    for _ in range(3):
        _crop(path, crop)
    old = OMEArrow.scan(path)  # a handle of the opening the plan belongs to
    src = old._source
    assert isinstance(src, DatasetSource)
    group = int(src._index_rows[src._chunks.projections(old.tensor_view(**CROPS[crop])._sel)[0].row])
    off, size = chunk_page(src, group)
    stat = os.stat(path / "chunks.parquet")
    flip_byte(path / "chunks.parquet", off + size // 2)
    os.utime(path / "chunks.parquet", ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and mtime
    with pytest.raises(ChecksumError, match="do not match their checksum"):
        old.tensor_view(**CROPS[crop]).to_numpy()  # the plan's own read checks the bytes
    with pytest.raises(ChecksumError, match="do not match their checksum"):
        _crop(path, crop)
    flip_byte(path / "chunks.parquet", off + size // 2)
    np.testing.assert_array_equal(_crop(path, crop), _want(arr, crop))
    np.testing.assert_array_equal(old.tensor_view(**CROPS[crop]).to_numpy(), _want(arr, crop))


@pytest.mark.parametrize("crop", list(CROPS))
def test_a_truncated_chunks_file_is_refused_through_new_handles(dataset: tuple[Path, np.ndarray], crop: str) -> None:
    path, _ = dataset
    for _ in range(3):
        _crop(path, crop)
    os.truncate(path / "chunks.parquet", 1000)
    with pytest.raises(DamagedFileError):
        _crop(path, crop)


@pytest.mark.parametrize("crop", list(CROPS))
def test_a_replaced_dataset_is_read_anew(dataset: tuple[Path, np.ndarray], crop: str, tmp_path: Path) -> None:
    path, _ = dataset
    for _ in range(3):
        _crop(path, crop)
    other = _image(seed=9)
    _write(tmp_path / "other.ome.parquet", other)
    shutil.rmtree(path)
    shutil.move(tmp_path / "other.ome.parquet", path)
    for _ in range(3):
        np.testing.assert_array_equal(_crop(path, crop), _want(other, crop))


def test_only_the_last_images_keep_their_plans(tmp_path: Path) -> None:
    opened = []
    for name in ("a", "b"):
        arr = np.random.default_rng(1).integers(0, 255, (1, 1, 1, 32, 32), dtype=np.uint8)
        path = tmp_path / f"{name}.ome.parquet"
        OMEArrow(arr).export("parquet", path)
        opened.append(DatasetSource(path)._opened)
    a, b = opened  # image 0 of each planned: the last two images (older ones, other tests', go first)
    first = plans_of(a, 0)
    assert plans_of(a, 0) is first and 0 in b.plans
    for pos in range(1, IMAGES_KEPT - 1):
        plans_of(a, pos)
    assert len(a.plans) == IMAGES_KEPT - 1 and 0 in b.plans  # eight images in all
    plans_of(a, IMAGES_KEPT - 1)  # a ninth: the first planned drops its plans
    assert 0 not in a.plans and 0 in b.plans
    plans_of(a, IMAGES_KEPT)  # a tenth: then the other dataset's image
    assert 0 not in b.plans and sorted(a.plans) == list(range(1, IMAGES_KEPT + 1))
    assert plans_of(a, 0) is not first


# -- the selection remembered ----------------------------------------------------------------------------------------
def test_the_same_crop_on_another_image_is_resolved_for_it(tmp_path: Path) -> None:
    small = np.zeros((1, 1, 1, 100, 100), np.uint8)
    big = np.arange(300 * 300, dtype=np.uint16).reshape(1, 1, 1, 300, 300)
    a = OMEArrow.scan(_write(tmp_path / "big.ome.parquet", big))
    b = OMEArrow.scan(_write(tmp_path / "small.ome.parquet", small))
    for _ in range(2):
        np.testing.assert_array_equal(
            a.tensor_view(roi=(150, 150, 100, 100)).to_numpy()[0], big[0, 0, 0, 150:250, 150:250]
        )
        with pytest.raises(SelectionError):  # never remembered: raised every time
            b.tensor_view(roi=(150, 150, 100, 100))


def test_tiles_follow_each_images_chunk_shape(tmp_path: Path) -> None:
    arr = np.arange(128 * 128, dtype=np.uint16).reshape(1, 1, 1, 128, 128)
    p32 = OMEArrow(arr).export("parquet", tmp_path / "a.ome.parquet", chunk_shape=(1, 32, 32))
    p64 = OMEArrow(arr).export("parquet", tmp_path / "b.ome.parquet", chunk_shape=(1, 64, 64))
    for _ in range(2):
        for path, n in ((p32, 32), (p64, 64)):
            got = OMEArrow.scan(path).tensor_view(tile=(1, 1), layout="YX").to_numpy()
            np.testing.assert_array_equal(got, arr[0, 0, 0, n : 2 * n, n : 2 * n])


def test_arguments_equal_to_plain_ones_are_checked_apart(dataset: tuple[Path, np.ndarray]) -> None:
    path, arr = dataset
    img = OMEArrow.scan(path)
    for _ in range(2):
        np.testing.assert_array_equal(img.tensor_view(t=0, c=1, z=1, layout="YX").to_numpy(), arr[0, 1, 1])
        for t in (True, 0.0, np.int64(0)):  # equal to 0: each answered as without the memo, error or selection
            try:
                want = resolve_selection(img._sel, img._source.meta, t=t, c=1, z=1)
            except OMEArrowError as exc:
                with pytest.raises(type(exc)):
                    img.tensor_view(t=t, c=1, z=1, layout="YX")
            else:
                assert img.tensor_view(t=t, c=1, z=1, layout="YX")._sel == want  # type: ignore[union-attr]
        np.testing.assert_array_equal(
            img.tensor_view(t=0, c=1, z=1, roi=[8, 8, 16, 16], layout="YX").to_numpy(), arr[0, 1, 1, 8:24, 8:24]
        )
