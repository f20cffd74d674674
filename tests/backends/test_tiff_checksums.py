"""Checksums of the OME-TIFFs we write: stored in the OME-XML, checked on read and by verify.

Every test damages a real file on disk (flips, truncation, edits of the OME-XML and of the
checksum annotation) and reads it back through the public API: the read returns exactly the
written pixels or raises our error naming the file; never other pixels.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

tifffile = pytest.importorskip("tifffile", reason="needs tifffile (pip install -e backends/tiff)")
pytest.importorskip("ome_arrow_tiff", reason="needs ome-arrow-tiff (pip install -e backends/tiff)")

from ome_arrow_core import OMEArrow, OMEArrowError, verify  # noqa: E402
from ome_arrow_core.cli import main  # noqa: E402
from ome_arrow_core.errors import ChecksumError, DamagedFileError, SchemaError  # noqa: E402
from ome_arrow_tiff.integrity import NAMESPACE  # noqa: E402

#: Layouts of the writer: (name, export options).
LAYOUTS = [
    ("strips", {}),
    ("rows", {"rowsperstrip": 5}),
    ("tiles-zlib", {"tile": (16, 16), "compression": "zlib"}),
    ("pyramid", {"levels": 2, "tile": (16, 16)}),
]


def pixels(shape: tuple[int, ...] = (1, 2, 2, 20, 24), dtype: str = "uint16", seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 60000, shape).astype(dtype)


def write(path: Path, arr: np.ndarray, **options: object) -> Path:
    OMEArrow(arr, "TZCYX").export("ome-tiff", path, **options)
    return path


def segments(path: Path) -> list[tuple[int, int]]:
    """(offset, byte count) of every strip and tile of every page and pyramid level."""
    out = []
    with tifffile.TiffFile(path) as tif:
        for level in tif.series[0].levels:
            for page in level:
                out += list(zip(page.dataoffsets, page.databytecounts))
    return out


def flip(src: Path, dst: Path, at: int, bit: int = 0) -> Path:
    data = bytearray(src.read_bytes())
    data[at] ^= 1 << bit
    dst.write_bytes(bytes(data))
    return dst


def edit_xml(path: Path, edit: object) -> None:
    with tifffile.TiffFile(path) as tif:
        xml = tif.ome_metadata
    new = edit(xml)  # type: ignore[operator]
    assert new != xml, "the edit changed nothing"
    tifffile.tiffcomment(path, new.encode())


def read_every_way(path: Path, levels: int = 1) -> list[np.ndarray]:
    """Every level eagerly, and a crop of one plane of level 0 lazily."""
    out = [OMEArrow(path, level=level).to_numpy() for level in range(levels)]
    lazy = OMEArrow.scan(path)
    ny, nx = lazy.sizes["Y"], lazy.sizes["X"]
    out.append(lazy.tensor_view(t=0, z=1, c=0, roi=(1, 1, nx // 2, ny // 2)).to_numpy())
    return out


def offsets(size: int, most: int = 500) -> range:
    """Every byte offset of a file, or evenly spread ones (OME_ARROW_CORE_FUZZ_CASES > 0: every byte)."""
    if int(os.environ.get("OME_ARROW_CORE_FUZZ_CASES", "0") or 0):
        return range(size)
    step = max(1, -(-size // most))
    return range(step // 2, size, step)


# -- what we write ------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "options"), LAYOUTS, ids=[n for n, _ in LAYOUTS])
def test_written_files_carry_checksums_that_match(tmp_path: Path, name: str, options: dict) -> None:
    arr = pixels()
    path = write(tmp_path / f"{name}.ome.tiff", arr, **options)
    img = OMEArrow.scan(path)
    info = img.info()
    assert info["checksums"] == "xxh3_64" and info["verified"] and img.source.has_checksums
    np.testing.assert_array_equal(img.to_numpy(layout="TZCYX"), arr)
    with tifffile.TiffFile(path) as tif:
        assert NAMESPACE in tif.ome_metadata
        np.testing.assert_array_equal(tif.series[0].asarray(), arr.reshape(arr.shape[1:]))  # tifffile reads it as ever
    report = verify(path)
    assert report.ok and report.kind == "tiff" and report.checksummed == report.chunks > 0, report.damage


# -- flipped pixel bytes ------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "options"), LAYOUTS, ids=[n for n, _ in LAYOUTS])
def test_every_flipped_pixel_byte_is_refused(tmp_path: Path, name: str, options: dict) -> None:
    arr = pixels((1, 2, 2, 10, 12))
    src = write(tmp_path / "src.ome.tiff", arr, **options)
    levels = 2 if "levels" in options else 1
    want = [OMEArrow(src, level=lv).to_numpy() for lv in range(levels)]
    mutant = tmp_path / "m.ome.tiff"
    positions = [o + k for o, n in segments(src) for k in range(n)]
    assert len(positions) >= 960  # 4 planes of 10x12 uint16 (tiles: padded to 16x16)
    positions = [positions[i] for i in offsets(len(positions), 300)]
    caught = 0
    for i, at in enumerate(positions):
        flip(src, mutant, at, bit=i % 8)
        try:
            got = [OMEArrow(mutant, level=lv).to_numpy() for lv in range(levels)]
        except DamagedFileError as exc:  # ChecksumError, or a compressed segment that no longer decodes
            assert str(mutant) in str(exc)
            caught += 1
            continue
        # only a compressed stream can hold a bit that changes no pixel (e.g. zlib's header level bits)
        assert "compression" in options and all(np.array_equal(g, w) for g, w in zip(got, want)), (
            f"a flip at byte {at} was served as pixels"
        )
    assert caught >= len(positions) * (0.9 if "compression" in options else 1)


def test_the_error_names_file_plane_and_segment_and_how_to_skip(tmp_path: Path) -> None:
    arr = pixels()
    src = write(tmp_path / "src.ome.tiff", arr, rowsperstrip=5)
    offset, _ = segments(src)[4 + 1]  # page 1 (t=0 z=0 c=1), strip 1
    mutant = flip(src, tmp_path / "m.ome.tiff", offset + 3)
    with pytest.raises(ChecksumError) as err:
        OMEArrow(mutant).to_numpy()
    text = str(err.value)
    assert str(mutant) in text and "strip 1 of plane t=0 z=0 c=1 (page 1)" in text
    assert "verify=False" in text and "OME_ARROW_CORE_VERIFY=0" in text


def test_a_crop_checks_only_the_strips_and_tiles_it_reads(tmp_path: Path) -> None:
    arr = pixels((1, 1, 1, 64, 64))
    src = write(tmp_path / "src.ome.tiff", arr, tile=(16, 16))
    offset, _ = segments(src)[0]  # tile (0, 0)
    mutant = flip(src, tmp_path / "m.ome.tiff", offset + 5)
    lazy = OMEArrow.scan(mutant)
    np.testing.assert_array_equal(
        lazy.tensor_view(roi=(16, 16, 40, 40), layout="YX").to_numpy(), arr[0, 0, 0, 16:56, 16:56]
    )
    assert lazy.source.segments_read == 9
    with pytest.raises(ChecksumError, match=r"tile 0 of plane t=0 z=0 c=0"):
        lazy.tensor_view(roi=(10, 10, 8, 8)).to_numpy()


def test_a_crop_of_a_checked_uncompressed_plane_reads_whole_strips(tmp_path: Path) -> None:
    arr = pixels((1, 1, 1, 40, 30))
    src = write(tmp_path / "src.ome.tiff", arr, rowsperstrip=10)
    offset, count = segments(src)[3]  # the last strip, rows 30..39
    mutant = flip(src, tmp_path / "m.ome.tiff", offset + count - 1)
    lazy = OMEArrow.scan(mutant)
    np.testing.assert_array_equal(lazy.tensor_view(roi=(0, 12, 30, 15), layout="YX").to_numpy(), arr[0, 0, 0, 12:27])
    assert lazy.source.segments_read == 2
    with pytest.raises(ChecksumError, match="strip 3"):
        lazy.tensor_view(roi=(0, 39, 1, 1)).to_numpy()  # one pixel of the damaged strip: its checksum is checked


def test_verify_false_and_the_environment_skip_the_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arr = pixels()
    src = write(tmp_path / "src.ome.tiff", arr)
    offset, _ = segments(src)[0]
    mutant = flip(src, tmp_path / "m.ome.tiff", offset, bit=7)
    served = OMEArrow(mutant, verify=False).to_numpy(layout="TZCYX")  # the caller's choice: the file's bytes, unchecked
    assert (served != arr).sum() == 1
    assert not OMEArrow.scan(mutant, verify=False).info()["verified"]
    monkeypatch.setenv("OME_ARROW_CORE_VERIFY", "0")
    np.testing.assert_array_equal(OMEArrow(mutant).to_numpy(layout="TZCYX"), served)
    assert verify(mutant).damage, "verify checks whatever the environment says"
    monkeypatch.setenv("OME_ARROW_CORE_VERIFY", "1")
    with pytest.raises(ChecksumError):
        OMEArrow(mutant).to_numpy()


def test_cli_verify_reports_the_damaged_plane_and_level(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arr = pixels((1, 1, 2, 32, 32))
    src = write(tmp_path / "src.ome.tiff", arr, levels=3)
    assert main(["verify", str(src)]) == 0
    out = capsys.readouterr().out
    assert "6 chunk(s) read, 6 matched their checksum" in out  # 2 planes x 3 levels
    level2 = segments(src)[-1][0]  # the last plane of level 2
    mutant = flip(src, tmp_path / "m.ome.tiff", level2 + 1)
    assert main(["verify", str(mutant)]) == 1
    out = capsys.readouterr().out
    assert "[level 2 plane t=0 z=0 c=1]" in out and "ChecksumError" in out and "DAMAGED" in out
    np.testing.assert_array_equal(OMEArrow(mutant, level=1).to_numpy(layout="TZCYX").shape, (1, 1, 2, 8 * 2, 8 * 2))
    with pytest.raises(ChecksumError, match="of pyramid level 2"):
        OMEArrow(mutant, level=2).to_numpy()


# -- flips and truncation anywhere ---------------------------------------------------------------
@pytest.mark.parametrize(("name", "options"), [LAYOUTS[0], LAYOUTS[3]], ids=["strips", "pyramid"])
def test_a_flip_of_any_byte_reads_the_pixels_or_fails_clearly(tmp_path: Path, name: str, options: dict) -> None:
    arr = pixels((1, 2, 2, 8, 12))
    src = write(tmp_path / "src.ome.tiff", arr, **options)
    levels = 2 if "levels" in options else 1
    want = read_every_way(src, levels)
    mutant = tmp_path / "m.ome.tiff"
    size = src.stat().st_size
    outcomes = {"pixels": 0, "error": 0}
    for at in offsets(size, 300 * (3 - levels)):
        flip(src, mutant, at, bit=at % 8)
        try:
            got = read_every_way(mutant, levels)
        except OMEArrowError as exc:
            assert str(mutant) in str(exc) or mutant.name in str(exc), f"byte {at}: {exc}"
            outcomes["error"] += 1
            continue
        for g, w in zip(got, want, strict=True):
            assert g.dtype == w.dtype and np.array_equal(g, w), f"a flip at byte {at} of {size} read as other pixels"
        outcomes["pixels"] += 1
    assert outcomes["error"] > 0 and outcomes["pixels"] > 0  # (metadata text such as the name reads as pixels)


@pytest.mark.parametrize(("name", "options"), [LAYOUTS[1], LAYOUTS[3]], ids=["rows", "pyramid"])
def test_a_truncated_file_is_refused(tmp_path: Path, name: str, options: dict) -> None:
    arr = pixels((1, 2, 2, 8, 12))
    src = write(tmp_path / "src.ome.tiff", arr, **options)
    levels = 2 if "levels" in options else 1
    data = src.read_bytes()
    mutant = tmp_path / "m.ome.tiff"
    for at in offsets(len(data), 300):
        mutant.write_bytes(data[:at])
        with pytest.raises(OMEArrowError) as err:
            read_every_way(mutant, levels)
        assert mutant.name in str(err.value), at


# -- lies in the OME-XML and in the annotation itself ---------------------------------------------
def _entry(key: str, value: str) -> object:
    return lambda xml: re.sub(rf'(<M K="{key}">)[^<]*(</M>)', rf"\g<1>{value}\g<2>", xml)


LIES = {
    "a checksum changed": (_entry("level 0 plane 1", "0123456789abcdef"), ChecksumError, "do not match"),
    "a checksum not hex": (_entry("level 0 plane 1", "xyz"), DamagedFileError, "annotation .* is damaged"),
    "a checksum too short": (_entry("level 0 plane 1", "abc"), DamagedFileError, "annotation .* is damaged"),
    "a plane dropped": (
        lambda x: re.sub(r'<M K="level 0 plane 2">[^<]*</M>', "", x),
        DamagedFileError,
        r"lacks plane\(s\) \[2\]",
    ),
    "a strip too many": (
        lambda x: re.sub(r'(<M K="level 0 plane 0">)([^<]*)', r"\1\2 \2", x),
        DamagedFileError,
        "lists 2",
    ),
    "sizes": (_entry("level 0", "T=1 Z=4 C=1 Y=20 X=24"), DamagedFileError, "records level 0 as"),
    "sizes garbled": (_entry("level 0", "T=1 Z=two"), DamagedFileError, "annotation .* is damaged"),
    "dtype": (_entry("dtype", "int16"), DamagedFileError, "records level 0 as .* int16"),
    "algorithm unknown": (_entry("algorithm", "md5"), SchemaError, "checksum algorithm 'md5'"),
    "algorithm dropped": (
        lambda x: re.sub(r'<M K="algorithm">[^<]*</M>', "", x),
        DamagedFileError,
        "'algorithm' is missing",
    ),
    "DimensionOrder": (
        lambda x: x.replace('DimensionOrder="XYCZT"', 'DimensionOrder="XYZCT"'),
        ChecksumError,
        "do not match",
    ),
    "TiffData IFD": (
        lambda x: re.sub(
            r'<TiffData IFD="0" PlaneCount="4"/>',
            '<TiffData IFD="1" PlaneCount="3"/><TiffData IFD="0" FirstZ="1" FirstC="1" PlaneCount="1"/>',
            x,
        ),
        DamagedFileError,
        "x.ome.tiff",
    ),
}


@pytest.mark.parametrize("lie", list(LIES))
def test_a_lie_in_the_ome_xml_or_the_annotation_is_refused(tmp_path: Path, lie: str) -> None:
    edit, error, message = LIES[lie]
    arr = pixels()
    path = write(tmp_path / "x.ome.tiff", arr)
    edit_xml(path, edit)
    with pytest.raises(error, match=message) as err:
        OMEArrow(path).to_numpy()
    assert str(path) in str(err.value)
    np.testing.assert_array_equal(OMEArrow(path, verify=False).to_numpy().size, arr.size)
    assert not verify(path).ok


def test_a_missing_level_entry_is_refused_for_that_level(tmp_path: Path) -> None:
    arr = pixels()
    path = write(tmp_path / "x.ome.tiff", arr, levels=2)
    edit_xml(path, lambda x: re.sub(r'<M K="level 1">[^<]*</M>', "", x))
    np.testing.assert_array_equal(OMEArrow(path).to_numpy(layout="TZCYX"), arr)
    with pytest.raises(DamagedFileError, match="no entry for pyramid level 1"):
        OMEArrow(path, level=1)


def test_an_annotation_copied_into_another_file_does_not_apply(tmp_path: Path) -> None:
    """A program that rewrites our file keeping the OME-XML (new UUID) may change every strip: not damage."""
    arr = pixels()
    path = write(tmp_path / "x.ome.tiff", arr)
    with tifffile.TiffFile(path) as tif:
        xml = tif.ome_metadata
    other = tmp_path / "rewritten.ome.tiff"  # recompressed in other strips, our annotation kept, a new UUID
    tifffile.imwrite(
        other,
        arr[0],
        description=re.sub(r'UUID="[^"]*"', 'UUID="urn:uuid:0000"', xml, count=1).encode(),
        compression="zlib",
        rowsperstrip=3,
        photometric="minisblack",
        metadata=None,
    )
    img = OMEArrow.scan(other)
    assert not img.source.has_checksums and not img.info()["verified"]
    np.testing.assert_array_equal(img.to_numpy(layout="TZCYX"), arr)
    assert "without checksums" in "\n".join(verify(other).lines())


def test_files_without_checksums_read_as_before(tmp_path: Path) -> None:
    arr = pixels()
    path = tmp_path / "tifffile.ome.tif"
    tifffile.imwrite(path, arr[0], ome=True, metadata={"axes": "ZCYX"}, photometric="minisblack")
    img = OMEArrow.scan(path)
    assert img.info()["checksums"] is None and not img.source.has_checksums
    np.testing.assert_array_equal(img.to_numpy(layout="TZCYX"), arr)


def test_our_file_without_its_annotation_or_its_ome_xml_is_refused(tmp_path: Path) -> None:
    """Our Software tag says the file is an OME-TIFF with checksums: losing either is damage, not another image."""
    arr = pixels()
    ours = write(tmp_path / "ours.ome.tiff", arr)
    with tifffile.TiffFile(ours) as tif:
        assert tif.pages.first.software == "ome-arrow-core"
    dropped = tmp_path / "dropped.ome.tiff"
    dropped.write_bytes(ours.read_bytes())
    edit_xml(dropped, lambda x: re.sub(r"<StructuredAnnotations>.*</StructuredAnnotations>", "", x))
    with pytest.raises(DamagedFileError, match="holds no checksum annotation"):
        OMEArrow(dropped)
    np.testing.assert_array_equal(OMEArrow(dropped, verify=False).to_numpy(layout="TZCYX"), arr)
    hidden = tmp_path / "hidden.ome.tiff"  # the ImageDescription tag's code flipped: 270 -> 271 (Make)
    data = bytearray(ours.read_bytes())
    at = data.index((270).to_bytes(2, "little") + (2).to_bytes(2, "little"), 8)
    data[at] ^= 1
    hidden.write_bytes(bytes(data))
    with tifffile.TiffFile(hidden) as tif:
        assert not tif.is_ome and tif.series[0].kind != "ome"  # tifffile now sees 4 plain pages
    with pytest.raises(DamagedFileError, match="no usable OME-XML"):
        OMEArrow(hidden, verify=False)


# -- independent readers --------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:As of version 0.4.0:DeprecationWarning")  # bioio-ome-tiff passes ome-types' parser=
def test_independent_readers_open_what_we_write(tmp_path: Path) -> None:
    ome_types = pytest.importorskip("ome_types")
    bioio_ome_tiff = pytest.importorskip("bioio_ome_tiff")
    from bioio import BioImage

    arr = pixels((2, 3, 2, 40, 36))
    path = write(tmp_path / "x.ome.tiff", arr, levels=3, tile=(16, 16), compression="zlib")
    with tifffile.TiffFile(path) as tif:
        ome = ome_types.from_xml(tif.ome_metadata, validate=True)
        series = tif.series[0]
        assert len(series.levels) == 3
        for level, data in enumerate(series.levels):
            np.testing.assert_array_equal(
                data.asarray(), OMEArrow(path, level=level).to_numpy(layout="TZCYX")
            )  # axes TZCYX
    maps = ome.structured_annotations.map_annotations
    assert [m.namespace for m in maps] == [NAMESPACE]
    bio = BioImage(path, reader=bioio_ome_tiff.Reader)
    assert bio.dims.order == "TCZYX"
    np.testing.assert_array_equal(bio.data, arr.transpose(0, 2, 1, 3, 4))
