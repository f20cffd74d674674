"""The batch read's shortcuts give what the long ways give: a batch's stored dtypes looked up together
(``ImageRows.values``), one image's metadata planning every batch of a uniform member (made again when the files
change, never shared with a dataset that judged uniformity on other images), and a list of plain ints checked at
once as indices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def _projected_one_by_one(
    origin: np.ndarray,
    shape: np.ndarray,
    start: np.ndarray,
    stop: np.ndarray,
    boxed: np.ndarray,
    rows: np.ndarray,
    owner: np.ndarray,
    outs: list[np.ndarray],
    dtypes: list[np.dtype],
) -> list[tuple[object, ...]]:
    """What read_rows placed before projections were shared: every chunk projected by itself."""
    from ome_arrow_core.chunks import box_projections

    got = []
    for p in box_projections(origin, shape, start, stop):
        i = int(boxed[p.row])
        k = int(owner[i])
        got.append((int(rows[i]), p[1:], id(outs[k]), dtypes[k]))
    return got


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_shared_projections_place_every_chunk_as_projecting_it_alone_would(data: st.DataObject) -> None:
    """Chunks of like (origin, shape, box) share one projection: the placements (index row, where from, where to,
    which output, dtype) are those of projecting each chunk alone, in the same order; chunks outside their box
    are left out alike."""
    from ome_arrow_core.typed_chunk.rows import _boxed_placements

    n_images = data.draw(st.integers(1, 6))
    per = data.draw(st.integers(1, 4))
    small = st.integers(0, 3)
    origins, shapes, starts, stops = [], [], [], []
    boxes = [
        (np.array([data.draw(small) for _ in range(5)]), np.array([data.draw(st.integers(1, 6)) for _ in range(5)]))
        for _ in range(data.draw(st.integers(1, 3)))
    ]
    layouts = [
        [
            (np.array([data.draw(small) for _ in range(5)]), np.array([data.draw(st.integers(1, 3)) for _ in range(5)]))
            for _ in range(per)
        ]
        for _ in range(2)
    ]
    owner = []
    for k in range(n_images):
        lay = layouts[data.draw(st.integers(0, 1))]  # images of one layout (a uniform batch) or of two
        box = boxes[data.draw(st.integers(0, len(boxes) - 1))]
        for o, s in lay:
            origins.append(o)
            shapes.append(s)
            starts.append(box[0])
            stops.append(np.maximum(box[0] + 1, box[1]))
            owner.append(k)
    total = len(owner) + 3
    boxed = np.array(sorted(data.draw(st.permutations(range(total)))[: len(owner)]), dtype=np.int64)
    rows = np.arange(total, dtype=np.int64) * 7 + 100
    owner_all = np.zeros(total, dtype=np.int64)
    owner_all[boxed] = owner
    outs = [np.empty(1) for _ in range(n_images)]
    dtypes = [np.dtype(data.draw(st.sampled_from(["uint8", "uint16"]))) for _ in range(n_images)]
    arrays = [np.array(a, dtype=np.int64) for a in (origins, shapes, starts, stops)]
    shared = _boxed_placements(*arrays, boxed, rows, owner_all, outs, dtypes)
    alone = _projected_one_by_one(*arrays, boxed, rows, owner_all, outs, dtypes)
    assert [(p.row, p.projection[1:], id(p.out), p.dtype) for p in shared] == alone


def test_a_batch_of_cropped_tiled_images_reads_as_each_image_alone(tmp_path: Path) -> None:
    """Images of several chunks each, read as one batch with a crop per image (chunks outside a crop skipped, chunks
    cut by it, chunks of like layout sharing a projection): each image's pixels as read alone."""
    clear_cache()
    imgs = _images(7, 9, (2, 20, 18))
    path = write_dataset(imgs, tmp_path / "p", dim_order="CYX", chunk_shape=(1, 1, 1, 8, 8), progress=False)
    ds = OMEArrowDataset.scan(path)
    order = [4, 0, 8, 8, 2, 7, 1]
    rois = [(0, 0, 9, 7), (3, 5, 9, 7), (9, 13, 9, 7), (8, 8, 9, 7), (0, 0, 9, 7), (1, 2, 9, 7), (9, 0, 9, 7)]
    got = ds.read(order, rois=rois)
    for n, (k, (x, y, w, h)) in enumerate(zip(order, rois)):
        assert np.array_equal(got[n], imgs[k][:, y : y + h, x : x + w]), n
    assert np.array_equal(ds.read(order), np.stack([imgs[k] for k in order]))


def test_a_damaged_chunk_read_by_a_cropped_batch_raises(tmp_path: Path) -> None:
    """A flipped byte in the first chunk of image 0: a batch whose crop of image 0 covers that chunk raises (on a
    reader that read the files intact before, too); the whole batch read raises too."""
    from tests.damage import audited, chunk_page, flip_byte

    clear_cache()
    imgs = _images(8, 9, (2, 20, 18))
    path = write_dataset(imgs, tmp_path / "p", dim_order="CYX", chunk_shape=(1, 1, 1, 8, 8), progress=False)
    live = OMEArrowDataset.scan(path)
    order, rois = [4, 0, 8], [(9, 13, 9, 7), (0, 0, 9, 7), (3, 5, 9, 7)]
    assert np.array_equal(live.read(order, rois=rois)[1], imgs[0][:, 0:7, 0:9])
    offset, size = chunk_page(audited(path), 0)
    flip_byte(path / "chunks.parquet", offset + size - 3, 0xFF)
    for ds in (live, OMEArrowDataset.scan(path)):
        with pytest.raises(OMEArrowError):
            ds.read(order, rois=rois)
        with pytest.raises(OMEArrowError):
            ds.read(order)


@pytest.mark.parametrize("shape", [(2, 12, 10), (2, 16, 20)], ids=["same-shape", "larger"])
def test_plans_made_ahead_serve_batches_and_are_made_anew_for_replaced_files(
    tmp_path: Path, shape: tuple[int, ...]
) -> None:
    """``open_files(load=True)`` (what the torch datasets call before any DataLoader forks) makes the metadata a
    uniform member's batches are planned from; a batch then plans from it without asking the files for any image's
    metadata, and a dataset overwritten afterwards is planned from its new files."""
    clear_cache()
    old, new = _images(9, 6, (2, 12, 10)), _images(10, 6, shape)
    path = write_dataset(old, tmp_path / "p", dim_order="CYX", progress=False)
    ds = OMEArrowDataset.scan(path)
    assert not ds._shared_metas
    ds.open_files(load=True)
    assert set(ds._shared_metas) == {0}
    opened = open_dataset(path)
    asked: list[int] = []
    meta = opened.meta
    opened.meta = lambda row: asked.append(row) or meta(row)  # type: ignore[method-assign]
    try:
        assert np.array_equal(ds.read([3, 1, 5]), np.stack([old[3], old[1], old[5]]))
    finally:
        del opened.meta
    assert asked == []
    write_dataset(new, path, dim_order="CYX", progress=False, mode="overwrite")
    assert np.array_equal(ds.read(range(6)), np.stack(new))
    picked = OMEArrowDataset.scan(path).select([4, 2])
    picked.open_files(load=True)
    assert np.array_equal(picked.read([1, 0]), np.stack([new[2], new[4]]))
