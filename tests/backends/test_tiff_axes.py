"""How a TIFF's axes map onto TCZYX: tifffile's axes to canonical targets, planes located by AxisMap, RGB samples
as channels; and TIFFs whose axes tifffile does not know (generic ``IYX`` page stacks, shaped ``Q...YX`` series).

They map like a numpy array of the same rank (ome-arrow-core's ingest rule: YX, ZYX, TCYX,
TCZYX), so a plain stack of 64 pages is 64 Z planes of one time point, as ``OMEArrow(array)``
reads the same array. Every file here is written by tifffile without axis metadata.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

tifffile = pytest.importorskip("tifffile", reason="needs tifffile (pip install -e backends/tiff)")
pytest.importorskip("ome_arrow_tiff", reason="needs ome-arrow-tiff (pip install -e backends/tiff)")

from tiff_support import lazy, open_source, random_pixels  # noqa: E402

from ome_arrow_core import OMEArrow, OMEArrowError, SchemaError  # noqa: E402
from ome_arrow_core.errors import DamagedFileError  # noqa: E402
from ome_arrow_tiff.axes import AxisMap, canonical_targets  # noqa: E402

MB = {"photometric": "minisblack"}


def pixels(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 65535, shape).astype(np.uint16)


def test_a_plain_64_page_stack_is_64_z_planes(tmp_path: Path) -> None:
    arr = pixels((64, 24, 20))
    path = tmp_path / "stack.tif"
    with tifffile.TiffWriter(path) as tw:  # one page at a time, no metadata: a generic (uniform) series
        for plane in arr:
            tw.write(plane, metadata=None, **MB)
    with tifffile.TiffFile(path) as tif:
        assert tif.series[0].kind in ("generic", "uniform") and tif.series[0].axes == "IYX"
    img = OMEArrow(path)
    assert img.sizes == {"T": 1, "Z": 64, "C": 1, "Y": 24, "X": 20}
    assert img.info()["axes_mapping"] == "IYX->ZYX"
    np.testing.assert_array_equal(img.to_numpy(), OMEArrow(arr).to_numpy())  # as the same array in memory
    lazy = OMEArrow.scan(path)
    np.testing.assert_array_equal(
        lazy.tensor_view(z=37, roi=(3, 4, 10, 12), layout="YX").to_numpy(), arr[37, 4:16, 3:13]
    )
    assert lazy.source.pages_read == 1


@pytest.mark.parametrize(
    ("shape", "targets", "sizes"),
    [
        ((20, 16), "YX", (1, 1, 1)),
        ((5, 20, 16), "ZYX", (1, 5, 1)),
        ((3, 4, 20, 16), "TCYX", (3, 1, 4)),
        ((2, 3, 4, 20, 16), "TCZYX", (2, 4, 3)),
        ((2, 2, 3, 4, 20, 16), "TTCZYX", (4, 4, 3)),
    ],  # a sixth axis folds into T
)
def test_shaped_files_without_axes_map_like_an_array_of_the_same_rank(
    tmp_path: Path,
    shape: tuple[int, ...],
    targets: str,
    sizes: tuple[int, int, int],
) -> None:
    arr = pixels(shape, seed=len(shape))
    path = tmp_path / "shaped.tif"
    tifffile.imwrite(path, arr, **MB)  # tifffile's shaped metadata records the shape only
    with tifffile.TiffFile(path) as tif:
        axes = tif.series[0].axes
        assert tif.series[0].kind == "shaped" and set(axes[:-2]) <= {"Q"}, axes
    img = OMEArrow(path)
    assert img.info()["axes_mapping"] == f"{axes}->{targets}"
    assert tuple(img.sizes[a] for a in "TZC") == sizes
    if len(shape) <= 5:  # what ome-arrow-core makes of the same array in memory
        np.testing.assert_array_equal(img.to_numpy(), OMEArrow(arr).to_numpy())
    else:
        np.testing.assert_array_equal(img.to_numpy(), OMEArrow(arr.reshape(4, 3, 4, 20, 16)).to_numpy())


def test_known_letters_keep_their_meaning_next_to_unknown_ones(tmp_path: Path) -> None:
    arr = pixels((3, 5, 20, 16))
    path = tmp_path / "cq.tif"
    tifffile.imwrite(path, arr, metadata={"axes": "CQYX"}, **MB)
    img = OMEArrow(path)
    assert img.info()["axes_mapping"] == "CQYX->CTYX"  # Q's default (C, as in TCYX) is taken: the first free, T
    np.testing.assert_array_equal(img.to_numpy(layout="TZCYX"), arr.transpose(1, 0, 2, 3)[:, None])


def test_rgb_pages_without_axes(tmp_path: Path) -> None:
    arr = np.random.default_rng(3).integers(0, 255, (4, 20, 16, 3)).astype(np.uint8)
    path = tmp_path / "rgb.tif"
    with tifffile.TiffWriter(path) as tw:
        for page in arr:
            tw.write(page, photometric="rgb", metadata=None)
    img = OMEArrow(path)
    assert img.info()["axes_mapping"] == "IYXS->ZYXC"
    np.testing.assert_array_equal(img.to_numpy(layout="TZCYX")[0], np.moveaxis(arr, -1, 1))


def test_a_damaged_plain_stack_reads_its_pixels_or_fails_clearly(tmp_path: Path) -> None:
    """A stack without metadata has no declaration to check against: truncation must still be refused."""
    arr = pixels((6, 12, 10))
    path = tmp_path / "stack.tif"
    with tifffile.TiffWriter(path) as tw:
        for plane in arr:
            tw.write(plane, metadata=None, compression="zlib", **MB)
    data = path.read_bytes()
    mutant = tmp_path / "m.tif"
    for at in range(1, len(data), max(1, len(data) // 150)):
        mutant.write_bytes(data[:at])
        try:
            got = OMEArrow(mutant).to_numpy()
        except OMEArrowError as exc:
            assert mutant.name in str(exc)
            continue
        # fewer pages is another image, not this one: tifffile's generic series would show 5 pages
        pytest.fail(f"cut at {at} of {len(data)} bytes read as {got.shape}")


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


# -- channels last: tifffile stores a named YXC array one image row per page (pages of X by C) ------------
@pytest.mark.parametrize(
    ("axes", "shape"),
    [("YXC", (30, 20, 2)), ("YXC", (30, 20, 3)), ("ZYXC", (3, 30, 20, 2)), ("TYXC", (2, 30, 20, 4))],
)
def test_channels_last_axes_read_as_channels(tmp_path: Path, axes: str, shape: tuple[int, ...]) -> None:
    arr = pixels(shape, seed=len(shape))
    path = tmp_path / "last.tif"
    tifffile.imwrite(path, arr, metadata={"axes": axes}, **MB)
    with tifffile.TiffFile(path) as tif:
        assert tif.series[0].axes == axes and tif.series[0].keyframe.shape == shape[-2:]  # a row per page
    stored = tifffile.imread(path)
    full = stored.reshape(shape if len(shape) == 4 else (1, *shape))  # (T or Z), Y, X, C
    expected = np.moveaxis(full, -1, 1)  # (T or Z), C, Y, X
    img = OMEArrow(path)
    assert img.info()["axes_mapping"] == f"{axes}->{axes}"
    assert img.sizes["C"] == shape[-1] and (img.sizes["Y"], img.sizes["X"]) == shape[-3:-1]
    tczyx = img.to_numpy(layout="TZCYX").reshape(-1, shape[-1], *shape[-3:-1])
    np.testing.assert_array_equal(tczyx, expected)
    scanned = OMEArrow.scan(path)
    np.testing.assert_array_equal(scanned.to_numpy(), img.to_numpy())
    src = open_source(path)
    last = {"t": -1, "z": 0} if axes[0] == "T" else {"t": 0, "z": -1}
    crop = lazy(src, "YXC", c=[1, 0], roi=(3, 4, 9, 5), **last).to_numpy()
    np.testing.assert_array_equal(crop, full[-1, 4:9, 3:12][..., [1, 0]])
    assert src.pages_read == 5  # the crop's rows, one page each


def test_unnamed_axes_are_read_as_an_array_and_say_so(tmp_path: Path) -> None:
    path = tmp_path / "two_ch.tif"
    tifffile.imwrite(path, pixels((30, 20, 2)), **MB)  # channels last, but nothing names the axes
    info = OMEArrow.scan(path).info()
    assert info["axes_mapping"] == "QYX->ZYX"
    assert any("'QYX'" in n and "metadata={'axes': 'YXC'}" in n for n in info["notes"]), info.get("notes")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (None, 0.5),  # cut in half
        (None, 0.02),  # cut inside the first pages
        (b'"shape": [64, 80, 2]', b'"shape": [64, 80, 3]'),  # more samples than the pages hold
        (b'"shape": [64, 80, 2]', b'"shape": [32, 80, 2]'),  # fewer rows than pages
        (b'"axes": "YXC"', b'"axes": "XYC"'),  # axes that do not split into its pages
    ],
)
def test_a_damaged_or_lying_channels_last_file_is_refused(tmp_path: Path, old: bytes | None, new: object) -> None:
    import tifffile

    a = random_pixels((64, 80, 2), "uint16")
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, a, metadata={"axes": "YXC"})
    data = good.read_bytes()
    bad = tmp_path / "bad.tif"
    if old is None:
        assert isinstance(new, float)
        bad.write_bytes(data[: int(len(data) * new)])
    else:
        assert isinstance(new, bytes) and data.count(old) == 1
        bad.write_bytes(data.replace(old, new))
    for read in (
        lambda: OMEArrow(bad).to_numpy(),
        lambda: OMEArrow.scan(bad).tensor_view(roi=(0, 40, 80, 24)).to_numpy(),
    ):
        with pytest.raises(DamagedFileError, match=str(bad)):
            read()


@pytest.mark.parametrize(
    ("shape", "axes"),
    [((1, 1), "YX"), ((5, 1, 1), "ZYX"), ((1, 7), "YX"), ((4, 1), "YX"), ((2, 3, 1, 1), "TCYX")],
)
@pytest.mark.parametrize("ome", [True, False])
def test_images_one_pixel_high_or_wide_read_as_written(
    tmp_path: Path, shape: tuple[int, ...], axes: str, ome: bool
) -> None:
    """tifffile's pages of a 1x1 image are (1, 1) planes, not single pixels of a stack of rows (DamagedFileError)."""
    arr = pixels(shape)
    path = tmp_path / ("one.ome.tif" if ome else "one.tif")
    tifffile.imwrite(path, arr, ome=ome, metadata={"axes": axes}, **MB)
    np.testing.assert_array_equal(OMEArrow(path).to_numpy(layout=axes), arr)
    np.testing.assert_array_equal(OMEArrow.scan(path).tensor_view(layout=axes).to_numpy(), arr)
    back = tmp_path / "back.ome.tiff"
    OMEArrow(arr, dim_order=axes).export(out=back)
    np.testing.assert_array_equal(OMEArrow(back).to_numpy(layout=axes), arr)


def test_a_channels_last_image_one_pixel_high_reads_as_written(tmp_path: Path) -> None:
    arr = pixels((1, 5, 3))
    tifffile.imwrite(tmp_path / "row.tif", arr, metadata={"axes": "YXC"}, **MB)
    np.testing.assert_array_equal(OMEArrow.scan(tmp_path / "row.tif").to_numpy(layout="YXC"), arr)
