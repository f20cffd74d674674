"""``OMEArrow.ome_metadata``: an ``ome_types.OME`` built from what we hold, or the stored OME-XML of an OME-TIFF."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ome_arrow_core import Channel, ImageMeta, OMEArrow
from ome_arrow_core.record.codec import pixels_to_record

ome_types = pytest.importorskip("ome_types")


def image() -> OMEArrow:
    chans = [
        Channel(id="ch-0", name="DAPI", color_rgba=0x0000FFFF, emission_um=0.461, illumination="Epifluorescence"),
        Channel(id="ch-1", name="bright"),
    ]
    meta = ImageMeta(
        sizes={"T": 2, "Z": 3, "C": 2, "Y": 8, "X": 6},
        dtype=np.uint16,
        name="cells",
        physical_size={"X": 0.25, "Y": 0.25},
        physical_unit={"X": "nm", "Y": "nm"},
        channels=chans,
        acquisition_datetime="2024-05-01T10:20:30",
    )
    return OMEArrow(pixels_to_record(meta, np.zeros((2, 3, 2, 8, 6), np.uint16)))


def test_built_from_what_we_hold() -> None:
    model = image().ome_metadata
    assert isinstance(model, ome_types.OME)
    px = model.images[0].pixels
    assert (px.size_t, px.size_z, px.size_c, px.size_y, px.size_x) == (2, 3, 2, 8, 6)
    assert px.type.value == "uint16" and model.images[0].name == "cells"
    assert px.physical_size_x == 0.25 and px.physical_size_x_unit.value == "nm"
    assert px.physical_size_z is None  # unknown stays unknown
    assert [c.name for c in px.channels] == ["DAPI", "bright"]
    assert px.channels[0].color.as_rgb_tuple()[:3] == (0, 0, 255)
    assert px.channels[0].emission_wavelength == pytest.approx(461.0) and px.channels[1].emission_wavelength is None
    assert px.channels[0].illumination_type.value == "Epifluorescence"
    assert model.images[0].acquisition_date.year == 2024
    again = ome_types.from_xml(ome_types.to_xml(model))  # serialises to OME-XML ome-types reads back
    assert again.images[0].pixels.size_c == 2


def test_a_channel_subset_describes_the_subset() -> None:
    px = image().slice_lazy(0, 6, 0, 8, c_indices=[1]).ome_metadata.images[0].pixels
    assert px.size_c == 1 and [c.name for c in px.channels] == ["bright"]


def test_an_ome_tiff_gives_its_stored_ome_xml(tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    pytest.importorskip("ome_arrow_tiff")
    path = tmp_path / "s.ome.tif"
    tifffile.imwrite(
        path,
        np.zeros((2, 8, 8), np.uint8),
        ome=True,
        metadata={"axes": "CYX", "Name": "stored", "Channel": {"Name": ["a", "b"]}},
    )
    img = OMEArrow.scan(path)
    model = img.ome_metadata
    assert model.creator.startswith("tifffile") and model.images[0].name == "stored"
    sub = img.slice_lazy(0, 8, 0, 8, c_indices=[1]).ome_metadata  # not the stored image any more: built
    assert sub.creator == "ome-arrow-core" and [c.name for c in sub.images[0].pixels.channels] == ["b"]
    assert OMEArrow(path).ome_metadata.creator.startswith("tifffile")  # an eager read keeps it too


def test_without_ome_types_the_error_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['ome_types'] = None\n"
        "import numpy as np\nfrom ome_arrow_core import OMEArrow, BackendUnavailableError\n"
        "try:\n    OMEArrow(np.zeros((2, 2), np.uint8)).ome_metadata\n"
        "except BackendUnavailableError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install" in out and "ome-types" in out
