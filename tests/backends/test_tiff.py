"""Tests of the TIFF / OME-TIFF backend (ome-arrow-tiff) against the real tifffile library."""

from __future__ import annotations

import importlib.util
import pickle
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

tifffile = pytest.importorskip("tifffile", reason="needs tifffile (pip install -e backends/tiff)")
pytest.importorskip("ome_arrow_tiff", reason="needs ome-arrow-tiff (pip install -e backends/tiff)")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ome_arrow_core import (  # noqa: E402
    DTypeError,
    LazyTensorView,
    OMEArrow,
    OMEArrowError,
    SchemaError,
    Selection,
    SelectionError,
    default_registry,
)
from ome_arrow_core.testing import check_reader  # noqa: E402
from ome_arrow_tiff.axes import AxisMap, canonical_targets  # noqa: E402
from ome_arrow_tiff.reader import TiffSource  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data" / "ome-artificial"
SAMPLES = [
    "single-channel.ome.tiff",
    "multi-channel.ome.tiff",
    "z-series.ome.tiff",
    "time-series.ome.tif",
    "multi-channel-z-series.ome.tiff",
]
DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64"]
MB = {"photometric": "minisblack"}


def tzcyx(arr: np.ndarray, axes: str) -> np.ndarray:
    """``arr`` with tifffile ``axes`` (letters from TZCYX only) as a 5-D TZCYX array."""
    assert set(axes) <= set("TZCYX"), axes
    missing = [a for a in "TZCYX" if a not in axes]
    full = arr.reshape(arr.shape + (1,) * len(missing))
    order = axes + "".join(missing)
    return full.transpose([order.index(a) for a in "TZCYX"])


def open_source(path: Path, **kw: object) -> TiffSource:
    """The pixel source the registry's reader opens for ``path``."""
    reader = default_registry().resolve_reader(path)
    assert reader.open is not None
    src = reader.open(path, **kw)
    assert isinstance(src, TiffSource)
    return src


def lazy(src: TiffSource, layout: str = "TZCYX", **select: object) -> LazyTensorView:
    """A lazy view of ``src`` (nothing read until collected)."""
    full = LazyTensorView(src, Selection.full(src.meta.sizes), "TZCYX")
    return full.select(**select).with_layout(layout)


def random_pixels(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    dt = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    if dt.kind == "f":
        return (rng.standard_normal(shape) * 1000).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, shape, dtype=dt, endpoint=True)


def image_with_meta(arr: np.ndarray, **pixels_meta: object) -> OMEArrow:
    """An in-memory image of a TZCYX array with some ``pixels_meta`` fields replaced."""
    record = OMEArrow(arr, "TZCYX").export("dict")
    record["pixels_meta"].update(pixels_meta)
    return OMEArrow(record)


def ome_pixels(path: Path) -> ET.Element:
    """The first ``Pixels`` element of a file's OME-XML (parsed independently of the backend)."""
    with tifffile.TiffFile(path) as tf:
        root = ET.fromstring(tf.ome_metadata.encode())
    return next(e for e in root.iter() if e.tag.endswith("}Pixels"))


# -- sample OME-TIFF files ----------------------------------------------------------------------
@pytest.mark.parametrize("name", SAMPLES)
def test_sample_matches_tifffile(name: str) -> None:
    path = DATA / name
    with tifffile.TiffFile(path) as tf:
        series = tf.series[0]
        expected = tzcyx(series.asarray(), series.axes)
        axes = series.axes
    img = OMEArrow(path)
    assert img.meta.shape == expected.shape
    assert img.dtype == expected.dtype == np.int8
    np.testing.assert_array_equal(img.to_numpy(layout="TZCYX"), expected)
    info = img.info()
    assert info["series_axes"] == axes
    assert info["storage"] == "tiff" and info["tiff_kind"] == "ome"
    assert info["file_size"] == path.stat().st_size
    assert info["page_count"] == int(np.prod(expected.shape[:3]))
    assert img.meta.name == name
    assert [c.id for c in img.meta.channels] == [f"Channel:0:{i}" for i in range(img.sizes["C"])]


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_conforms_to_the_reader_contract(name: str) -> None:
    """Every kind of selection, threads, aliasing and damaged copies (the plugin kit), against tifffile."""
    path = DATA / name
    with tifffile.TiffFile(path) as tf:
        expected = tzcyx(tf.series[0].asarray(), tf.series[0].axes)
    check_reader(path, expected)
    z, c = (n - 1 for n in expected.shape[1:3])
    view = OMEArrow.scan(path).tensor_view(t=slice(None, None, 2), z=[z, 0], c=c, roi=(430, 160, 9, 7), layout="TZCYX")
    assert isinstance(view, LazyTensorView) and not view.is_collected  # scanning reads no pixels
    assert view.shape == expected[::2][:, [z, 0], c : c + 1, 160:167, 430:439].shape


