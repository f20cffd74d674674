"""Pyramid levels of TIFF and OME-TIFF files: read with ``level=``, listed by ``info()``, written with ``levels=``.

The pyramids read here are written by tifffile itself (an independent writer) in each way it
knows: OME-TIFF SubIFDs, shaped-TIFF SubIFDs, reduced-resolution series of a plain TIFF.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

tifffile = pytest.importorskip("tifffile", reason="needs tifffile (pip install -e backends/tiff)")
pytest.importorskip("ome_arrow_tiff", reason="needs ome-arrow-tiff (pip install -e backends/tiff)")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ome_arrow_core import OMEArrow, OMEArrowError, SelectionError, verify  # noqa: E402
from ome_arrow_core.errors import ArgumentError  # noqa: E402
from ome_arrow_tiff.levels import downsample  # noqa: E402

DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64", "bool"]
MB = {"photometric": "minisblack"}
#: tifffile's ways of writing a pyramid: (name, file suffix).
KINDS = [("ome-subifds", ".ome.tif"), ("shaped-subifds", ".tif"), ("series", ".tif")]


def random_pixels(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    if dt.kind == "f":
        return (rng.standard_normal(shape) * 1000).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, shape, dtype=dt, endpoint=True)


def tifffile_pyramid(path: Path, kind: str, levels: list[np.ndarray]) -> None:
    """Write ``levels`` (ZYX arrays, each a reduced copy of the first) as tifffile does for ``kind``."""
    tile = {"tile": (16, 16)} if levels[0].dtype != np.bool_ else {}
    if kind == "series":  # a plain TIFF: each level a reduced-resolution page of its own
        with tifffile.TiffWriter(path) as tw:
            for i, level in enumerate(levels):
                tw.write(level[0], metadata=None, subfiletype=1 if i else 0, **tile, **MB)
        return
    with tifffile.TiffWriter(path, ome=kind == "ome-subifds") as tw:
        extra = (
            {"metadata": {"axes": "ZYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.25}} if kind == "ome-subifds" else {}
        )
        tw.write(levels[0], subifds=len(levels) - 1, **extra, **tile, **MB)
        for level in levels[1:]:
            tw.write(level, subfiletype=1, **tile, **MB)


def strided(arr: np.ndarray, n: int) -> list[np.ndarray]:
    return [arr[..., :: 2**k, :: 2**k] for k in range(n)]


# -- reading pyramids tifffile writes ---------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("kind", "suffix"), KINDS, ids=[k for k, _ in KINDS])
def test_every_level_of_a_tifffile_pyramid_reads_bit_exact(tmp_path: Path, kind: str, suffix: str, dtype: str) -> None:
    arr = random_pixels((3, 70, 52), dtype, seed=DTYPES.index(dtype))
    if kind == "series":
        arr = arr[:1]
    levels = strided(arr, 3)
    path = tmp_path / f"pyramid{suffix}"
    tifffile_pyramid(path, kind, levels)
    with tifffile.TiffFile(path) as tif:
        assert len(tif.series) == 1 and len(tif.series[0].levels) == 3, (kind, [s.shape for s in tif.series])
        from_tifffile = [lv.asarray() for lv in tif.series[0].levels]
    for k, level in enumerate(levels):
        np.testing.assert_array_equal(from_tifffile[k], level.squeeze())
        img = OMEArrow(path, level=k)
        assert img.dtype == np.dtype(dtype) and img.shape == (1, 1, arr.shape[0], *level.shape[1:])
        np.testing.assert_array_equal(img.to_numpy()[0, 0], level)
        lazy = OMEArrow.scan(path, level=k)
        ny, nx = level.shape[1:]
        crop = lazy.tensor_view(z=arr.shape[0] - 1, roi=(nx // 3, ny // 4, nx // 2, ny // 2), layout="YX").to_numpy()
        np.testing.assert_array_equal(crop, level[-1, ny // 4 : ny // 4 + ny // 2, nx // 3 : nx // 3 + nx // 2])


def test_info_lists_the_levels_with_shapes_and_scales(tmp_path: Path) -> None:
    arr = random_pixels((2, 64, 48), "uint16")
    path = tmp_path / "p.ome.tif"
    tifffile_pyramid(path, "ome-subifds", strided(arr, 3))
    info = OMEArrow.scan(path, level=1).info()
    assert info["level"] == 1
    assert [lv["shape"] for lv in info["levels"]] == [[1, 2, 1, 64, 48], [1, 2, 1, 32, 24], [1, 2, 1, 16, 12]]
    assert [(lv["scale"]["X"], lv["scale"]["Y"]) for lv in info["levels"]] == [(0.5, 0.25), (1.0, 0.5), (2.0, 1.0)]
    img = OMEArrow.scan(path, level=2)
    assert (img.meta.physical_size["X"], img.meta.physical_size["Y"]) == (2.0, 1.0)
    assert img.info()["physical_size"]["X"] == 2.0
    assert OMEArrow.scan(path).info()["level"] == 0


def test_a_file_without_levels_lists_one(tmp_path: Path) -> None:
    path = tmp_path / "flat.tif"
    tifffile.imwrite(path, random_pixels((20, 30), "uint8"), **MB)
    info = OMEArrow.scan(path).info()
    assert info["levels"] == [
        {"level": 0, "shape": [1, 1, 1, 20, 30], "scale": {"X": None, "Y": None, "Z": None}}
    ]  # uncalibrated: unknown
    with pytest.raises(SelectionError, match=r"level=1 is out of range: flat.tif has 1 resolution level"):
        OMEArrow.scan(path, level=1)


@pytest.mark.parametrize(
    ("level", "error"),
    [(3, SelectionError), (-1, SelectionError), (1.0, ArgumentError), (True, ArgumentError), ("1", ArgumentError)],
)
def test_bad_levels_are_refused(tmp_path: Path, level: object, error: type) -> None:
    path = tmp_path / "p.ome.tif"
    tifffile_pyramid(path, "ome-subifds", strided(random_pixels((1, 32, 32), "uint8"), 3))
    with pytest.raises(error, match="level"):
        OMEArrow.scan(path, level=level)


def test_a_level_source_pickles_with_its_level(tmp_path: Path) -> None:
    arr = random_pixels((2, 40, 40), "int16")
    path = tmp_path / "p.tif"
    tifffile_pyramid(path, "shaped-subifds", strided(arr, 2))
    src = OMEArrow.scan(path, level=1).source
    again = pickle.loads(pickle.dumps(src))
    assert again.level == 1 and again.meta.sizes == src.meta.sizes
    np.testing.assert_array_equal(OMEArrow(path, level=1).to_numpy()[0, 0], arr[:, ::2, ::2])


# -- writing pyramids ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_written_levels_are_our_downsampling_and_tifffile_reads_them(tmp_path: Path, dtype: str) -> None:
    arr = random_pixels((2, 2, 3, 37, 50), dtype, seed=5)
    path = tmp_path / "w.ome.tiff"
    OMEArrow(arr, "TZCYX").export("ome-tiff", path, levels=4, tile=(16, 16), compression="zlib")
    expected = [arr]
    for _ in range(3):
        expected.append(downsample(expected[-1]))
    assert [e.shape[-2:] for e in expected] == [(37, 50), (19, 25), (10, 13), (5, 7)]
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome and len(tif.series[0].levels) == 4
        for k, level in enumerate(tif.series[0].levels):
            np.testing.assert_array_equal(
                level.asarray(), expected[k].reshape(-1, *expected[k].shape[-2:]).reshape(level.shape)
            )
    for k in range(4):
        np.testing.assert_array_equal(OMEArrow(path, level=k).to_numpy(layout="TZCYX"), expected[k])
    assert verify(path).ok


def test_written_level_scales_follow_the_halving(tmp_path: Path) -> None:
    arr = random_pixels((1, 1, 1, 70, 45), "uint16")
    record = OMEArrow(arr, "TZCYX").export("dict")
    record["pixels_meta"].update(physical_size_x=0.2, physical_size_y=0.3)
    path = tmp_path / "s.ome.tiff"
    OMEArrow(record).export("ome-tiff", path, levels=3)
    scales = [(lv["scale"]["X"], lv["scale"]["Y"]) for lv in OMEArrow.scan(path).info()["levels"]]
    assert np.allclose(scales, [(0.2, 0.3), (0.4, 0.6), (0.8, 1.2)])  # 70 -> 35 -> 18: still 4x


@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 9), st.integers(1, 9)),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=200, deadline=None)
def test_downsample_is_the_rounded_mean_of_each_block(shape: tuple[int, int, int], dtype: str, seed: int) -> None:
    arr = random_pixels(shape, dtype, seed)
    got = downsample(arr)
    ny, nx = -(-shape[1] // 2), -(-shape[2] // 2)
    assert got.dtype == arr.dtype and got.shape == (shape[0], ny, nx)
    for p in range(shape[0]):
        for y in range(ny):
            for x in range(nx):
                block = arr[p, 2 * y : 2 * y + 2, 2 * x : 2 * x + 2]
                block = np.pad(block, ((0, 2 - block.shape[0]), (0, 2 - block.shape[1])), mode="edge")
                if arr.dtype.kind == "f":
                    want = block.astype(np.float64).mean().astype(arr.dtype)
                elif arr.dtype == np.bool_:
                    want = block.sum() >= 2
                else:
                    want = (sum(int(v) for v in block.ravel()) + 2) // 4  # exact, in Python integers
                assert got[p, y, x] == want, (p, y, x, block)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"levels": 0}, "levels=0 is out of range"),
        ({"levels": 8}, "up to 7"),
        ({"levels": 2.0}, "integer"),
        ({"levels": 2, "ome": False}, "needs ome=True"),
    ],
)
def test_bad_levels_options_are_refused_and_write_nothing(tmp_path: Path, options: dict, match: str) -> None:
    path = tmp_path / "x.ome.tiff"
    with pytest.raises(ArgumentError, match=match):
        OMEArrow(random_pixels((40, 33), "uint8")).export("ome-tiff", path, **options)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_pyramid_write_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "x.ome.tiff"
    with pytest.raises(OMEArrowError):
        OMEArrow(random_pixels((40, 33), "uint8")).export("ome-tiff", path, levels=2, compression="no-such-codec")
    assert list(tmp_path.iterdir()) == []


# -- damaged pyramids tifffile wrote (no checksums): metadata flips and truncation -------------------
def test_damaged_tifffile_pyramid_reads_exact_levels_or_fails_clearly(tmp_path: Path) -> None:
    arr = random_pixels((2, 24, 20), "uint16", seed=9)
    levels = strided(arr, 2)
    src = tmp_path / "src.ome.tif"
    tifffile_pyramid(src, "ome-subifds", levels)
    data = src.read_bytes()
    pixels = set()  # a TIFF has no checksum of its pixel bytes, nor of where they lie (the offsets)
    with tifffile.TiffFile(src) as tif:
        for level in tif.series[0].levels:
            for page in level:
                for o, n in zip(page.dataoffsets, page.databytecounts):
                    pixels.update(range(o, o + n))
                for code in (273, 324):  # StripOffsets, TileOffsets: the entry and its values
                    tag = page.aspage().tags.get(code)
                    if tag is not None:
                        pixels.update(range(tag.offset, tag.offset + 12))
                        pixels.update(range(tag.valueoffset, tag.valueoffset + 4 * tag.count))
    mutant = tmp_path / "m.ome.tif"
    metadata = [i for i in range(len(data)) if i not in pixels]
    for at in [*metadata[:: max(1, len(metadata) // 250)], -1]:
        mutated = bytearray(data[:at] if at < 0 else data)
        if at >= 0:
            mutated[at] ^= 1 << (at % 8)
        mutant.write_bytes(bytes(mutated))
        for k, level in enumerate(levels):
            try:
                got = OMEArrow(mutant, level=k).to_numpy(layout="TZCYX")
            except OMEArrowError as exc:
                assert mutant.name in str(exc), exc
                continue
            assert got.shape == (1, 2, 1, *level.shape[1:]) and np.array_equal(got[0, :, 0], level), (at, k)
