"""The reference's own sample files through every compat export, and back: same info, same bits.

The reference suite checks these round trips only when PyVista is installed (its test skips
before them otherwise); this test runs them always.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import ome_arrow_core.compat as oa
from ome_arrow_core import OMEArrow as CoreImage
from ome_arrow_core import OMEArrowDataset as CoreDataset

SAMPLES = [
    "ome-artificial-5d-datasets/multi-channel-4D-series.ome.tiff",
    "ome-artificial-5d-datasets/z-series.ome.tiff",
    "examplehuman/AS_09125_050116030001_D03f00d0.tif",
    "JUMP-BR00117006/BR00117006.ome.parquet",
    "nviz-artificial-4d-dataset/E99_C<111,222>_ZS<000-003>.tif",
]
EXPORTS = [
    ("ometiff", "x.ome.tiff"),
    ("omeparquet", "x.ome.parquet"),
    ("vortex", "x.vortex"),
    ("omezarr", "x.ome.zarr"),
]


@pytest.mark.parametrize("sample", SAMPLES)
def test_exports_round_trip_with_same_info_and_bits(sample: str, reference_data: Path, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the JUMP file's column is auto-detected
        image = oa.OMEArrow(str(reference_data / sample))
    info, pixels = image.info(), image.export(how="numpy")
    assert oa.OMEArrow(image.data).info() == info
    assert np.array_equal(oa.OMEArrow(pixels, dim_order="TCZYX").export(how="numpy"), pixels)
    for how, name in EXPORTS:
        if how == "omezarr":
            pytest.importorskip("ome_arrow_zarr", reason="OME-Zarr export needs ome-arrow-core[zarr]")
        back = oa.OMEArrow(image.export(how=how, out=str(tmp_path / name)))
        got = back.export(how="numpy")
        assert back.info() == info, how
        assert got.dtype == pixels.dtype and got.tobytes() == pixels.tobytes(), how


def test_int8_tiff_keeps_its_dtype(reference_data: Path) -> None:
    """The reference casts this int8 OME-TIFF to uint16; compat keeps int8 and negative values."""
    path = reference_data / "ome-artificial-5d-datasets/multi-channel-4D-series.ome.tiff"
    pixels = oa.OMEArrow(str(path)).export(how="numpy")
    core = np.asarray(CoreImage(path).to_numpy())  # TCZYX, as the reference
    assert pixels.dtype == core.dtype and pixels.tobytes() == core.tobytes()


def test_dataset_manifest_records_package_versions(tmp_path: Path) -> None:
    from ome_arrow_core import verify

    oa.write_ome_arrow_dataset([np.zeros((2, 3), np.uint16)], tmp_path / "d", compression=None)
    import json

    manifest = json.loads((tmp_path / "d" / "_ome_arrow_dataset.json").read_text())
    assert "pyarrow" in manifest["package_versions"]
    assert verify(tmp_path / "d").ok


def test_the_manifest_s_package_versions_are_added_under_the_dataset_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Adding package_versions reads the manifest and renames a new one over it: without the dataset's lock, an
    append committing in between lost its images from the manifest. The rename is made while the lock is held (an
    flock another open of the directory cannot take)."""
    import fcntl
    import os

    from ome_arrow_core.compat import dataset as compat_dataset

    real, probed = compat_dataset.atomic_path, []

    def probing(path: Path) -> object:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        probed.append(path.name)
        return real(path)

    monkeypatch.setattr(compat_dataset, "atomic_path", probing)
    oa.write_ome_arrow_dataset([np.zeros((2, 3), np.uint16)], tmp_path / "d", compression=None)
    assert probed == ["_ome_arrow_dataset.json"]
    assert len(CoreDataset.scan(tmp_path / "d")) == 1


def test_core_omearrow_refuses_reference_spellings(tmp_path: Path) -> None:
    """ome_arrow_core.OMEArrow(path, row_index=2) used to read row 0 silently."""
    arr = np.arange(6, dtype=np.uint16).reshape(2, 3)
    oa.to_ome_parquet(oa.from_numpy(arr), str(tmp_path / "r.parquet"), column_name="ome_arrow")
    for kw in ({"row_index": 0}, {"column_name": "ome_arrow"}, {"lazy": True}, {"tcz": (0, 0, 0)}):
        with pytest.raises(TypeError, match="ome_arrow_core.compat"):
            CoreImage(tmp_path / "r.parquet", **kw)
