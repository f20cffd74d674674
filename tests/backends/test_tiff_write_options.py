"""The TIFF writer's options against the real tifffile and imagecodecs: lossy codecs refused after reading the
written pixels back (the target kept), ``lossy=True``, and options checked before anything is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

tifffile = pytest.importorskip("tifffile", reason="needs tifffile (pip install -e backends/tiff)")
pytest.importorskip("ome_arrow_tiff", reason="needs ome-arrow-tiff (pip install -e backends/tiff)")

from ome_arrow_core import OMEArrow  # noqa: E402
from ome_arrow_core.errors import ArgumentError  # noqa: E402

#: (how, extra options, file name): an OME-TIFF and a plain TIFF.
KINDS = [("ome-tiff", {}, "x.ome.tiff"), ("tiff", {"ome": False}, "x.tif")]


def noisy(dtype: str = "uint8") -> np.ndarray:
    high = 256 if dtype == "uint8" else 60000
    return np.random.default_rng(0).integers(0, high, (1, 1, 2, 32, 40)).astype(dtype)


@pytest.mark.parametrize(("how", "extra", "name"), KINDS)
def test_a_lossy_codec_is_refused_and_the_old_file_kept(tmp_path: Path, how: str, extra: dict, name: str) -> None:
    pytest.importorskip("imagecodecs", reason="needs imagecodecs for JPEG")
    out = tmp_path / name
    old = np.full((1, 1, 1, 8, 8), 7, np.uint8)
    OMEArrow(old).export(how, out, **extra)
    before = out.read_bytes()
    with pytest.raises(ArgumentError, match=r"compression='jpeg' changed pixel values .*by up to") as info:
        OMEArrow(noisy()).export(how, out, compression="jpeg", **extra)
    assert name in str(info.value) and "'zlib'" in str(info.value) and "lossy=True" in str(info.value)
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [name]
    np.testing.assert_array_equal(OMEArrow(out).to_numpy(), old)


@pytest.mark.parametrize(("how", "extra", "name"), KINDS)
def test_lossy_true_writes_the_changed_pixels(tmp_path: Path, how: str, extra: dict, name: str) -> None:
    pytest.importorskip("imagecodecs", reason="needs imagecodecs for JPEG")
    arr, out = noisy(), tmp_path / name
    OMEArrow(arr).export(how, out, compression="jpeg", lossy=True, **extra)
    back = OMEArrow.scan(out)
    got = back.to_numpy()
    assert got.shape == arr.shape and not np.array_equal(got, arr)
    assert np.abs(got.astype(int) - arr.astype(int)).max() <= 32
    assert back.info()["verified"] == (how == "ome-tiff")  # an OME-TIFF's checksums are of what it holds


@pytest.mark.parametrize(
    "options",
    [
        {"compression": "zlib", "predictor": True},
        {"compression": "lzma"},
        {"compression": "zstd", "chunk_shape": (16, 16)},
        {"compression": "jpegxl", "compressionargs": {"lossless": True}},
    ],
)
def test_lossless_codecs_pass_the_read_back(tmp_path: Path, options: dict[str, Any]) -> None:
    if options["compression"] in ("zstd", "jpegxl"):
        pytest.importorskip("imagecodecs", reason="needs imagecodecs for this compression")
    arr, out = noisy(), tmp_path / "x.ome.tiff"
    OMEArrow(arr).export("ome-tiff", out, levels=2, **options)
    np.testing.assert_array_equal(OMEArrow(out).to_numpy(), arr)


def test_chunk_shape_is_the_tile(tmp_path: Path) -> None:
    arr, out = noisy(), tmp_path / "x.ome.tiff"
    OMEArrow(arr).export("ome-tiff", out, chunk_shape=(16, 32))
    info = OMEArrow.scan(out).info()
    assert info["tiled"] and info["tile_shape"] == [16, 32]
    OMEArrow(arr).export("ome-tiff", out, chunk_shape=None)
    assert not OMEArrow.scan(out).info()["tiled"]
    np.testing.assert_array_equal(OMEArrow(out).to_numpy(), arr)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"metadata": {"axes": "YX"}}, r"metadata= is set by the writer itself"),
        ({"photometric": "rgb"}, r"photometric= is set by the writer itself"),
        ({"software": "me"}, r"software= is set by the writer itself"),
        ({"mode": "overwrite"}, r"no option 'mode'; accepted options: ome, tile, chunk_shape, compression"),
        ({"overwrite": True}, r"no option 'overwrite'.*always replaced"),
        ({"predictor": True}, r"predictor=True needs a compression.*compression='zlib'"),
        ({"compression": ("jpeg", 90)}, r"compression=\('jpeg', 90\) is invalid.*compressionargs"),
        ({"compression": "bogus"}, r"compression='bogus' is invalid.*'zlib'"),
        ({"chunk_shape": (32,)}, r"chunk_shape=\(32,\) is invalid.*multiples of 16"),
        ({"tile": (16, 16), "chunk_shape": (16, 16)}, r"tile= and chunk_shape= are the same"),
        ({"byteorder": "big"}, r"byteorder='big' is invalid.*'<' or '>'"),
        ({"lossy": "yes"}, r"lossy='yes' is invalid.*True or False"),
    ],
)
@pytest.mark.parametrize(("how", "extra", "name"), KINDS)
def test_wrong_options_are_refused_before_writing(
    tmp_path: Path, how: str, extra: dict, name: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ArgumentError, match=message):
        OMEArrow(noisy()).export(how, tmp_path / name, **extra, **options)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("how", "extra", "name"), KINDS)
def test_a_codec_that_refuses_the_dtype_names_the_file_and_option(
    tmp_path: Path, how: str, extra: dict, name: str
) -> None:
    pytest.importorskip("imagecodecs", reason="needs imagecodecs for JPEG")
    with pytest.raises(ArgumentError, match=rf"{name}: tifffile could not write .* compression='jpeg' \(Jpeg8Error"):
        OMEArrow(noisy("uint16")).export(how, tmp_path / name, compression="jpeg", **extra)
    assert list(tmp_path.iterdir()) == []
