"""Tests of the TIFF / OME-TIFF backend (ome-arrow-tiff) against the real tifffile library: sample files, plain
TIFFs, the reader's behaviour (the lazy reads, axes and the writer have files of their own)."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

tifffile = pytest.importorskip("tifffile", reason="needs tifffile (pip install -e backends/tiff)")
pytest.importorskip("ome_arrow_tiff", reason="needs ome-arrow-tiff (pip install -e backends/tiff)")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from tiff_support import MB, image_with_meta, lazy, open_source, random_pixels, tzcyx  # noqa: E402

from ome_arrow_core import (  # noqa: E402
    DTypeError,
    LazyTensorView,
    OMEArrow,
    OMEArrowError,
    SchemaError,
    Selection,
    SelectionError,
)
from ome_arrow_core.testing import check_reader  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data" / "ome-artificial"
SAMPLES = [
    "single-channel.ome.tiff",
    "multi-channel.ome.tiff",
    "z-series.ome.tiff",
    "time-series.ome.tif",
    "multi-channel-z-series.ome.tiff",
]


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


def test_unsupported_dtype_says_how_to_read_the_file_converted(tmp_path: Path) -> None:
    """A float16 TIFF (common for network outputs): the message gives the call that reads it as float32."""
    data = np.random.default_rng(3).standard_normal((3, 8, 10)).astype(np.float16)
    path = tmp_path / "pred.tif"
    tifffile.imwrite(path, data, **MB)
    with pytest.raises(DTypeError, match=r"float16") as info:
        OMEArrow.scan(path)
    call = str(info.value).split("in memory): ", 1)[1]
    assert call == "OMEArrow(tifffile.imread('pred.tif', series=0).astype('float32'), dim_order='ZYX')"
    img = OMEArrow(tifffile.imread(path, series=0).astype("float32"), dim_order="ZYX")  # that call, here
    assert np.array_equal(img.to_numpy()[0, 0], data.astype(np.float32))


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
