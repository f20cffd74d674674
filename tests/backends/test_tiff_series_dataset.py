"""A TIFF file of several series (a multi-series OME-TIFF, tifffile's several arrays) in a dataset: one image
per series, never only the first (the others were dropped without a word)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

tifffile = pytest.importorskip("tifffile")
pytest.importorskip("ome_arrow_tiff", reason="needs ome-arrow-tiff (pip install -e backends/tiff)")

from ome_arrow_core import OMEArrowDataset  # noqa: E402
from ome_arrow_core.plugin_api import DamagedFileError  # noqa: E402

RNG = np.random.default_rng(11)
FIRST = RNG.integers(0, 60000, (3, 32, 32), dtype=np.uint16)
SECOND = RNG.integers(0, 60000, (2, 16, 24), dtype=np.uint16)


def two_series(path: Path, ome: bool) -> Path:
    with tifffile.TiffWriter(path, ome=ome) as w:
        w.write(FIRST, metadata={"axes": "ZYX"}, photometric="minisblack")
        w.write(SECOND, metadata={"axes": "CYX"}, photometric="minisblack")
    return path


@pytest.mark.parametrize("ome", [True, False], ids=["ome-tiff", "tifffile-shaped"])
def test_each_series_of_a_tiff_file_is_an_image_of_the_dataset(tmp_path: Path, ome: bool) -> None:
    path = two_series(tmp_path / ("two.ome.tif" if ome else "two.tif"), ome)
    ds = OMEArrowDataset.scan(path)
    assert len(ds) == 2
    assert ds.table.column("image_id").to_pylist() == [f"{path.name}#0", f"{path.name}#1"]
    assert ds.table.column("series").to_pylist() == [0, 1]
    assert np.array_equal(ds[0].to_numpy().reshape(FIRST.shape), FIRST)
    assert np.array_equal(ds[1].to_numpy().reshape(SECOND.shape), SECOND)
    assert len(OMEArrowDataset.scan(path, filter={"series": 1})) == 1


def test_directory_of_tiffs_lists_every_series_and_keeps_a_damaged_file_for_its_error(tmp_path: Path) -> None:
    two_series(tmp_path / "a.ome.tif", ome=True)
    tifffile.imwrite(tmp_path / "b.tif", FIRST[0])
    (tmp_path / "c.tif").write_bytes((tmp_path / "a.ome.tif").read_bytes()[:300])  # truncated
    ds = OMEArrowDataset.scan(tmp_path)
    assert ds.table.column("image_id").to_pylist() == ["a.ome.tif#0", "a.ome.tif#1", "b.tif", "c.tif"]
    assert np.array_equal(ds[1].to_numpy().reshape(SECOND.shape), SECOND)
    assert np.array_equal(ds[2].to_numpy()[0, 0, 0], FIRST[0])
    with pytest.raises(DamagedFileError, match=r"c\.tif"):
        ds[3].to_numpy()


def test_write_dataset_of_a_multi_series_path_is_refused_not_cut_to_its_first(tmp_path: Path) -> None:
    """write_dataset takes one image per item: a path of two series was written as its first alone; it is refused,
    naming the dataset scan that writes both, and nothing is written. The scan's images write as two."""
    from ome_arrow_core import write_dataset
    from ome_arrow_core.errors import ArgumentError

    path = two_series(tmp_path / "two.ome.tif", True)
    out = tmp_path / "out.ome.parquet"
    with pytest.raises(ArgumentError, match=r"holds 2 images .*OMEArrowDataset\.scan"):
        write_dataset([path], out)
    assert not out.exists()
    write_dataset(OMEArrowDataset.scan(path), out)
    written = OMEArrowDataset.scan(out)
    assert len(written) == 2 and np.array_equal(written[1].to_numpy().reshape(SECOND.shape), SECOND)
