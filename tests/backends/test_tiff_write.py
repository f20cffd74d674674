"""The OME-TIFF writer (ome-arrow-tiff) against the real tifffile: round trips, tiles, codecs, failed exports."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

tifffile = pytest.importorskip("tifffile", reason="needs tifffile (pip install -e backends/tiff)")
pytest.importorskip("ome_arrow_tiff", reason="needs ome-arrow-tiff (pip install -e backends/tiff)")

from tiff_support import DTYPES, MB, image_with_meta, lazy, ome_pixels, open_source, random_pixels, tzcyx  # noqa: E402

from ome_arrow_core import OMEArrow  # noqa: E402


@pytest.mark.parametrize("dtype", DTYPES)
def test_ome_tiff_round_trip(tmp_path: Path, dtype: str) -> None:
    arr = random_pixels((2, 3, 2, 17, 23), dtype)
    channels = [
        {
            "id": "ch-0",
            "name": "DAPI",
            "emission_um": 0.461,
            "excitation_um": 0.358,
            "illumination": "Epifluorescence",
            "color_rgba": 0x0000FFFF,
        },
        {
            "id": "ch-1",
            "name": "GFP",
            "emission_um": 0.509,
            "excitation_um": 0.488,
            "illumination": "Epifluorescence",
            "color_rgba": 0x00FF00FF,
        },
    ]
    img = image_with_meta(
        arr,
        physical_size_x=0.325,
        physical_size_y=0.33,
        physical_size_z=1.5,
        physical_size_z_unit="nm",
        channels=channels,
    )
    out = tmp_path / "x.ome.tiff"
    assert img.export(how="ome-tiff", out=out) == out
    # tifffile alone reads back the same values, axes and sizes ...
    with tifffile.TiffFile(out) as tf:
        series = tf.series[0]
        assert tf.is_ome and series.axes == "TZCYX" and series.shape == arr.shape
        assert series.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(series.asarray(), arr)
    pixels = ome_pixels(out)
    assert float(pixels.get("PhysicalSizeX")) == 0.325 and float(pixels.get("PhysicalSizeY")) == 0.33
    assert pixels.get("PhysicalSizeZUnit") == "nm"
    names = [e.get("Name") for e in pixels if e.tag.endswith("}Channel")]
    assert names == ["DAPI", "GFP"]
    # ... and so does the backend, metadata included
    back = OMEArrow(out)
    assert back.dtype == np.dtype(dtype) and back.meta.shape == arr.shape
    np.testing.assert_array_equal(back.to_numpy(layout="TZCYX"), arr)
    meta = back.meta
    assert dict(meta.physical_size) == {"X": 0.325, "Y": 0.33, "Z": 1.5}
    assert dict(meta.physical_unit) == {"X": "µm", "Y": "µm", "Z": "nm"}
    assert [c.name for c in meta.channels] == ["DAPI", "GFP"]
    assert [c.emission_um for c in meta.channels] == pytest.approx([0.461, 0.509])
    assert [c.excitation_um for c in meta.channels] == pytest.approx([0.358, 0.488])
    assert [c.color_rgba for c in meta.channels] == [0x0000FFFF, 0x00FF00FF]
    assert [c.illumination for c in meta.channels] == ["Epifluorescence"] * 2


def test_info_shows_physical_sizes_and_channels(tmp_path: Path) -> None:
    arr = random_pixels((1, 1, 3, 8, 8), "uint16")
    img = image_with_meta(
        arr,
        physical_size_x=0.5,
        physical_size_y=0.25,
        channels=[{"id": f"ch-{i}", "name": n} for i, n in enumerate(["a", "b", "c"])],
    )
    out = tmp_path / "info.ome.tif"
    img.export(how="tiff", out=out)  # "tiff" is an alias: OME-TIFF is a TIFF
    info = OMEArrow.scan(out).info()
    assert info["physical_size"] == {"X": 0.5, "Y": 0.25, "Z": None}  # never stated: unknown, not 1 µm
    assert info["physical_unit"] == {"X": "µm", "Y": "µm", "Z": "µm"}
    assert info["channels"] == ["a", "b", "c"]
    assert info["lazy"] is True and info["series_axes"] == "CYX"


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_tiled_export_round_trip(tmp_path: Path, compression: str | None) -> None:
    arr = random_pixels((1, 4, 2, 100, 70), "float32", seed=5)
    out = tmp_path / "tiled.ome.tiff"
    OMEArrow(arr, "TZCYX").export(how="ome-tiff", out=out, tile=(32, 32), compression=compression)
    with tifffile.TiffFile(out) as tf:
        assert tf.pages[0].is_tiled and tf.pages[0].tilelength == 32
    src = open_source(out)
    crop = lazy(src, "YX", z=3, c=1, roi=(20, 50, 20, 20)).to_numpy()
    np.testing.assert_array_equal(crop, arr[0, 3, 1, 50:70, 20:40])
    assert src.segments_read == 4  # tile rows 1-2 by tile columns 0-1
    np.testing.assert_array_equal(OMEArrow(out).to_numpy(layout="TZCYX"), arr)


def test_failed_export_leaves_no_file(tmp_path: Path) -> None:
    img = OMEArrow(random_pixels((1, 1, 1, 40, 40), "uint8"), "TZCYX")
    out = tmp_path / "x.ome.tiff"
    with pytest.raises(ValueError, match="tile"):
        img.export(how="ome-tiff", out=out, tile=(10, 10))  # tiles must be multiples of 16
    assert list(tmp_path.iterdir()) == []
    out.write_bytes(b"old")
    with pytest.raises(ValueError):
        img.export(how="ome-tiff", out=out, tile=(10, 10))
    assert out.read_bytes() == b"old" and list(tmp_path.iterdir()) == [out]


_NO_IMAGECODECS = """
import sys
sys.modules["imagecodecs"] = None  # as if imagecodecs were not installed
from pathlib import Path
import numpy as np
from ome_arrow_core import BackendUnavailableError, OMEArrow
out = Path(sys.argv[1]) / "x.ome.tiff"
img = OMEArrow(np.zeros((1, 1, 1, 16, 16), np.uint8), "TZCYX")
try:
    img.export(how="ome-tiff", out=out, compression="lzw")
