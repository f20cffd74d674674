"""The Ray read tasks' kept pixel buffers: reused only once nothing references them; blocks keep the file's pixels.

Run in this process (no Ray cluster): a read task is a plain callable, and keeping its blocks
alive here is what a slow consumer of a Ray worker's blocks looks like to the pool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

pytest.importorskip("ray.data")
pytest.importorskip("ome_arrow_ray")

from pixels import random_pixels

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_ray import OMEArrowDatasource
from ome_arrow_ray.buffers import BlockBuffers, block_buffers

VIEW = {"t": None, "z": None, "c": None, "roi": None, "layout": None, "channel_policy": "error"}
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")


def test_a_buffer_is_handed_out_again_only_when_nothing_holds_it() -> None:
    pool = BlockBuffers(max_buffers=2, max_bytes=1 << 20)
    a = pool.empty((4, 8), np.uint16)
    first = id(a.base)  # an id, not the buffer: holding it would keep it busy
    del a
    b = pool.empty((4, 8), np.uint16)
    assert id(b.base) == first and (pool.reused, pool.fresh) == (1, 1)  # freed: reused
    held = [b[1:], pa.py_buffer(b)]  # a view and an Arrow buffer of it, say a block Ray still holds
    del b
    c = pool.empty((2, 8), np.uint16)
    assert id(c.base) != first  # still referenced: a second kept buffer
    d = pool.empty((4, 8), np.uint16)
    assert id(d.base) not in (first, id(c.base)) and pool.fresh == 3  # both busy, pool full: a fresh array
    assert d.base is None
    del held
    e = pool.empty((3, 8), np.uint16)
    assert id(e.base) == first  # the view and the Arrow buffer are gone: free again


def test_a_full_pool_swaps_an_idle_small_buffer_for_a_larger_one_within_its_bytes() -> None:
    pool = BlockBuffers(max_buffers=1, max_bytes=1000)
    assert pool.empty((10,), np.uint8).base.nbytes == 10
    big = pool.empty((100,), np.uint8)
    assert big.base.nbytes == 100 and pool.fresh == 2  # the idle 10-byte buffer made way
    del big
    assert pool.empty((2000,), np.uint8).base is None  # over max_bytes: a plain array, not kept
    x = pool.empty((50,), np.float64)
    assert x.base is not None and x.base.nbytes == 400  # replaces the idle 100-byte buffer


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    """Six images of 2x18x20 then five of 2x10x12 (uint16): the driver plans the first shape."""
    arrs = [random_pixels((2, 18, 20), seed=i) for i in range(6)] + [
        random_pixels((2, 10, 12), seed=i) for i in range(5)
    ]
    out = write_dataset(
        arrs,
        tmp_path_factory.mktemp("raybuf") / "plate",
        dim_order="CYX",
        metadata={"label": list(range(11))},
        progress=False,
    )
    return out, arrs


def _images(block: pa.Table) -> np.ndarray:
    """The block's image column as one (n, ...) array (a view of the block's memory)."""
    (chunk,) = block.column("image").chunks
    images: np.ndarray = chunk.to_numpy()
    return images


def _blocks(source: Any, parallelism: int) -> list[pa.Table]:
    return [b for task in source.get_read_tasks(parallelism) for b in task()]


def test_kept_blocks_keep_their_pixels_while_later_blocks_reuse_buffers(
    mixed: tuple[Path, list[np.ndarray]],
) -> None:
    path, arrs = mixed
    ds = OMEArrowDataset.scan(path)
    source = OMEArrowDatasource(
        ds.select(range(6)), columns=["label"], image_column="image", view=VIEW, images_per_block=1
    )
    pool = block_buffers()
    kept = _blocks(source, 6)  # six one-image blocks, all still held here
    held = [_images(b) for b in kept]
    for _ in range(3):  # read again while holding them: no new block may share memory with a held one
        again = [_images(b) for b in _blocks(source, 6)]
        assert len(again) == 6 and not any(np.shares_memory(x, y) for x in again for y in held)
        del again
    for block in kept:
        label = block.column("label")[0].as_py()
        np.testing.assert_array_equal(_images(block)[0], arrs[label])
    del kept, held
    reused_before = pool.reused
    for _ in range(3):  # blocks dropped as soon as they are checked (as a worker drops them once stored)
        for task in source.get_read_tasks(6):
            for block in task():
                label = block.column("label")[0].as_py()
                np.testing.assert_array_equal(_images(block)[0], arrs[label])
    assert pool.reused > reused_before


def test_blocks_of_another_shape_than_planned_are_read_right(mixed: tuple[Path, list[np.ndarray]]) -> None:
    path, arrs = mixed
    source = OMEArrowDatasource(OMEArrowDataset.scan(path), columns=["label"], image_column="image", view=VIEW)
    source.images_per_block = 6  # task 0: the six 18x20 images, task 1: the five 10x12 ones
    blocks = _blocks(source, 2)
    assert [b.num_rows for b in blocks] == [6, 5]
    for block in blocks:
        images = _images(block)
        for label, image in zip(block.column("label").to_pylist(), images):
            np.testing.assert_array_equal(image, arrs[label])
