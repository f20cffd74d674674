"""benchmarks/plate_synthetic.py builds the layout write_dataset writes (the plate benchmarks measure that layout)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pyarrow.parquet as pq
import pytest

from ome_arrow_core import OMEArrowDataset

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("shape", [(1, 40, 40), (1, 64, 64)])
def test_the_synthetic_plate_packs_chunks_as_write_dataset_does(tmp_path: Path, shape: tuple[int, int, int]) -> None:
    synthetic, scale = _module("plate_synthetic"), _module("plate_scale")
    n = 1100  # past one images row group (1,024): a chunks row group never spans two
    synthetic.synthetic_plate(tmp_path / "synthetic", n, shape)
    written = tmp_path / "written"
    scale.write_ours(written, n, shape)
    for name in ("chunks.parquet", "index.parquet", "images.parquet"):
        ours, theirs = pq.read_metadata(tmp_path / "synthetic" / name), pq.read_metadata(written / name)
        assert [ours.row_group(g).num_rows for g in range(ours.num_row_groups)] == [
            theirs.row_group(g).num_rows for g in range(theirs.num_row_groups)
        ], name
    cols = ["row_group_id", "row_index_in_group"]
    assert pq.read_table(tmp_path / "synthetic" / "index.parquet", columns=cols).equals(
        pq.read_table(written / "index.parquet", columns=cols)
    )
    ds = OMEArrowDataset.scan(tmp_path / "synthetic")
    for i in (0, 31, 32, 1023, 1024, n - 1):
        np.testing.assert_array_equal(ds[i].to_numpy(layout="ZYX"), scale.plate_image(i, shape))
