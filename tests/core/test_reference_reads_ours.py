"""ome-arrow 0.1.0 (the reference package) reads the uint16 files we write with identical values."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from ome_arrow_core import OMEArrow

warnings.filterwarnings("ignore")  # the reference package's own import-time warnings are not ours to judge
ref_dataset = pytest.importorskip("ome_arrow.dataset", reason="install ome-arrow==0.1.0 (scripts/setup.sh does)")
ref_ingest = pytest.importorskip("ome_arrow.ingest")
ref_export = pytest.importorskip("ome_arrow.export")


@pytest.fixture
def pixels() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 65535, size=(2, 3, 4, 70, 90), dtype=np.uint16)  # TCZYX


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("options", [{}, {"chunk_shape": (32, 32)}, {"compression": "zstd", "rows_per_group": 3}])
def test_reference_reads_our_dataset(pixels: np.ndarray, options: dict[str, object], tmp_path: Path) -> None:
    out = tmp_path / "ours.ome.parquet"
    OMEArrow(pixels).export("parquet", out, **options)
    got = ref_dataset.OMEArrowDataset(out).read_image(None)
    np.testing.assert_array_equal(np.asarray(got), pixels)
    region = ref_dataset.OMEArrowDataset(out).read_region(y=slice(10, 50), x=slice(20, 80), t=1, c=2, z=3)
    np.testing.assert_array_equal(np.asarray(region).reshape(40, 60), pixels[1, 2, 3, 10:50, 20:80])


@pytest.mark.filterwarnings("ignore")
def test_reference_reads_our_record_file(pixels: np.ndarray, tmp_path: Path) -> None:
    out = tmp_path / "ours.parquet"
    OMEArrow(pixels).export("parquet", out, layout="record")
    scalar = ref_ingest.from_ome_parquet(out, column_name="ome_arrow")
    got = ref_export.to_numpy(scalar, dtype="uint16")
    np.testing.assert_array_equal(got, pixels)