@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint32", "float32", "float64"])
@pytest.mark.parametrize("how", [{}, {"tile": (16, 32), "compression": "zlib"}, "plain"])
def test_written_files_conform_to_the_reader_contract(tmp_path: Path, dtype: str, how: object) -> None:
    arr = random_pixels((3, 2, 2, 70, 90), dtype, seed=8)
    if how == "plain":  # a TIFF without OME-XML: axes from tifffile's shaped metadata
        path = tmp_path / "plain.tif"
        tifffile.imwrite(path, arr[:, :, 0], metadata={"axes": "TZYX"}, **MB)
        check_reader(path, arr[:, :, :1])
    else:
        path = tmp_path / "img.ome.tiff"
        OMEArrow(arr, "TZCYX").export(how="ome-tiff", out=path, **how)  # type: ignore[arg-type]
        check_reader(path, arr)


def test_sample_reads_only_needed_pages() -> None:
    src = open_source(DATA / "multi-channel-z-series.ome.tiff")
    view = lazy(src, "YX", t=0, z=3, c=2, roi=(10, 10, 50, 40))
    assert src.pages_read == 0
    with tifffile.TiffFile(DATA / "multi-channel-z-series.ome.tiff") as tf:
        expected = tf.series[0].asarray()[2, 3, 10:50, 10:60]
    np.testing.assert_array_equal(view.to_numpy(), expected)
    assert src.pages_read == 1
    assert src.bytes_read == 40 * 439  # the 40 rows of one int8 plane, nothing else


