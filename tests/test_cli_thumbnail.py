"""``ome-arrow-core thumbnail``: real PNGs from files and datasets, safe outputs, damaged inputs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from png_support import decode_png

from ome_arrow_core import OMEArrow, write_dataset
from ome_arrow_core.cli import main

RED, GREEN = 0xFF0000FF, 0x00FF00FF


def two_colour_tiff(path: Path, **options: object) -> np.ndarray:
    """A 2-channel OME-TIFF (red, green) with a Z stack; returns its CZYX pixels."""
    arr = np.zeros((2, 3, 64, 64), np.uint16)
    arr[0, 1, :32] = 900  # red: top half, only in plane z=1
    arr[1, 2, 32:] = 700  # green: bottom half, only in plane z=2
    record = OMEArrow(arr, "CZYX").export("dict")
    for ch, rgba in zip(record["pixels_meta"]["channels"], (RED, GREEN)):
        ch["color_rgba"] = rgba
    OMEArrow(record).export("ome-tiff", path, **options)
    return arr


def test_thumbnail_of_a_tiff_shows_both_channels_projected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ome_arrow_tiff")
    src = tmp_path / "a.ome.tif"
    two_colour_tiff(src)
    out = tmp_path / "a.png"
    assert main(["thumbnail", str(src), "-o", str(out), "--size", "32"]) == 0
    assert "wrote" in capsys.readouterr().out
    pic = decode_png(out)
    assert pic.shape == (32, 32, 3) and pic.any()
    assert (pic[4, 4] == [255, 0, 0]).all() and (pic[28, 4] == [0, 255, 0]).all()


def test_the_smallest_sufficient_pyramid_level_is_read(tmp_path: Path) -> None:
    pytest.importorskip("ome_arrow_tiff")
    src = tmp_path / "p.ome.tif"
    rng = np.random.default_rng(0)
    OMEArrow(rng.integers(0, 4000, (64, 64), dtype=np.uint16)).export("ome-tiff", src, levels=3)
    out = tmp_path / "p.png"
    assert main(["thumbnail", str(src), "-o", str(out), "--size", "16", "-q"]) == 0
    level2 = OMEArrow.scan(src, level=2)
    assert level2.sizes["Y"] == 16
    np.testing.assert_array_equal(decode_png(out), level2.thumbnail(16))
    assert not np.array_equal(decode_png(out), OMEArrow.scan(src).thumbnail(16))  # not a strided level 0


def test_dataset_grid_row_and_image(tmp_path: Path) -> None:
    arrs = [np.full((1, 20, 20), 10 * (i + 1), np.uint8) for i in range(3)]
    for i, a in enumerate(arrs):
        a[0, : 5 * (i + 1)] = 250
    ds = write_dataset(
        arrs,
        tmp_path / "d.ome.parquet",
        dim_order="CYX",
        progress=False,
        image_ids=["x", "y", "z"],
        metadata=pa.table({"well": ["A1", "A2", "A3"]}),
    )
    out = tmp_path / "g.png"
    assert main(["thumbnail", str(ds), "-o", str(out), "--size", "20", "-q"]) == 0
    assert decode_png(out).shape == (4 + 24, 4 + 3 * 24, 3)
    assert main(["thumbnail", str(ds), "-o", str(out), "--image", "y", "-q"]) == 0
    by_id = decode_png(out)
    assert main(["thumbnail", str(ds), "-o", str(out), "--row", "1", "-q"]) == 0
    np.testing.assert_array_equal(decode_png(out), by_id)
    np.testing.assert_array_equal(by_id, OMEArrow.scan(ds, image_id="y").thumbnail())
    assert (by_id[:10] == 255).all() and (by_id[10:] == 0).all()


def test_an_existing_non_png_is_refused_unless_forced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "a.npy.ome.parquet"
    OMEArrow(np.eye(8, dtype=np.uint8)).export("parquet", src)
    for name in ("th.jpg", "th.tiff", "th"):  # PNG bytes under another name: refused, forced or not
        assert main(["thumbnail", str(src), "-o", str(tmp_path / name), "--force"]) == 1
        assert "the thumbnail is a PNG image; name the output .png" in capsys.readouterr().err
        assert not (tmp_path / name).exists()
    out = tmp_path / "notes.png"
    out.write_text("keep me")
    assert main(["thumbnail", str(src), "-o", str(out)]) == 1
    assert "not a PNG" in capsys.readouterr().err and out.read_text() == "keep me"
    assert main(["thumbnail", str(src), "-o", str(out), "--force", "-q"]) == 0
    assert decode_png(out).shape == (8, 8, 3)
    old = out.read_bytes()
    assert main(["thumbnail", str(src), "-o", str(out), "--size", "4", "-q"]) == 0  # a PNG is replaced
    assert out.read_bytes() != old and decode_png(out).shape == (4, 4, 3)
    (tmp_path / "dir.png").mkdir()
    assert main(["thumbnail", str(src), "-o", str(tmp_path / "dir.png"), "--force"]) == 1
    assert "directory" in capsys.readouterr().err


def test_a_damaged_input_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arr = np.arange(4 * 32 * 32, dtype=np.uint16).reshape(4, 32, 32)
    src = write_dataset([arr], tmp_path / "d.ome.parquet", dim_order="ZYX", chunk_shape=(32, 32), progress=False)
    victim = src / "chunks.parquet"
    data = bytearray(victim.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 64] = bytes(b ^ 0xA5 for b in data[mid : mid + 64])
    victim.write_bytes(bytes(data))
    out = tmp_path / "out.png"
    assert main(["thumbnail", str(src), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err
    assert not out.exists() and sorted(os.listdir(tmp_path)) == ["d.ome.parquet"]
    out.write_bytes(b"\x89PNG\r\n\x1a\nold")
    assert main(["thumbnail", str(src), "-o", str(out)]) == 1
    assert out.read_bytes() == b"\x89PNG\r\n\x1a\nold"  # the old PNG is untouched


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "one.ome.tif"
    pytest.importorskip("ome_arrow_tiff")
    OMEArrow(np.zeros((4, 4), np.uint8)).export("ome-tiff", src)
    with pytest.raises(SystemExit) as exc:
        main(["thumbnail", str(src), "-o", str(tmp_path / "x.png"), "--size", "0"])
    assert exc.value.code == 2
    assert main(["thumbnail", str(src), "-o", str(tmp_path / "x.png"), "--image", "a"]) == 1
    assert "--image" in capsys.readouterr().err
    assert main(["thumbnail", str(src), "-o", str(tmp_path / "x.png"), "--t", "3"]) == 1
    assert "t=3" in capsys.readouterr().err and not (tmp_path / "x.png").exists()


def test_a_grid_with_an_unreadable_image_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ome_arrow_tiff")
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(3):
        OMEArrow(np.full((6, 6), i, np.uint8)).export("ome-tiff", folder / f"im{i}.ome.tif")
    victim = folder / "im1.ome.tif"
    victim.write_bytes(victim.read_bytes()[:60])
    out = tmp_path / "grid.png"
    assert main(["thumbnail", str(folder), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "im1.ome.tif" in err and "Traceback" not in err and not out.exists()
    assert main(["thumbnail", str(folder), "-o", str(out), "--row", "2", "-q"]) == 0  # the others still open
