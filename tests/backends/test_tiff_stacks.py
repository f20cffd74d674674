"""Stacks of TIFF planes written by tifffile (an independent writer) and of our OME-TIFFs: pixels, lazy
reads, writers, and damaged members named (our OME-TIFFs carry checksums; plain TIFF pixels do not)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

tifffile = pytest.importorskip("tifffile", reason="needs tifffile (pip install -e backends/tiff)")
pytest.importorskip("ome_arrow_tiff", reason="needs ome-arrow-tiff (pip install -e backends/tiff)")

from ome_arrow_core import OMEArrow, write_dataset  # noqa: E402
from ome_arrow_core.errors import ChecksumError, DamagedFileError, SchemaError  # noqa: E402
from ome_arrow_core.stacks import StackSource  # noqa: E402
from ome_arrow_core.testing import selections_for  # noqa: E402

DTYPES = ["uint8", "uint16", "int32", "float32", "float64"]


def tiff_planes(folder: Path, dtype: str, n_c: int = 2, n_z: int = 3, compression: str | None = None) -> np.ndarray:
    """Plain TIFF planes ``E99_C<111,222,...>_ZS<000-...>.tif`` written by tifffile; returns their (C, Z, Y, X)."""
    rng = np.random.default_rng(7)
    truth = (rng.standard_normal((n_c, n_z, 12, 10)) * 1000).astype(dtype)
    for c in range(n_c):
        for z in range(n_z):
            tifffile.imwrite(folder / f"E99_C{111 * (c + 1)}_ZS{z:03d}.tif", truth[c, z], compression=compression)
    return truth


@pytest.mark.parametrize("dtype", DTYPES)
def test_pattern_of_tifffile_planes_is_bit_exact(tmp_path: Path, dtype: str) -> None:
    truth = tiff_planes(tmp_path, dtype)
    img = OMEArrow.scan(str(tmp_path / "E99_C<111,222>_ZS<000-002>.tif"))
    assert img.shape == (1, 2, 3, 12, 10) and img.dtype == np.dtype(dtype)
    source = img.source
    assert isinstance(source, StackSource) and source.files_opened == 1 and source.files_read == 0
    want = truth.transpose(1, 0, 2, 3)[None]  # TZCYX
    for name, sel in selections_for(source.meta.sizes):
        got = source.read(sel)
        assert got.tobytes() == np.ascontiguousarray(sel.apply(want)).tobytes(), name


def test_a_plane_opens_and_reads_one_tiff(tmp_path: Path) -> None:
    tiff_planes(tmp_path, "uint16", n_c=1, n_z=12)
    img = OMEArrow.scan(str(tmp_path / "E99_C111_ZS*.tif"))
    img.tensor_view(z=10).to_numpy()
    source = img.source
    assert isinstance(source, StackSource)
    assert [p.name for p in source.opened] == ["E99_C111_ZS000.tif", "E99_C111_ZS010.tif"]
    assert source.files_read == 1


def test_stack_exports_to_ome_tiff_and_dataset(tmp_path: Path) -> None:
    truth = tiff_planes(tmp_path, "uint16")
    img = OMEArrow.scan(str(tmp_path / "E99_C<111,222>_ZS<000-002>.tif"))
    img.export("ome-tiff", tmp_path / "out.ome.tiff")
    write_dataset([img], tmp_path / "out.ome.parquet")
    want = truth[None]  # TCZYX
    for out in ("out.ome.tiff", "out.ome.parquet"):
        np.testing.assert_array_equal(OMEArrow(tmp_path / out).to_numpy(), want)


def test_our_ome_tiffs_stack_and_a_flipped_pixel_is_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    arrs = [rng.integers(0, 2**16, (16, 16)).astype(np.uint16) for _ in range(3)]
    files = [tmp_path / f"t{i}.ome.tiff" for i in range(3)]
    for a, f in zip(arrs, files):
        OMEArrow(a).export("ome-tiff", f)
    img = OMEArrow.scan(files, dim_order="T")
    np.testing.assert_array_equal(img.tensor_view(layout="TYX").to_numpy(), np.stack(arrs))
    data = bytearray(files[2].read_bytes())
    at = data.find(arrs[2].tobytes()[:32])
    assert at > 0
    data[at + 5] ^= 0x10
    files[2].write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=r"t2\.ome\.tiff"):
        img.tensor_view(t=2).to_numpy()
    np.testing.assert_array_equal(img.tensor_view(t=1, layout="YX").to_numpy(), arrs[1])


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_truncated_tiff_member_is_named(tmp_path: Path, compression: str | None) -> None:
    tiff_planes(tmp_path, "uint16", n_c=1, n_z=4, compression=compression)
    img = OMEArrow.scan(str(tmp_path / "E99_C111_ZS*.tif"))
    member = tmp_path / "E99_C111_ZS002.tif"
    data = member.read_bytes()
    member.write_bytes(data[: len(data) // 2])
    with pytest.raises(DamagedFileError, match=r"E99_C111_ZS002\.tif"):
        img.to_numpy()


def test_flipped_compressed_tiff_member_is_refused(tmp_path: Path) -> None:
    """zlib's own checksum catches a flipped byte in a deflate-compressed strip."""
    tiff_planes(tmp_path, "uint16", n_c=1, n_z=2, compression="zlib")
    img = OMEArrow.scan(str(tmp_path / "E99_C111_ZS*.tif"))
    member = tmp_path / "E99_C111_ZS001.tif"
    with tifffile.TiffFile(member) as tif:
        page = tif.pages[0]
        offset, count = page.dataoffsets[0], page.databytecounts[0]
    data = bytearray(member.read_bytes())
    data[offset + count // 2] ^= 0xFF
    member.write_bytes(bytes(data))
    with pytest.raises(DamagedFileError, match=r"E99_C111_ZS001\.tif"):
        img.tensor_view(z=1).to_numpy()


def test_tiff_member_replaced_by_another_shape(tmp_path: Path) -> None:
    tiff_planes(tmp_path, "uint16", n_c=1, n_z=3)
    img = OMEArrow.scan(str(tmp_path / "E99_C111_ZS*.tif"))
    img.to_numpy()
    tifffile.imwrite(tmp_path / "E99_C111_ZS001.tif", np.zeros((12, 11), np.uint16))
    with pytest.raises(SchemaError, match=r"E99_C111_ZS001\.tif \(Z=1 .*\(1, 1, 1, 12, 11\)"):
        img.to_numpy()
