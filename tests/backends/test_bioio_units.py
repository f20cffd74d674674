"""Physical sizes read through the bioio bridge mean what the file says: bioio-ome-tiff and bioio-ome-zarr report
sizes in the file's own units (not µm, as bioio documents), and bioio-tifffile reports a plain TIFF's print
resolution (1 pixel per unit by default) as a pixel size; the bridge agrees with our TIFF and Zarr readers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("bioio", reason='needs bioio (pip install "ome-arrow-core[bioio]")')
pytest.importorskip("ome_arrow_bioio", reason="needs ome-arrow-bioio (pip install -e backends/bioio)")
tifffile = pytest.importorskip("tifffile")

from ome_arrow_core import OMEArrow  # noqa: E402

PLANES = np.random.default_rng(4).integers(0, 60000, (3, 16, 20), dtype=np.uint16)


def same_sizes(path: Path) -> tuple[dict[str, float | None], dict[str, str]]:
    """The bridge's physical sizes and units of ``path``, checked equal to our own reader's."""
    bridged, ours = OMEArrow.scan(path, format="bioio").meta, OMEArrow.scan(path).meta
    assert (bridged.physical_size, bridged.physical_unit) == (ours.physical_size, ours.physical_unit)
    return bridged.physical_size, bridged.physical_unit


def test_ome_tiff_sizes_in_nanometres_keep_their_unit(tmp_path: Path) -> None:
    pytest.importorskip("bioio_ome_tiff", reason="needs bioio-ome-tiff")
    path = tmp_path / "cells.ome.tif"
    sizes = {"PhysicalSizeX": 250, "PhysicalSizeY": 250, "PhysicalSizeZ": 0.002}
    units = {"PhysicalSizeXUnit": "nm", "PhysicalSizeYUnit": "nm", "PhysicalSizeZUnit": "mm"}
    tifffile.imwrite(path, PLANES, ome=True, metadata={"axes": "ZYX", **sizes, **units})
    size, unit = same_sizes(path)
    assert size == {"X": 250.0, "Y": 250.0, "Z": 0.002} and unit == {"X": "nm", "Y": "nm", "Z": "mm"}


def test_ome_zarr_sizes_in_nanometres_keep_their_unit(tmp_path: Path) -> None:
    pytest.importorskip("bioio_ome_zarr", reason="needs bioio-ome-zarr")
    zarr = pytest.importorskip("zarr")
    writer = pytest.importorskip("ome_zarr.writer")
    path = tmp_path / "cells.ome.zarr"
    axes = [{"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"]
    writer.write_image(
        PLANES, zarr.open_group(path, mode="w"), axes=axes, scale={"z": 2.0, "y": 0.5, "x": 0.5}, scale_factors=[]
    )
    size, unit = same_sizes(path)
    assert size == {"X": 0.5, "Y": 0.5, "Z": 2.0} and unit == {"X": "nm", "Y": "nm", "Z": "nm"}


@pytest.mark.parametrize("resolution", [None, (300, 300, "INCH")])
def test_plain_tiff_print_resolution_is_no_pixel_size(tmp_path: Path, resolution: object) -> None:
    pytest.importorskip("bioio_tifffile", reason="needs bioio-tifffile")
    path = tmp_path / "scan.tif"
    tifffile.imwrite(path, PLANES, photometric="minisblack", resolution=resolution)
    bridged = OMEArrow.scan(path, format="bioio")
    assert bridged.info()["bioio_reader"] == "bioio-tifffile"
    assert same_sizes(path)[0] == {"X": None, "Y": None, "Z": None}


def test_imagej_calibration_through_bioio_tifffile_is_kept(tmp_path: Path) -> None:
    pytest.importorskip("bioio_tifffile", reason="needs bioio-tifffile")
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, PLANES, imagej=True, resolution=(4.0, 4.0), metadata={"axes": "ZYX", "unit": "um"})
    assert same_sizes(path)[0] == {"X": 0.25, "Y": 0.25, "Z": None}


def test_ome_zarr_axes_without_unit_at_scale_1_have_no_size(tmp_path: Path) -> None:
    """ome-zarr-py's default (axes "zyx", no units, scale 1): bioio reports 1.0 µm, the store states nothing."""
    pytest.importorskip("bioio_ome_zarr", reason="needs bioio-ome-zarr")
    zarr = pytest.importorskip("zarr")
    writer = pytest.importorskip("ome_zarr.writer")
    path = tmp_path / "plain.ome.zarr"
    writer.write_image(PLANES, zarr.open_group(path, mode="w"), axes="zyx", scale_factors=[])
    assert same_sizes(path)[0] == {"X": None, "Y": None, "Z": None}