# -- lazy reads touch only what the selection needs ---------------------------------------------
@pytest.fixture
def stack64(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A 64-plane uint16 TIFF (T=8, Z=8 in tifffile's shaped metadata), one strip per plane."""
    arr = random_pixels((8, 8, 96, 80), "uint16")
    path = tmp_path / "stack64.tif"
    tifffile.imwrite(path, arr, metadata={"axes": "TZYX"}, **MB)
    return path, arr


def test_lazy_plane_reads_one_page(stack64: tuple[Path, np.ndarray]) -> None:
    path, arr = stack64
    src = open_source(path)
    assert src.meta.shape == (8, 8, 1, 96, 80) and src.pages_read == 0
    np.testing.assert_array_equal(lazy(src, "YX", t=5, z=2).to_numpy(), arr[5, 2])
    assert (src.pages_read, src.bytes_read) == (1, 96 * 80 * 2)
    np.testing.assert_array_equal(lazy(src, t=[1, 6], z=7).to_numpy()[:, 0, 0], arr[[1, 6], 7])
    assert src.pages_read == 3
    crop = lazy(src, "YX", t=0, z=0, roi=(10, 30, 20, 5)).to_numpy()
    np.testing.assert_array_equal(crop, arr[0, 0, 30:35, 10:30])
    assert src.pages_read == 4 and src.bytes_read == (3 * 96 + 5) * 80 * 2  # 5 rows of the 4th


def test_scan_reads_nothing_until_collected(stack64: tuple[Path, np.ndarray]) -> None:
    path, arr = stack64
    scanned = OMEArrow.scan(path)
    view = scanned.tensor_view(t=3, z=4)
    assert view.shape == (1, 96, 80) and not view.is_collected
    np.testing.assert_array_equal(view.to_numpy()[0], arr[3, 4])
    assert OMEArrow(path).info()["page_count"] == 64


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_tiled_crop_reads_only_intersecting_tiles(tmp_path: Path, compression: str | None) -> None:
    arr = random_pixels((3, 512, 512), "uint16", seed=1)
    path = tmp_path / "tiled.tif"
    tifffile.imwrite(path, arr, tile=(64, 64), compression=compression, metadata={"axes": "ZYX"}, **MB)
    with tifffile.TiffFile(path) as tf:
        page = tf.series[0][1]
        counts = page.databytecounts
        grid_x = 512 // 64
    src = open_source(path)
    assert src.meta.chunk_shape == (1, 64, 64)
    info = src.describe()
    assert info["tiled"] and info["tile_shape"] == [64, 64]
    assert info["compression"] == ("none" if compression is None else "adobe_deflate")
    # rows 60..69 and columns 120..139 cross the tile grid: tiles (0,1) (0,2) (1,1) (1,2)
    view = lazy(src, "YX", z=1, roi=(120, 60, 20, 10))
    np.testing.assert_array_equal(view.to_numpy(), arr[1, 60:70, 120:140])
    tiles = [ty * grid_x + tx for ty in (0, 1) for tx in (1, 2)]
    assert (src.pages_read, src.segments_read) == (1, 4)
    assert src.bytes_read == sum(counts[i] for i in tiles)
    # one tile exactly
    np.testing.assert_array_equal(lazy(src, "YX", z=2, tile=(3, 5)).to_numpy(), arr[2, 192:256, 320:384])
    assert src.segments_read == 5


def test_compressed_strips_crop_reads_only_needed_strips(tmp_path: Path) -> None:
    arr = random_pixels((2, 100, 60), "int16", seed=2)
    path = tmp_path / "strips.tif"
    tifffile.imwrite(path, arr, rowsperstrip=10, compression="zlib", **MB)
    src = open_source(path)
    np.testing.assert_array_equal(lazy(src, "YX", z=1, roi=(5, 38, 30, 4)).to_numpy(), arr[1, 38:42, 5:35])
    assert src.segments_read == 2  # strips 30..39 and 40..49


def test_truncated_stack_reads_planes_by_offset(tmp_path: Path) -> None:
    arr = random_pixels((4, 5, 32, 48), "float32", seed=3)
    path = tmp_path / "truncated.tif"
    tifffile.imwrite(path, arr, truncate=True, metadata={"axes": "TZYX"}, **MB)
    with tifffile.TiffFile(path) as tf:
        assert len(tf.series[0]) == 1  # one IFD for all 20 planes
    src = open_source(path)
    np.testing.assert_array_equal(lazy(src, "YX", t=3, z=1).to_numpy(), arr[3, 1])
    assert (src.pages_read, src.bytes_read) == (1, 32 * 48 * 4)
    np.testing.assert_array_equal(OMEArrow(path).to_numpy()[:, 0], arr)


# -- axes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("axes", "targets"),
    [
        ("YX", "YX"),
        ("CZYX", "CZYX"),
        ("TYX", "TYX"),
        ("YXS", "YXC"),
        ("QYX", "ZYX"),
        ("IYX", "ZYX"),
        ("QQYX", "TCYX"),
        ("TIYX", "TCYX"),
        ("TZIYX", "TZCYX"),
        ("TZCQYX", "TZCTYX"),
        ("CYXS", "CYXC"),
        ("CQYX", "CTYX"),
        ("QQQYX", "TCZYX"),
        ("QQQQYX", "TTCZYX"),
        ("QYXS", "ZYXC"),
    ],
)
def test_canonical_targets(axes: str, targets: str) -> None:
    assert canonical_targets(axes) == targets


def test_axis_map_locates_planes() -> None:
    amap = AxisMap.from_series("CYXS", (2, 10, 12, 3), page_size=10 * 12 * 3)
    assert amap.sizes == {"T": 1, "Z": 1, "C": 6, "Y": 10, "X": 12}
    assert (amap.n_pages, amap.page_axes) == (2, "YXS")
    assert amap.locate(0, 0, 4) == (1, (slice(None), slice(None), 1))
    with pytest.raises(SchemaError, match="cannot split"):
        AxisMap.from_series("ZYX", (3, 10, 12), page_size=7)


@pytest.mark.parametrize(
    ("kw", "shape", "expected_axes"),
    [
        ({"photometric": "rgb"}, (5, 16, 24, 3), "QYXS"),
        ({"photometric": "rgb", "planarconfig": "separate", "tile": (16, 16)}, (2, 3, 32, 48), "QSYX"),
    ],
)
def test_rgb_samples_become_channels(tmp_path: Path, kw: dict, shape: tuple, expected_axes: str) -> None:
    arr = random_pixels(shape, "uint8", seed=4)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, arr, **kw)
    img = OMEArrow(path)
    assert img.info()["series_axes"] == expected_axes
    moved = arr if expected_axes == "QSYX" else np.moveaxis(arr, -1, 1)
    np.testing.assert_array_equal(
        img.to_numpy(layout="TZCYX")[0], moved
    )  # the unknown Q is Z, as a 3-D array's first axis
    src = open_source(path)
    crop = lazy(src, "YX", z=1, c=2, roi=(3, 4, 9, 5)).to_numpy()
    np.testing.assert_array_equal(crop, moved[1, 2, 4:9, 3:12])


