"""Pictures stored with several samples per pixel (RGB/RGBA TIFFs, CytoDataFrame composite columns) show
in their own colours: R red, G green, B blue, alpha in none; real PNGs from the CLI, ``_repr_png_`` and
the reference API's ``info()`` (C = samples, with the note)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from png_support import decode_png
from test_record_samples import composite_table

from ome_arrow_core import OMEArrow
from ome_arrow_core.cli import main
from ome_arrow_core.compat import OMEArrow as ReferenceOMEArrow
from ome_arrow_core.plugin_api import SAMPLES_NOTE


def bands(samples: int) -> np.ndarray:
    """A (16, 24, samples) uint8 picture: red, green and blue vertical bands; alpha opaque but for one pixel."""
    yxs = np.zeros((16, 24, samples), np.uint8)
    for k in range(3):
        yxs[:, 8 * k : 8 * k + 8, k] = 200
    if samples == 4:
        yxs[..., 3] = 255
        yxs[0, 0, 3] = 0
    return yxs


def picture_file(tmp_path: Path, source: str, yxs: np.ndarray) -> Path:
    if source == "record":
        return composite_table(tmp_path / "cells.parquet", yxs[None, None])
    tifffile = pytest.importorskip("tifffile")
    pytest.importorskip("ome_arrow_tiff")
    extra = {"extrasamples": ["unassalpha"]} if yxs.shape[-1] == 4 else {}
    tifffile.imwrite(tmp_path / "rgb.tif", yxs, photometric="rgb", **extra)
    return tmp_path / "rgb.tif"


def assert_bands(pic: np.ndarray) -> None:
    assert pic.shape == (16, 24, 3) and pic.dtype == np.uint8
    for k, colour in enumerate(([255, 0, 0], [0, 255, 0], [0, 0, 255])):
        assert (pic[:, 8 * k : 8 * k + 8] == colour).all(), (k, pic[8, 8 * k])


@pytest.mark.parametrize("source", ["tiff", "record"])
@pytest.mark.parametrize("samples", [3, 4])
def test_samples_render_in_their_own_colours(tmp_path: Path, source: str, samples: int) -> None:
    path = picture_file(tmp_path, source, bands(samples))
    img = OMEArrow(path)
    assert img.info()["notes"] == [SAMPLES_NOTE]
    out = tmp_path / "thumb.png"
    assert main(["thumbnail", str(path), "-o", str(out), "--size", "24"]) == 0
    assert_bands(decode_png(out))
    assert_bands(decode_png(img._repr_png_()))


def test_a_channel_named_a_that_is_no_alpha_sample_keeps_its_colour() -> None:
    arr = np.zeros((4, 8, 8), np.uint8)
    arr[3] = 200
    record = OMEArrow(arr, "CYX").export("dict")
    for k, ch in enumerate(record["pixels_meta"]["channels"]):
        ch["name"] = "RGBA"[k]  # named like samples, but four true channels: the 4th is cyan by default
    assert (OMEArrow(record).thumbnail(8) == [0, 255, 255]).all()


@pytest.mark.parametrize("samples", [3, 4])
def test_the_reference_api_describes_a_composite_column_as_channels(tmp_path: Path, samples: int) -> None:
    yxs = bands(samples)
    path = composite_table(tmp_path / "cells.parquet", yxs[None, None])
    for lazy in (False, True):
        img = ReferenceOMEArrow(data=str(path), column_name="Image_composite", lazy=lazy)
        info = img.info()
        assert info["shape"] == (1, samples, 1, 16, 24) and info["channels"] == samples and info["is_multichannel"]
        assert info["notes"] == [SAMPLES_NOTE]
        got = img.export(how="numpy")  # TCZYX, the reference's order
        assert got.dtype == np.uint8 and got.tobytes() == np.moveaxis(yxs, -1, 0)[None, :, None].tobytes()
    plain = ReferenceOMEArrow(data=np.zeros((1, 1, 1, 4, 4), np.uint16))
    assert "notes" not in plain.info()
