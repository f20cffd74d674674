"""Multi-file OME-TIFFs (one plane per file, each file's OME-XML naming the others by UUID FileName), as
Bio-Formats and Micro-Manager write them: every plane reads bit-exact, whole or cropped, without warnings."""

from __future__ import annotations

import uuid
import warnings
from pathlib import Path

import numpy as np
import pytest

tifffile = pytest.importorskip("tifffile")
pytest.importorskip("ome_arrow_tiff", reason="needs ome-arrow-tiff (pip install -e backends/tiff)")

from ome_arrow_core import OMEArrow  # noqa: E402

NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"


def write_multifile(folder: Path, planes: np.ndarray, **options: object) -> Path:
    """Plane ``z`` of ``planes`` (Z, Y, X uint16) in ``folder/p{z}.ome.tif``; returns the first file."""
    ids = [f"urn:uuid:{uuid.uuid4()}" for _ in planes]
    tiffdata = "".join(
        f'<TiffData FirstZ="{z}" IFD="0" PlaneCount="1"><UUID FileName="p{z}.ome.tif">{u}</UUID></TiffData>'
        for z, u in enumerate(ids)
    )
    n_z, n_y, n_x = planes.shape
    for z, u in enumerate(ids):
        xml = (
            f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="{NS}" UUID="{u}"><Image ID="Image:0">'
            f'<Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint16" SizeX="{n_x}" SizeY="{n_y}" '
            f'SizeZ="{n_z}" SizeC="1" SizeT="1"><Channel ID="Channel:0:0" SamplesPerPixel="1"/>{tiffdata}'
            "</Pixels></Image></OME>"
        )
        tifffile.imwrite(folder / f"p{z}.ome.tif", planes[z], description=xml, metadata=None, **options)
    return folder / "p0.ome.tif"


@pytest.mark.parametrize(
    "options", [{}, {"compression": "zlib"}, {"tile": (32, 32), "compression": "zstd"}], ids=["raw", "zlib", "tiled"]
)
def test_multifile_ome_tiff_reads_every_plane(tmp_path: Path, options: dict[str, object]) -> None:
    """tifffile closes the other files after opening them: reads of their planes failed (AssertionError)."""
    planes = np.random.default_rng(6).integers(0, 60000, (4, 64, 64), dtype=np.uint16)
    first = write_multifile(tmp_path, planes, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # tifffile warns when it reads from a closed file
        img = OMEArrow.scan(first)
        assert img.shape == (1, 1, 4, 64, 64)
        assert np.array_equal(img.tensor_view(layout="ZYX").to_numpy(), planes)
        crop = img.tensor_view(z=2, roi=(5, 7, 40, 30), layout="YX").to_numpy()
        assert np.array_equal(crop, planes[2, 7:37, 5:45])
