"""A batch read checks each image's chunk coverage from the batch's layout, gathered once from the index.

The origins and shapes of a batch's chunks are stacked once (one gather per index column), and each
image's coverage is checked on its own slice: a lie in any image of the batch, not only the first, is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from table_digests import without_table_digests

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_core.errors import DamagedFileError
from ome_arrow_core.typed_chunk import checks
from ome_arrow_core.typed_chunk.opening import clear_cache, open_dataset

N = 12
ARRS = np.random.default_rng(3).integers(0, 65535, (N, 2, 32, 24), dtype=np.uint16)


def _write(root: Path) -> Path:
    return write_dataset(list(ARRS), root, chunk_shape=(16, 16), dim_order="CYX", progress=False)


class _Counting(dict[str, np.ndarray]):
    """Index columns that count how often each is looked up."""

    def __init__(self, columns: dict[str, np.ndarray]) -> None:
        super().__init__(columns)
        self.lookups: dict[str, int] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        self.lookups[name] = self.lookups.get(name, 0) + 1
        return super().__getitem__(name)


def _cold_lookups(path: Path, n: int) -> dict[str, int]:
    """Index column lookups of a first read of images 0..n-1 in this process, checked against their pixels."""
    clear_cache()
    checks._covered.clear()  # every image's layout proved afresh
    opened = open_dataset(path)
    assert opened.aligned is None  # an index whose columns this process gathers itself
    counting = opened._columns = _Counting(opened.columns)
    np.testing.assert_array_equal(OMEArrowDataset.scan(path).read(range(n), layout="CYX"), ARRS[:n])
    assert len(opened._verified) == n  # every image's coverage was checked
    return counting.lookups


def test_a_cold_batch_gathers_its_chunk_layout_once(tmp_path: Path) -> None:
    """As many origin and shape gathers for a batch of N images as for one of 2 (one per image before)."""
    path = _write(tmp_path / "d")
    few, many = _cold_lookups(path, 2), _cold_lookups(path, N)
    for a in "tczyx":
        assert many[a] == few[a] and many[f"shape_{a}"] == few[f"shape_{a}"], a


def _edit(file: Path, image: str, change: Any) -> None:
    table = pq.read_table(file)
    cols = {n: table.column(n).to_pylist() for n in table.column_names}
    mine = [i for i, v in enumerate(cols["image_id"]) if v == image]
    change(cols, mine)
    pq.write_table(pa.table(cols, schema=table.schema), file)
    without_table_digests(file.parent)  # a lie the table checksums would refuse first


@pytest.mark.parametrize("image", [1, N // 2, N - 1])
def test_a_coverage_lie_in_any_image_of_a_batch_is_refused(tmp_path: Path, image: int) -> None:
    path = _write(tmp_path / "d")
    image_id = f"image-{image:05d}"

    def overlap(cols: dict[str, list[Any]], mine: list[int]) -> None:  # same pixel count: an overlap and a hole
        for a in "tczyx":
            cols[a][mine[1]] = cols[a][mine[0]]

    _edit(path / "index.parquet", image_id, overlap)
    clear_cache()
    checks._covered.clear()
    ds = OMEArrowDataset.scan(path)
    with pytest.raises(DamagedFileError, match=image_id):
        ds.read()
    clear_cache()
    with pytest.raises(DamagedFileError, match=image_id):  # one image alone
        ds[image].to_numpy()
    np.testing.assert_array_equal(OMEArrowDataset.scan(path).read(range(image), layout="CYX"), ARRS[:image])