# -- writer -------------------------------------------------------------------------------------
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


# -- plain (non-OME) TIFF -----------------------------------------------------------------------
def test_plain_tiff_round_trip(tmp_path: Path) -> None:
    arr = random_pixels((3, 4, 20, 30), "uint16", seed=6)
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, arr, metadata=None, **MB)  # no OME, no shape metadata: 12 pages
    with tifffile.TiffFile(path) as tf:
        assert not tf.is_ome and tf.series[0].axes == "IYX"
    img = OMEArrow(path)
    assert img.info()["axes_mapping"] == "IYX->ZYX"  # a stack of unknown axis is Z, like a 3-D array
    np.testing.assert_array_equal(img.to_numpy()[0, 0], arr.reshape(12, 20, 30))
    # and back out as a plain TIFF that tifffile reads with the same values and axes
    out = tmp_path / "again.tif"
    img.export(how="tiff", out=out, ome=False)
    with tifffile.TiffFile(out) as tf:
        assert not tf.is_ome and tf.series[0].axes == "TZCYX"  # shaped metadata keeps all five
        np.testing.assert_array_equal(tf.series[0].asarray(), arr.reshape(1, 12, 1, 20, 30))
    np.testing.assert_array_equal(OMEArrow(out).to_numpy(), img.to_numpy())


def test_plain_tiff_pixel_sizes_from_tags(tmp_path: Path) -> None:
    img = image_with_meta(random_pixels((1, 1, 1, 8, 8), "uint8"), physical_size_x=0.5, physical_size_y=0.25)
    out = tmp_path / "res.tif"
    img.export(how="tiff", out=out, ome=False)
    meta = OMEArrow(out).meta
    assert meta.physical_size["X"] == pytest.approx(0.5) and meta.physical_size["Y"] == pytest.approx(0.25)
    ij = tmp_path / "ij.tif"
    tifffile.imwrite(
        ij,
        np.zeros((3, 8, 8), np.uint8),
        imagej=True,
        resolution=(2.0, 4.0),
        metadata={"axes": "ZYX", "spacing": 1.5, "unit": "um"},
    )
    meta = OMEArrow(ij).meta
    assert dict(meta.physical_size) == pytest.approx({"X": 0.5, "Y": 0.25, "Z": 1.5})
    assert meta.sizes["Z"] == 3


# -- reader behaviour ---------------------------------------------------------------------------
def test_multi_series_rows(tmp_path: Path) -> None:
    a, b = random_pixels((2, 16, 16), "uint8"), random_pixels((3, 8, 8), "int16")
    path = tmp_path / "two.ome.tif"
    with tifffile.TiffWriter(path) as tw:
        tw.write(a, metadata={"axes": "CYX", "Name": "first"}, **MB)
        tw.write(b, metadata={"axes": "ZYX", "Name": "second"}, **MB)
    second = open_source(path, row=1)
    assert second.meta.name == "second" and second.meta.shape == (1, 3, 1, 8, 8)
    np.testing.assert_array_equal(lazy(second, "YX", z=2).to_numpy(), b[2])
    with pytest.raises(SelectionError, match="valid rows are 0..1"):
        open_source(path, row=2)
    with pytest.raises(SchemaError, match="no columns"):
        open_source(path, column="pixels")