except BackendUnavailableError as exc:
    assert "pip install imagecodecs" in str(exc) and not out.exists(), exc
else:
    raise AssertionError("lzw without imagecodecs wrote a file")
if len(sys.argv) > 2:
    try:
        OMEArrow(sys.argv[2])
    except BackendUnavailableError as exc:
        assert "pip install imagecodecs" in str(exc), exc
    else:
        raise AssertionError("read lzw without imagecodecs")
print("ok")
"""


def test_codecs_without_imagecodecs_name_it(tmp_path: Path) -> None:
    args = [sys.executable, "-c", _NO_IMAGECODECS, str(tmp_path / "out")]
    if importlib.util.find_spec("imagecodecs") is not None:
        lzw = tmp_path / "lzw.tif"
        tifffile.imwrite(lzw, np.zeros((16, 16), np.uint8), compression="lzw", **MB)
        args.append(str(lzw))
    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


@pytest.mark.parametrize("compression", ["lzw", "zstd", "jpeg", "packbits"])
def test_imagecodecs_compressions_crop(tmp_path: Path, compression: str) -> None:
    pytest.importorskip("imagecodecs", reason="needs imagecodecs for this compression")
    arr = random_pixels((2, 3, 80, 100), "uint8", seed=9)
    path = tmp_path / f"{compression}.tif"
    tifffile.imwrite(path, arr, tile=(32, 32), compression=compression, metadata={"axes": "ZCYX"}, **MB)
    expected = tzcyx(tifffile.imread(path), "ZCYX")  # JPEG is lossy: compare with tifffile's decode
    src = open_source(path)
    crop = lazy(src, "YX", z=1, c=2, roi=(30, 40, 40, 30)).to_numpy()
    np.testing.assert_array_equal(crop, expected[0, 1, 2, 40:70, 30:70])
    assert src.segments_read == 2 * 3  # tile rows 1-2 by tile columns 0-2
    np.testing.assert_array_equal(OMEArrow(path).to_numpy(layout="TZCYX"), expected)


@pytest.mark.parametrize(
    ("out", "options"),
    [
        ("out.ome.tif", {}),
        ("out.ome.tif", {"tile": (64, 64), "compression": "zlib"}),
        ("out.ome.tif", {"levels": 3, "tile": (32, 32)}),
        ("out.ome.tif", {"byteorder": ">", "compression": "zlib"}),
        ("out.tif", {"compression": "zlib"}),
    ],
    ids=["strips", "tiles", "pyramid", "big-endian", "plain"],
)
def test_a_scanned_image_is_written_a_plane_at_a_time(tmp_path: Path, out: str, options: dict) -> None:
    """Converting an image larger than memory must not read it whole: each block of pages is read from the image
    when it is written and again when it is read back (2 x 16 planes of 256x256 here, blocks of one Z's two
    channels), then the file reads as the image."""
    from conversion_memory import peak_read_bytes, scanned_source

    src, arr = scanned_source(tmp_path)
    small = "import ome_arrow_core.plane_blocks as p; p.BLOCK_BYTES = 1 << 18"  # blocks of one Z (2 planes), not 32 MiB
    peak = peak_read_bytes(src, "tiff", tmp_path / out, setup=small, **options)
    assert peak < arr.nbytes // 4, (peak, arr.nbytes)  # a block read, its layout's copy, the read's scratch
    got = OMEArrow.scan(tmp_path / out)
    np.testing.assert_array_equal(got.to_numpy(), arr)
    levels = options.get("levels", 1)
    with tifffile.TiffFile(tmp_path / out) as tif:
        stored = [level.asarray() for level in tif.series[0].levels]
    assert len(stored) == levels
    pages = arr.transpose(0, 2, 1, 3, 4).reshape(-1, 256, 256)  # TCZYX -> the file's TZC page order
    for k in range(1, levels):  # each level is its plane halved k times, as a whole-image pyramid gives
        np.testing.assert_array_equal(stored[k].reshape(-1, *stored[k].shape[-2:])[5], _halved(pages[5], k))


def _halved(plane: np.ndarray, times: int) -> np.ndarray:
    from ome_arrow_tiff.levels import downsample

    for _ in range(times):
        plane = downsample(plane)
    return plane
