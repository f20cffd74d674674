"""A batch's chunk geometry (``whole_batches._geometry``) kept for the next batch of like images: the same answer as
computed afresh for any chunks, boxes and item sizes (a geometry kept is never used for other inputs), read-only, and
a bounded number kept; reads through it give the file's pixels, batch after batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_core.typed_chunk import whole_batches
from ome_arrow_core.typed_chunk.opening import clear_cache
from ome_arrow_core.typed_chunk.whole_batches import GEOMETRIES_KEPT, GEOMETRY_CHUNKS, _geometry, _new_geometry


@st.composite
def batches(draw: st.DrawFn) -> tuple[np.ndarray, ...]:
    """Chunks of 1-4 images (TCZYX origins and shapes on a grid) and a box per image, some cutting chunks."""
    images = draw(st.integers(1, 4))
    owner, origin, shape = [], [], []
    sizes = [
        draw(st.tuples(*(st.integers(1, 3) for _ in range(3)), st.integers(1, 6), st.integers(1, 6)))
        for _ in range(images)
    ]
    chunk = draw(st.tuples(st.just(1), st.just(1), st.integers(1, 2), st.integers(1, 6), st.integers(1, 6)))
    for k, size in enumerate(sizes):
        grid = [range(0, s, c) for s, c in zip(size, chunk)]
        for at in np.stack(np.meshgrid(*grid, indexing="ij"), -1).reshape(-1, 5):
            owner.append(k)
            origin.append(at)
            shape.append(np.minimum(chunk, np.array(size) - at))
    starts, stops = [], []
    for size in sizes:
        lo = [draw(st.integers(0, s - 1)) for s in size]
        hi = [draw(st.integers(a + 1, s)) for a, s in zip(lo, size)]
        whole = draw(st.booleans())
        starts.append([0] * 5 if whole else lo)
        stops.append(list(size) if whole else hi)
    items = [draw(st.sampled_from([1, 2, 4, 8])) for _ in range(images)]
    return tuple(
        np.array(a, dtype=np.int64).reshape(-1, 5) if i in (1, 2, 3, 4) else np.array(a, dtype=np.int64)
        for i, a in enumerate((owner, origin, shape, starts, stops, items))
    )


def _same(a: tuple[np.ndarray, ...] | None, b: tuple[np.ndarray, ...] | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return all(np.array_equal(x, y) for x, y in zip(a, b))


@settings(max_examples=300, deadline=None)
@given(first=batches(), second=batches())
def test_a_kept_geometry_answers_as_a_fresh_one_for_any_inputs(
    first: tuple[np.ndarray, ...], second: tuple[np.ndarray, ...]
) -> None:
    for inputs in (first, second, first, second):  # kept between them: each answers for its own inputs only
        got = _geometry(*inputs)
        assert _same(got, _new_geometry(*inputs))
        if got is not None:
            assert not any(a.flags.writeable for a in got)  # kept arrays: no caller may change them


def test_one_changed_input_is_another_geometry() -> None:
    owner = np.array([0, 0], dtype=np.int64)
    origin = np.array([[0, 0, 0, 0, 0], [0, 1, 0, 0, 0]], dtype=np.int64)
    shape = np.array([[1, 1, 1, 4, 4]] * 2, dtype=np.int64)
    starts, stops = np.zeros((1, 5), np.int64), np.array([[1, 2, 1, 4, 4]], np.int64)
    items = np.array([2], dtype=np.int64)
    base = _geometry(owner, origin, shape, starts, stops, items)
    assert base is not None and base[2].tolist() == [0, 32] and base[3].tolist() == [32, 32]
    wider = _geometry(owner, origin, shape, starts, stops, np.array([4], dtype=np.int64))
    assert wider is not None and wider[2].tolist() == [0, 64]  # another item size
    one = _geometry(owner, origin, shape, starts, np.array([[1, 1, 1, 4, 4]], np.int64), items)
    assert one is not None and one[0].tolist() == [0]  # a box of the first channel keeps only its chunk
    assert _geometry(owner, origin, shape, starts, np.array([[1, 2, 1, 3, 4]], np.int64), items) is None  # cut
    again = _geometry(owner, origin, shape, starts, stops, items)
    assert again is not None and _same(again, base)


def test_a_bounded_number_of_geometries_is_kept() -> None:
    shape = np.array([[1, 1, 1, 2, 2]], dtype=np.int64)
    for n in range(3 * GEOMETRIES_KEPT):
        origin = np.array([[0, 0, 0, 0, n]], dtype=np.int64)
        stops = np.array([[1, 1, 1, 2, n + 2]], dtype=np.int64)
        got = _geometry(np.zeros(1, np.int64), origin, shape, origin, stops, np.array([1], np.int64))
        assert got is not None and got[3].tolist() == [4]
        assert len(whole_batches._GEOMETRIES) <= GEOMETRIES_KEPT


def test_a_batch_of_too_many_chunks_is_not_kept() -> None:
    whole_batches._GEOMETRIES.clear()
    n = GEOMETRY_CHUNKS + 1
    owner = np.zeros(n, np.int64)
    origin = np.zeros((n, 5), np.int64)
    origin[:, 4] = np.arange(n)
    shape = np.tile(np.array([1, 1, 1, 1, 1], np.int64), (n, 1))
    starts, stops = np.zeros((1, 5), np.int64), np.array([[1, 1, 1, 1, n]], np.int64)
    got = _geometry(owner, origin, shape, starts, stops, np.array([1], np.int64))
    assert got is not None and got[3].tolist() == [1] * n
    assert not whole_batches._GEOMETRIES


@pytest.mark.usefixtures("written_without_locators")
def test_batches_of_like_and_unlike_images_read_their_pixels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    small = [rng.integers(0, 60000, (2, 3, 8, 6)).astype("uint16") for _ in range(9)]
    path = write_dataset(small, tmp_path / "p", dim_order="CZYX", progress=False)
    more = [rng.integers(0, 60000, (2, 3, 8, 6)).astype("uint16") for _ in range(3)]
    write_dataset(more, path, dim_order="CZYX", mode="append", progress=False)
    clear_cache()
    whole_batches._GEOMETRIES.clear()
    ds = OMEArrowDataset.scan(path)
    made = []
    monkeypatch.setattr(
        whole_batches,
        "_new_geometry",
        lambda *a: made.append(1) or _new_geometry(*a),  # type: ignore[func-returns-value]
    )
    want = np.stack(small + more)
    for batch in ([0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11], [2, 9, 4], [0, 1, 2]):
        got = ds.read(batch)
        np.testing.assert_array_equal(got.reshape(want[batch].shape), want[batch])
        plane = ds.read(batch, z=1)  # another geometry: one Z plane of each channel
        np.testing.assert_array_equal(plane.reshape(want[batch][:, :, 1].shape), want[batch][:, :, 1])
    assert whole_batches._GEOMETRIES  # the batches went through kept geometries ...
    assert 0 < len(made) < 12  # ... made fewer times than the 12 reads asked for one
