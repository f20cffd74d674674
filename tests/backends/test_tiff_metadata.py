"""TIFF metadata (ome-arrow-tiff): physical sizes only from a calibration (OME-XML, ImageJ, our shaped
description), never from print resolution tags; a lying size is our error naming file and field;
RGB/RGBA samples per pixel decode as channels R, G, B[, A] with a note in info()."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

tifffile = pytest.importorskip("tifffile")
pytest.importorskip("ome_arrow_tiff", reason="needs ome-arrow-tiff (pip install -e backends/tiff)")

from ome_arrow_core import ImageMeta, OMEArrow  # noqa: E402
from ome_arrow_core.plugin_api import SAMPLES_NOTE, DamagedFileError  # noqa: E402
from ome_arrow_core.record.codec import pixels_to_record  # noqa: E402

UNKNOWN = {"X": None, "Y": None, "Z": None}


def pixels(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize(("unit", "dpi"), [("INCH", 300.0), ("CENTIMETER", 300.0 * 2.54), ("MILLIMETER", 300.0 * 25.4)])
def test_print_resolution_is_reported_not_used_as_calibration(tmp_path: Path, unit: str, dpi: float) -> None:
    path = tmp_path / "scan.tif"
    tifffile.imwrite(path, pixels((8, 8)), resolution=(300.0, 300.0), resolutionunit=unit)
    img = OMEArrow(path)
    assert img.meta.physical_size == UNKNOWN
    info = img.info()
    assert info["physical_size"] == UNKNOWN
    assert info["resolution (dpi)"] == pytest.approx({"X": dpi, "Y": dpi})


def test_centimetre_resolution_converts_to_dpi_and_none_has_no_dpi(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "cm.tif", pixels((8, 8)), resolution=(100.0, 50.0), resolutionunit="CENTIMETER")
    assert OMEArrow(tmp_path / "cm.tif").info()["resolution (dpi)"] == pytest.approx({"X": 254.0, "Y": 127.0})
    tifffile.imwrite(tmp_path / "none.tif", pixels((8, 8)), resolution=(2.0, 2.0), resolutionunit="NONE")
    img = OMEArrow(tmp_path / "none.tif")
    assert img.info()["resolution (dpi)"] is None and img.meta.physical_size == UNKNOWN


def test_uncalibrated_image_writes_no_physical_size_and_reads_back_unknown(tmp_path: Path) -> None:
    img = OMEArrow(pixels((1, 2, 1, 8, 8)), dim_order="TZCYX")
    img.export(how="tiff", out=tmp_path / "u.ome.tif")
    with tifffile.TiffFile(tmp_path / "u.ome.tif") as tf:
        root = ET.fromstring(tf.ome_metadata.encode())
    px = next(e for e in root.iter() if e.tag.endswith("}Pixels"))
    assert not [k for k in px.attrib if k.startswith("PhysicalSize")]
    assert OMEArrow(tmp_path / "u.ome.tif").meta.physical_size == UNKNOWN
    img.export(how="tiff", out=tmp_path / "u.tif", ome=False)
    assert OMEArrow(tmp_path / "u.tif").meta.physical_size == UNKNOWN


def test_plain_tiff_keeps_known_sizes_in_its_shaped_description(tmp_path: Path) -> None:
    meta = ImageMeta(
        sizes={"Z": 2, "Y": 8, "X": 8}, dtype=np.uint8, physical_size={"X": 0.5, "Z": 3.0}, physical_unit={"Z": "nm"}
    )
    OMEArrow(pixels_to_record(meta, pixels((1, 2, 1, 8, 8)))).export(how="tiff", out=tmp_path / "p.tif", ome=False)
    got = OMEArrow(tmp_path / "p.tif").meta
    assert got.physical_size == {"X": 0.5, "Y": None, "Z": 3.0}
    assert got.physical_unit["Z"] == "nm"


def _patched(src: Path, dst: Path, old: bytes, new: bytes) -> Path:
    data = src.read_bytes()
    assert data.count(old) == 1 and len(old) == len(new)  # same length: every offset stays valid
    dst.write_bytes(data.replace(old, new))
    return dst


@pytest.mark.parametrize("lie", [b"-0.5", b"NaN ", b"abcd", b"0   ", b"inf "])
def test_lying_ome_xml_physical_size_names_file_and_field(tmp_path: Path, lie: bytes) -> None:
    ok = tmp_path / "ok.ome.tif"
    tifffile.imwrite(ok, pixels((8, 8)), ome=True, metadata={"axes": "YX", "PhysicalSizeX": 0.25})
    bad = _patched(ok, tmp_path / "bad.ome.tif", b'PhysicalSizeX="0.25"', b'PhysicalSizeX="' + lie + b'"')
    with pytest.raises(DamagedFileError, match=r"bad\.ome\.tif.*PhysicalSizeX"):
        OMEArrow.scan(bad)


@pytest.mark.parametrize("lie", [-1.5, math.nan, "wide"])
def test_lying_shaped_or_imagej_sizes_name_file_and_field(tmp_path: Path, lie: object) -> None:
    tifffile.imwrite(tmp_path / "s.tif", pixels((8, 8)), metadata={"axes": "YX", "PhysicalSizeY": lie})
    with pytest.raises(DamagedFileError, match=r"s\.tif.*PhysicalSizeY"):
        OMEArrow.scan(tmp_path / "s.tif")
    if isinstance(lie, float):
        tifffile.imwrite(
            tmp_path / "ij.tif", pixels((2, 8, 8)), imagej=True, metadata={"axes": "ZYX", "spacing": lie, "unit": "um"}
        )
        with pytest.raises(DamagedFileError, match=r"ij\.tif.*spacing"):
            OMEArrow.scan(tmp_path / "ij.tif")


def test_imagej_calibration_is_used(tmp_path: Path) -> None:
    tifffile.imwrite(
        tmp_path / "ij.tif",
        pixels((3, 8, 8)),
        imagej=True,
        resolution=(2.0, 4.0),
        metadata={"axes": "ZYX", "spacing": 1.5, "unit": "um"},
    )
    meta = OMEArrow(tmp_path / "ij.tif").meta
    assert meta.physical_size == pytest.approx({"X": 0.5, "Y": 0.25, "Z": 1.5})
    tifffile.imwrite(
        tmp_path / "px.tif",
        pixels((3, 8, 8)),
        imagej=True,
        resolution=(2.0, 4.0),
        metadata={"axes": "ZYX", "spacing": 1.5, "unit": "pixel"},
    )  # not a length: uncalibrated
    assert OMEArrow(tmp_path / "px.tif").meta.physical_size == UNKNOWN


# -- samples per pixel -----------------------------------------------------------------------------
@pytest.mark.parametrize("planar", ["contig", "separate"])
@pytest.mark.parametrize("samples", [3, 4])
def test_rgb_tiffs_decode_as_channels_bit_exact(tmp_path: Path, planar: str, samples: int) -> None:
    yxs = pixels((10, 12, samples), seed=samples)
    data = yxs if planar == "contig" else np.moveaxis(yxs, -1, 0)
    extra = {"extrasamples": ["unassalpha"]} if samples == 4 else {}
    tifffile.imwrite(tmp_path / "rgb.tif", data, photometric="rgb", planarconfig=planar, **extra)
    img = OMEArrow.scan(tmp_path / "rgb.tif")
    assert img.shape == (1, samples, 1, 10, 12)
    assert [c.name for c in img.meta.channels] == list("RGBA"[:samples])
    assert img.info()["notes"] == [SAMPLES_NOTE]
    got = img.to_numpy()
    assert got.tobytes() == np.ascontiguousarray(np.moveaxis(yxs, -1, 0)[None, None]).tobytes()
    crop = img.slice_lazy(1, 6, 2, 6, c_indices=[2, 0]).to_numpy()  # x 1:6, y 2:6: reads the pages it needs
    np.testing.assert_array_equal(crop, got[:, [2, 0], :, 2:6, 1:6])


def test_jpeg_ycbcr_tiff_decodes_as_rgb_channels(tmp_path: Path) -> None:
    """tifffile stores RGB JPEG as YCbCr (Photometric 6) and decodes it back to RGB: the channels are R, G, B."""
    tifffile.imwrite(tmp_path / "he.tif", pixels((32, 48, 3)), photometric="rgb", compression="jpeg")
    with tifffile.TiffFile(tmp_path / "he.tif") as tif:
        assert int(tif.pages[0].photometric) == 6
        want = tif.asarray()
    img = OMEArrow.scan(tmp_path / "he.tif")
    assert [c.name for c in img.meta.channels] == ["R", "G", "B"]
    assert np.array_equal(img.to_numpy()[0, :, 0], np.moveaxis(want, -1, 0))


def test_grey_tiff_has_no_samples_note(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "g.tif", pixels((2, 8, 8)), photometric="minisblack")
    assert SAMPLES_NOTE not in OMEArrow(tmp_path / "g.tif").info().get("notes", [])


# -- channel colours and wavelengths, channel by channel --------------------------------------------
def test_some_channel_colours_survive_ome_tiff_parquet_ome_tiff(tmp_path: Path) -> None:
    ome_types = pytest.importorskip("ome_types")
    from ome_arrow_core import Channel

    chans = [
        Channel(id="ch-0", name="DAPI", color_rgba=0x0000FFFF, emission_um=0.461),
        Channel(id="ch-1", name="bright"),
        Channel(id="ch-2", name="RFP", color_rgba=0xFF0000FF, excitation_um=0.555),
    ]
    meta = ImageMeta(sizes={"C": 3, "Y": 8, "X": 8}, dtype=np.uint8, channels=chans)
    data = pixels((1, 1, 3, 8, 8))
    OMEArrow(pixels_to_record(meta, data)).export(how="tiff", out=tmp_path / "a.ome.tif")
    OMEArrow(tmp_path / "a.ome.tif").export("parquet", tmp_path / "b.ome.parquet")
    OMEArrow(tmp_path / "b.ome.parquet").export(how="tiff", out=tmp_path / "c.ome.tif")
    for name in ("a.ome.tif", "c.ome.tif"):
        with tifffile.TiffFile(tmp_path / name) as tf:
            xml = tf.ome_metadata
        model = ome_types.from_xml(xml)  # valid OME-XML, as ome-types reads it
        got = model.images[0].pixels.channels
        assert [c.name for c in got] == ["DAPI", "bright", "RFP"]
        assert got[0].color.as_rgb_tuple()[:3] == (0, 0, 255) and got[2].color.as_rgb_tuple()[:3] == (255, 0, 0)
        raw = [e for e in ET.fromstring(xml.encode()).iter() if e.tag.endswith("}Channel")]
        assert [e.get("Color") is not None for e in raw] == [True, False, True]  # none stated: none written
        assert got[0].emission_wavelength == pytest.approx(461.0) and got[1].emission_wavelength is None
        assert got[2].excitation_wavelength == pytest.approx(555.0) and got[0].excitation_wavelength is None
    back = OMEArrow(tmp_path / "c.ome.tif")
    assert [c.color_rgba for c in back.meta.channels] == [0x0000FFFF, None, 0xFF0000FF]
    assert back.to_numpy().tobytes() == data.tobytes()
