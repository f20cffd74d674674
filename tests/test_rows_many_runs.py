"""A batch's index rows are taken a run of one row group at a time (``AlignedIndex.rows_many``): the same rows as
one image at a time, in any order (repeats, reversals, gaps, across groups and parts), each image's rows holding its
group while they live, and an image without chunks in its group refused by name wherever it is in the batch."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_aligned_index import fresh, image, index_groups, plate, rewrite_index

from ome_arrow_core import write_dataset
from ome_arrow_core.errors import DamagedFileError
from ome_arrow_core.typed_chunk.aligned_index import AlignedIndex
from ome_arrow_core.typed_chunk.opening import clear_cache, open_dataset

#: Datasets written without pixel locators: reads here go through the index (see conftest).
pytestmark = pytest.mark.usefixtures("written_without_locators")


def _aligned(path: Path) -> AlignedIndex:
    clear_cache()
    aligned = open_dataset(path).aligned
    assert aligned is not None
    return aligned


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two parts: 10 images three to a row group (two chunks each), then an append of 5, two to a group."""
    path = tmp_path_factory.mktemp("runs") / "p.ome.parquet"
    rng = np.random.default_rng(5)
    first = [rng.integers(0, 999, (2, 4, 6)).astype("uint16") for _ in range(10)]
    write_dataset(first, path, dim_order="CYX", images_per_group=3, progress=False)
    more = [rng.integers(0, 999, (2, 4, 6)).astype("uint16") for _ in range(5)]
    write_dataset(more, path, dim_order="CYX", mode="append", images_per_group=2, progress=False)
    return path


def _rows_in_tables(path: Path, pos: int) -> list[int]:
    """The index rows (of the parts' index tables one after the other) of image row ``pos``, read by pyarrow."""
    index = pa.concat_tables(
        [pq.read_table(path / n, columns=["image_id"]) for n in ("index.parquet", "index-00001.parquet")]
    )
    images = pa.concat_tables(
        [pq.read_table(path / n, columns=["image_id"]) for n in ("images.parquet", "images-00001.parquet")]
    )
    ids = np.array(index.column("image_id").to_pylist())
    return np.flatnonzero(ids == images.column("image_id")[pos].as_py()).tolist()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.lists(st.integers(0, 14), min_size=1, max_size=24))
def test_the_rows_of_a_batch_are_each_images_rows_in_any_order(parts: Path, order: list[int]) -> None:
    aligned = _aligned(parts)
    want = [_rows_in_tables(parts, p) for p in order]
    got = aligned.rows_many(order)
    assert [r.tolist() for r in got] == want
    assert all(len(r) == 2 for r in got)  # two chunks (channels) each


@pytest.mark.parametrize(
    "order",
    [[0, 1, 2], [2, 1, 0], [0, 2], [1, 1, 1], [3, 4, 5, 6, 7], [9, 10, 11], [14, 13, 0, 12]],
    ids=["run", "reversed", "gap", "repeated", "two-groups", "two-parts", "mixed"],
)
def test_the_rows_of_a_run_are_views_that_hold_their_group(parts: Path, order: list[int]) -> None:
    aligned = _aligned(parts)
    got = aligned.rows_many(order)
    held = [aligned._loaded[k] for k in list(aligned._loaded)]
    assert held and all(g.held for g in held)
    assert not any(r.flags.owndata for r in got)  # views of their run's array: each holds it, and so the group
    keep = got[-1]
    del got
    gc.collect()
    assert sum(g.held for g in held) == 1  # only the group of the rows still alive
    assert len(keep) == 2
    del keep
    gc.collect()
    assert not any(g.held for g in held)


def test_a_batch_reads_each_image_in_any_order(tmp_path: Path) -> None:
    path = plate(tmp_path / "p.ome.parquet", 12, images_per_group=4)
    ds = fresh(path)
    order = [5, 4, 6, 6, 0, 11, 1, 2, 3, 9]
    got = ds.read(order)
    np.testing.assert_array_equal(got, np.stack([image(i).reshape(got.shape[1:]) for i in order]))


@pytest.mark.parametrize("order", [[1], [0, 1], [1, 0], [0, 2, 3, 1], [4, 1, 5]])
def test_an_image_without_chunks_in_its_group_is_refused_by_name_anywhere_in_a_batch(
    tmp_path: Path, order: list[int]
) -> None:
    path = plate(tmp_path / "p.ome.parquet", 6, images_per_group=2)
    whole = pa.concat_tables(index_groups(path))
    rewrite_index(path, [whole.slice(0, 1), whole.slice(1, 3), whole.slice(4)])  # image 1's chunks in group 1
    with pytest.raises(DamagedFileError, match="image-00001.*no chunks in its index row group"):
        fresh(path).read(order)