def test_sniffs_tiff_without_suffix(tmp_path: Path) -> None:
    path = tmp_path / "image.dat"
    tifffile.imwrite(path, np.arange(64, dtype=np.uint8).reshape(8, 8), **MB)
    np.testing.assert_array_equal(OMEArrow(path).to_numpy()[0, 0, 0], np.arange(64).reshape(8, 8))


def test_unsupported_dtype_names_file(tmp_path: Path) -> None:
    path = tmp_path / "u64.tif"
    tifffile.imwrite(path, np.zeros((4, 4), np.uint64), **MB)
    with pytest.raises(DTypeError, match=r"u64\.tif.*uint64.*supported dtypes"):
        OMEArrow(path)


def test_concurrent_reads_and_prefetch(tmp_path: Path) -> None:
    arr = random_pixels((16, 1, 1, 96, 96), "uint16", seed=7)
    path = tmp_path / "tiled.ome.tiff"
    OMEArrow(arr, "TZCYX").export(how="ome-tiff", out=path, tile=(32, 32), compression="zlib")
    check_reader(path, arr)  # reads from 8 threads among the kit's checks
    tiles = list(
        OMEArrow.scan(path)
        .tensor_view(layout="TYX")
        .iter_dlpack(batch_size=3, tile_size=(40, 40), prefetch=4, mode="numpy")
    )
    assert len(tiles) == 6 * 9
    first = np.from_dlpack(tiles[0])
    np.testing.assert_array_equal(first, arr[:3, 0, 0, :40, :40])


def test_pickle_reopens_and_close(tmp_path: Path) -> None:
    arr = random_pixels((2, 8, 8), "int32")
    path = tmp_path / "p.tif"
    tifffile.imwrite(path, arr, metadata={"axes": "ZYX"}, **MB)
    src = open_source(path)
    clone = pickle.loads(pickle.dumps(src))
    assert clone is not src and clone.meta == src.meta
    np.testing.assert_array_equal(clone.read(Selection.full(clone.meta.sizes))[0, :, 0], arr)
    src.close()
    assert src.closed
    with pytest.raises(OMEArrowError, match="closed"):
        src.read(Selection.full(src.meta.sizes))
    clone.close()


@pytest.fixture(scope="module")
def prop_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A tiled, compressed OME-TIFF (tiles 16x32, edge tiles partial) and its pixels."""
    arr = random_pixels((3, 2, 2, 70, 90), "int16", seed=8)
    path = tmp_path_factory.mktemp("prop") / "prop.ome.tiff"
    OMEArrow(arr, "TZCYX").export(how="ome-tiff", out=path, tile=(16, 32), compression="zlib")
    return path, arr


def axis_index(n: int) -> st.SearchStrategy[range | tuple[int, ...]]:
    """A strided range or a tuple of indices (repeats and any order) along an axis of ``n``."""
    strided = st.builds(
        lambda a, k, s: range(a, min(n, a + k), s),
        st.integers(0, n - 1),
        st.integers(1, n),
        st.integers(1, 2),
    )
    return st.one_of(strided, st.lists(st.integers(0, n - 1), min_size=1, max_size=4).map(tuple))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_selection_equals_eager(data: st.DataObject, prop_file: tuple[Path, np.ndarray]) -> None:
    path, arr = prop_file
    src = open_source(path)
    ax = [data.draw(axis_index(n)) for n in arr.shape[:3]]
    y0, x0 = data.draw(st.integers(0, 69)), data.draw(st.integers(0, 89))
    y1, x1 = data.draw(st.integers(y0 + 1, 70)), data.draw(st.integers(x0 + 1, 90))
    sel = Selection(*ax, range(y0, y1), range(x0, x1))
    np.testing.assert_array_equal(src.read(sel), sel.apply(arr))
    src.close()


def test_plugin_load_does_not_import_tifffile() -> None:
    code = (
        "import sys, ome_arrow_core as o; r = o.default_registry(); "
        "assert [h for h in r.readers() if h.name == 'tiff']; r.writers(); "
        "assert r.resolve_reader('a.ome.tiff').name == 'tiff'; "
        "print('tifffile' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
