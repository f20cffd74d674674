"""A batch read checks each image's chunk coverage and pixel bytes from index columns gathered once per batch.

The origins and shapes of a batch's chunks are stacked once (one gather per index column), and each
image's coverage is checked on its own slice; the row groups of all its chunks are looked up at once
against the chunk files' footers. A lie in any image of the batch, not only the first, is refused. Each holds
whether the plate's index is loaded a row group at a time (aligned, as written) or read whole (as older writers
wrote it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from table_digests import with_unaligned_index, without_table_digests

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_core.errors import DamagedFileError
from ome_arrow_core.selection import Selection
from ome_arrow_core.typed_chunk import checks
from ome_arrow_core.typed_chunk.opening import clear_cache, open_dataset
from ome_arrow_core.typed_chunk.rows import read_rows

N = 12
ARRS = np.random.default_rng(3).integers(0, 65535, (N, 2, 32, 24), dtype=np.uint16)


#: How the plate's index is read: a row group at a time (as written: aligned), or whole (as older writers wrote it).
LAYOUTS = ["aligned", "whole"]


def _write(root: Path, layout: str) -> Path:
    path = write_dataset(list(ARRS), root, chunk_shape=(16, 16), dim_order="CYX", progress=False)
    return with_unaligned_index(path) if layout == "whole" else path


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
    counting = _Counting(opened.columns)
    if opened.aligned is None:  # an index whose columns this process gathers itself
        opened._columns = counting
    else:  # columns its row groups are loaded into (one group here: loaded once by either batch)
        opened.aligned.columns = counting
    np.testing.assert_array_equal(OMEArrowDataset.scan(path).read(range(n), layout="CYX"), ARRS[:n])
    assert (
        len(opened.checks.verified) == n and len(opened.checks.bounded) == n
    )  # every image's coverage and bytes checked
    return counting.lookups


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_cold_batch_gathers_its_chunk_layout_once(tmp_path: Path, layout: str) -> None:
    """As many origin and shape gathers for a batch of N images as for one of 2 (one per image before)."""
    path = _write(tmp_path / "d", layout)
    assert (open_dataset(path).aligned is None) == (layout == "whole")
    few, many = _cold_lookups(path, 2), _cold_lookups(path, N)
    for a in "tczyx":
        assert many[a] == few[a] and many[f"shape_{a}"] == few[f"shape_{a}"], a


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_cold_batch_bounds_its_images_pixel_bytes_at_once(tmp_path: Path, layout: str) -> None:
    """As many row group gathers for a batch of N images as for one of 2 (one per image before)."""
    path = _write(tmp_path / "d", layout)
    assert (open_dataset(path).aligned is None) == (layout == "whole")
    assert _cold_lookups(path, N)["row_group_id"] == _cold_lookups(path, 2)["row_group_id"]


def _edit(file: Path, image: str, change: Any) -> None:
    table = pq.read_table(file)
    cols = {n: table.column(n).to_pylist() for n in table.column_names}
    mine = [i for i, v in enumerate(cols["image_id"]) if v == image]
    change(cols, mine)
    pq.write_table(pa.table(cols, schema=table.schema), file)
    without_table_digests(file.parent)  # a lie the table checksums would refuse first


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("image", [1, N // 2, N - 1])
def test_a_coverage_lie_in_any_image_of_a_batch_is_refused(tmp_path: Path, image: int, layout: str) -> None:
    path = _write(tmp_path / "d", layout)
    image_id = f"image-{image:05d}"

    def overlap(cols: dict[str, list[Any]], mine: list[int]) -> None:  # same pixel count: an overlap and a hole
        for a in "tczyx":
            cols[a][mine[1]] = cols[a][mine[0]]

    _edit(path / "index.parquet", image_id, overlap)
    assert (open_dataset(path).aligned is None) == (layout == "whole")  # the edit kept the layout
    clear_cache()
    checks._covered.clear()
    ds = OMEArrowDataset.scan(path)
    with pytest.raises(DamagedFileError, match=image_id):
        ds.read()
    clear_cache()
    with pytest.raises(DamagedFileError, match=image_id):  # one image alone
        ds[image].to_numpy()
    np.testing.assert_array_equal(OMEArrowDataset.scan(path).read(range(image), layout="CYX"), ARRS[:image])


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("image", [1, N // 2, N - 1])
def test_a_pixel_bytes_lie_in_any_image_of_a_batch_is_refused(tmp_path: Path, image: int, layout: str) -> None:
    """An image declaring T=2 with chunks 2 deep in T: covered exactly once, but twice the bytes its groups hold."""
    path = _write(tmp_path / "d", layout)
    image_id = f"image-{image:05d}"
    _edit(path / "images.parquet", image_id, lambda cols, mine: cols["size_t"].__setitem__(mine[0], 2))
    _edit(path / "index.parquet", image_id, lambda cols, mine: [cols["shape_t"].__setitem__(k, 2) for k in mine])
    sizes = [dict(zip("TCZYX", (2 if k == image else 1, 2, 1, 32, 24))) for k in range(N)]
    sels = [Selection.full(s) for s in sizes]
    assert (open_dataset(path).aligned is None) == (layout == "whole")  # the edits kept the layout
    for positions in (list(range(N)), [image]):  # a batch, and the image alone
        clear_cache()
        checks._covered.clear()
        outs = [np.zeros(sels[k].shape, dtype=np.uint16) for k in positions]
        with pytest.raises(DamagedFileError, match=f"{image_id}.*declares"):
            read_rows(path, positions, [sels[k] for k in positions], outs)
    clear_cache()
    with pytest.raises(DamagedFileError, match=f"{image_id}.*declares"):
        OMEArrowDataset.scan(path)[image].to_numpy()
    np.testing.assert_array_equal(OMEArrowDataset.scan(path).read(range(image), layout="CYX"), ARRS[:image])
