"""plugin_api.PlaneBlocks: an image's YX planes served from blocks of Z read at once (for writers that take an
image plane by plane): every plane is the image's, in any order asked, and a block holds at most the budget
(or one Z's channels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrow
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
