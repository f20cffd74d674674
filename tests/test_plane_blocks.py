"""plugin_api.PlaneBlocks: an image's YX planes served from blocks of Z read at once (for writers that take an
image plane by plane): every plane is the image's, in any order asked, and a block holds at most the budget
(or one Z's channels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrow
from ome_arrow_core.errors import ArgumentError
from ome_arrow_core.plugin_api import PlaneBlocks


@settings(max_examples=40, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 7), st.integers(1, 9), st.integers(1, 9)),
    budget=st.integers(1, 4000),
    order=st.randoms(use_true_random=False),
)
def test_every_plane_is_the_images_in_any_order(shape: tuple[int, ...], budget: int, order: object) -> None:
    arr = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape) * 7 - 5  # TCZYX
    blocks = PlaneBlocks(OMEArrow(arr), budget)
    t_, c_, z_, y_, x_ = shape
    per_z = c_ * y_ * x_ * 4
    assert blocks.z_step == max(1, min(z_, budget // per_z))
    keys = [(t, z, c) for t in range(t_) for z in range(z_) for c in range(c_)]
    order.shuffle(keys)  # type: ignore[attr-defined]
    for t, z, c in keys:
        np.testing.assert_array_equal(blocks.plane(t, z, c), arr[t, c, z])


def test_a_scanned_image_is_read_a_block_at_a_time(tmp_path: Path) -> None:
    """In T, Z, C order each block is read once: 2 time points x 16 Z in blocks of 4 Z are 8 reads, counted at
    the image's reader (tensor_view calls), and each plane is the file's."""
    arr = np.random.default_rng(3).integers(0, 4096, (2, 3, 16, 32, 40), dtype=np.uint16)
    OMEArrow(arr).export("parquet", tmp_path / "i.ome.parquet")
    image = OMEArrow.scan(tmp_path / "i.ome.parquet")
    reads: list[object] = []
    real = image.tensor_view

    def counted(*args: object, **kwargs: object) -> object:
        reads.append(kwargs.get("z"))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    image.tensor_view = counted  # type: ignore[method-assign]
    blocks = PlaneBlocks(image, 4 * 3 * 32 * 40 * 2)
    assert blocks.z_step == 4
    for t in range(2):
        for z in range(16):
            for c in range(3):
                np.testing.assert_array_equal(blocks.plane(t, z, c), arr[t, c, z])
    assert reads == [slice(z, z + 4) for _ in range(2) for z in range(0, 16, 4)]
    reads.clear()
    aligned = PlaneBlocks(image, 4 * 3 * 32 * 40 * 2, z_align=3)  # 4 Z fit: one chunk depth of 3 a block
    assert [(t, zs) for t, zs, _ in aligned.blocks()] == [
        (t, range(z, min(16, z + 3))) for t in range(2) for z in range(0, 16, 3)
    ]
    assert reads == [slice(z, z + 3) for _ in range(2) for z in range(0, 16, 3)]


@settings(max_examples=40, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 9), st.integers(1, 5), st.integers(1, 5)),
    budget=st.integers(1, 2000),
    align=st.integers(1, 4),
)
def test_blocks_are_whole_chunk_depths_covering_the_image_in_order(
    shape: tuple[int, ...], budget: int, align: int
) -> None:
    """blocks() yields each time point's Z in order, once, in blocks of a multiple of ``z_align`` (the last and a
    Z smaller than it excepted), as many depths as the budget holds (at least one), each the image's pixels."""
    arr = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape) * 3 + 1  # TCZYX
    blocks = PlaneBlocks(OMEArrow(arr), budget, z_align=align)
    t_, c_, z_, y_, x_ = shape
    depths = max(1, budget // (align * c_ * y_ * x_ * 4))
    assert blocks.z_step == min(z_, align * depths)
    got = list(blocks.blocks())
    assert [(t, zs.start) for t, zs, _ in got] == [(t, z) for t in range(t_) for z in range(0, z_, blocks.z_step)]
    for t, zs, zcyx in got:
        assert zs.stop == min(z_, zs.start + blocks.z_step)
        np.testing.assert_array_equal(zcyx, arr[t, :, zs.start : zs.stop].transpose(1, 0, 2, 3))


@pytest.mark.parametrize("align", [0, -2, True, 1.5, "4"])
def test_a_z_align_that_is_no_depth_is_refused(align: object) -> None:
    with pytest.raises(ArgumentError, match=r"z_align=.*expected a positive int"):
        PlaneBlocks(OMEArrow(np.zeros((4, 8, 8), np.uint8)), z_align=align)  # type: ignore[arg-type]
