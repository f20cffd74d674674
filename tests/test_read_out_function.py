"""``OMEArrowDataset.read(out=fn)``: the read asks ``fn(shape, dtype)`` for its buffer once it knows the
shape (a pooled or pinned buffer without opening an image first), fills it with the file's pixels, and
refuses what does not fit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrowDataset, SchemaError, write_dataset
from ome_arrow_core.errors import ArgumentError
from tests.pixels import random_pixels

N = 9


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    arrs = [random_pixels((2, 20, 24), "uint16", seed=i) for i in range(N)]
    out = write_dataset(
        iter(arrs), tmp_path_factory.mktemp("out") / "plate", dim_order="CYX", chunk_shape=(8, 8), progress=False
    )
    return out, arrs


class Buffers:
    """An ``out=`` function that records its calls and hands out one buffer per call."""

    def __init__(self, fill: int = 7) -> None:
        self.calls: list[tuple[tuple[int, ...], np.dtype]] = []
        self.given: list[np.ndarray] = []
        self.fill = fill

    def __call__(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        self.calls.append((shape, dtype))
        self.given.append(np.full(shape, self.fill, dtype=dtype))
        return self.given[-1]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    idx=st.lists(st.integers(0, N - 1), min_size=1, max_size=5),
    x=st.integers(0, 12),
    y=st.integers(0, 8),
    c=st.sampled_from([None, 0, 1]),
)
def test_the_function_is_asked_once_and_its_buffer_holds_the_pixels(
    plate: tuple[Path, list[np.ndarray]], idx: list[int], x: int, y: int, c: int | None
) -> None:
    out, arrs = plate
    ds = OMEArrowDataset.scan(out)
    buffers = Buffers()
    got = ds.read(idx, c=c, roi=(x, y, 10, 12), out=buffers)
    assert len(buffers.calls) == 1 and got is buffers.given[0]
    channels = slice(None) if c is None else slice(c, c + 1)  # one channel keeps its (singleton) axis
    want = np.stack([a[channels, y : y + 12, x : x + 10] for a in arrs])[idx]
    assert buffers.calls[0] == (want.shape, np.dtype(np.uint16))
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, ds.read(idx, c=c, roi=(x, y, 10, 12)))


def test_a_cast_read_asks_for_the_cast_dtype(plate: tuple[Path, list[np.ndarray]]) -> None:
    out, arrs = plate
    buffers = Buffers()
    got = OMEArrowDataset.scan(out).read([4, 1], dtype="float32", out=buffers)
    assert buffers.calls == [((2, 2, 20, 24), np.dtype(np.float32))] and got is buffers.given[0]
    np.testing.assert_array_equal(got, np.stack([arrs[4], arrs[1]]).astype(np.float32))


def test_per_image_rois_size_the_buffer(plate: tuple[Path, list[np.ndarray]]) -> None:
    out, arrs = plate
    buffers = Buffers()
    got = OMEArrowDataset.scan(out).read([2, 5], rois=[(0, 0, 5, 6), (19, 14, 5, 6)], out=buffers)
    assert buffers.calls == [((2, 2, 6, 5), np.dtype(np.uint16))]
    np.testing.assert_array_equal(got[0], arrs[2][:, :6, :5])
    np.testing.assert_array_equal(got[1], arrs[5][:, 14:20, 19:24])


@pytest.mark.parametrize(
    "bad",
    [
        lambda shape, dtype: np.zeros((1, *shape[1:]), dtype),  # wrong shape
        lambda shape, dtype: np.zeros(shape, np.int32),  # wrong dtype
        lambda shape, dtype: np.broadcast_to(np.zeros(1, dtype), shape),  # read-only
        lambda shape, dtype: [[0]],  # not an array
    ],
)
def test_a_buffer_that_does_not_fit_is_refused(plate: tuple[Path, list[np.ndarray]], bad: Any) -> None:
    """The caller's out= does not fit: the argument's mistake (ArgumentError), not the file's."""
    out, _ = plate
    with pytest.raises(ArgumentError, match="out"):
        OMEArrowDataset.scan(out).read([0, 3], out=bad)


def test_no_buffer_is_asked_for_when_the_images_do_not_stack(tmp_path: Path) -> None:
    small, large = random_pixels((1, 8, 8), seed=1), random_pixels((1, 8, 12), seed=2)
    out = write_dataset(iter([small, large]), tmp_path / "mixed", dim_order="CYX", progress=False)
    buffers = Buffers()
    with pytest.raises(SchemaError, match="different shapes"):
        OMEArrowDataset.scan(out).read([0, 1], out=buffers)
    assert buffers.calls == []
