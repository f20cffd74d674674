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


@pytest.mark.parametrize("by_well", [False, True])
def test_the_synthetic_plate_has_write_datasets_wells_and_sites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, by_well: bool
) -> None:
    if by_well:  # (plate_scale.py --by-well passes it to its writers so)
        monkeypatch.setenv("PLATE_SCALE_BY_WELL", "1")
    else:
        monkeypatch.delenv("PLATE_SCALE_BY_WELL", raising=False)
    synthetic, scale = _module("plate_synthetic"), _module("plate_scale")
    n, shape = 1100, (1, 4, 4)
    synthetic.synthetic_plate(tmp_path / "synthetic", n, shape)
    scale.write_ours(tmp_path / "written", n, shape)
    cols = ["well", "site"]
    ours = pq.read_table(tmp_path / "synthetic" / "images.parquet", columns=cols)
    assert ours.equals(pq.read_table(tmp_path / "written" / "images.parquet", columns=cols))
    wells = ours.column("well").to_pylist()
    assert (wells == sorted(wells)) == by_well  # well by well, or interleaved
    assert wells.count("B03") == len(range((14 * n + 95) // 96, (15 * n + 95) // 96) if by_well else range(14, n, 96))
