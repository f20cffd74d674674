"""The batch read's shortcuts give what the long ways give: a batch's stored dtypes looked up together
(``ImageRows.values``), one image's metadata planning every batch of a uniform member (made again when the files
change, never shared with a dataset that judged uniformity on other images), and a list of plain ints checked at
once as indices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_core.dataset.positions import checked_indices
from ome_arrow_core.errors import OMEArrowError, SelectionError, SelectionTypeError
from ome_arrow_core.typed_chunk.opening import clear_cache, open_dataset


def _images(seed: int, n: int, shape: tuple[int, ...], dtype: str = "uint16") -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 200, shape).astype(dtype) for _ in range(n)]


def test_values_of_many_rows_are_each_rows_value_across_parts_and_groups(tmp_path: Path) -> None:
    path = tmp_path / "p"
    write_dataset(_images(0, 7, (1, 4, 4)), path, dim_order="CYX", images_per_group=3, progress=False)
    write_dataset(_images(1, 5, (1, 4, 4), "uint8"), path, dim_order="CYX", mode="append", progress=False)
    write_dataset(_images(2, 4, (1, 4, 4), "float32"), path, dim_order="CYX", mode="append", progress=False)
    clear_cache()
    images = open_dataset(path).images
    assert len(images.parts) == 3  # the appends are parts of their own
    order = [15, 0, 8, 3, 3, 12, 7, 6, 2, 11, 14, 1]
    for name in ("dtype", "size_x", "image_id"):
        want = [images.value(p, name) for p in order]
        clear_cache()
        images = open_dataset(path).images  # nothing kept from the single lookups
        assert images.values(order, name) == want
    assert images.values([], "dtype") == []
    located = images.locate_many(order)
    assert list(zip(*located)) == [images.locate(p) for p in order]
    aligned = open_dataset(path).aligned
    assert aligned is not None
    each = [aligned.rows_of(p) for p in order]
    assert [r.tolist() for r in aligned.rows_many(order)] == [r.tolist() for r in each]
    assert set(images.values(range(16), "dtype")) == {"uint16", "uint8", "float32"}


@pytest.mark.parametrize("shape", [(2, 12, 10), (1, 6, 8), (2, 16, 20)], ids=["same-shape", "smaller", "larger"])
def test_a_dataset_replaced_under_a_reader_plans_its_batches_from_the_new_files(
    tmp_path: Path, shape: tuple[int, ...]
) -> None:
    clear_cache()
    old, new = _images(3, 6, (2, 12, 10)), _images(4, 6, shape)
    path = write_dataset(old, tmp_path / "p", dim_order="CYX", progress=False)
    ds = OMEArrowDataset.scan(path)
    assert np.array_equal(ds.read(range(6)), np.stack(old))
    assert np.array_equal(ds.read([5, 1]), np.stack([old[5], old[1]]))
    write_dataset(new, path, dim_order="CYX", progress=False, mode="overwrite")
    try:
        got = ds.read(range(6))
    except OMEArrowError as exc:  # a clear error is allowed; the old plan over the new files is not
        assert str(path) in str(exc) or "dataset" in str(exc)
        return
    assert np.array_equal(got, np.stack(new))


def test_datasets_of_other_images_of_one_member_plan_from_their_own_images(tmp_path: Path) -> None:
    clear_cache()
    small, large = _images(5, 4, (1, 6, 8)), _images(6, 4, (1, 10, 12))
    path = write_dataset([*large, *small], tmp_path / "p", dim_order="CYX", progress=False)
    ds = OMEArrowDataset.scan(path)
    assert ds.table.num_rows == 8  # read: each selection below judges uniformity on its own rows
    first, second = ds.select(range(4)), ds.select(range(4, 8))
    assert np.array_equal(first.read(range(4)), np.stack(large))
    assert np.array_equal(second.read(range(4)), np.stack(small))
    assert np.array_equal(first.read([3, 0]), np.stack([large[3], large[0]]))
    with pytest.raises(OMEArrowError, match="different shapes"):
        ds.read([0, 4])


def test_a_list_of_ints_is_checked_as_one_index_at_a_time_would_be() -> None:
    assert checked_indices([0, 3, -1, -4], 4).tolist() == [0, 3, 3, 0]
    with pytest.raises(SelectionError, match="image 4 is out of range"):
        checked_indices([0, 4], 4)
    with pytest.raises(SelectionError, match="out of range"):
        checked_indices([-5], 4)
    with pytest.raises(SelectionError, match="out of range"):
        checked_indices([2**70], 4)  # no int64 holds it: checked one by one, not overflowed
    with pytest.raises(SelectionTypeError):
        checked_indices([True, 1], 4)  # bools are not indices
    with pytest.raises(SelectionTypeError):
        checked_indices([1, 2.0], 4)  # type: ignore[list-item]
    assert checked_indices([np.int32(2), 1], 4).tolist() == [2, 1]
