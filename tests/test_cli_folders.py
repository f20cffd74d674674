"""``ome-arrow-core convert FOLDER -o OUT``: a folder of image files converts as the dataset scan of it reads it
(every image of every file), as ``info FOLDER`` and ``OMEArrowDataset.scan(FOLDER)`` take it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ome_arrow_core import OMEArrow, OMEArrowDataset
from ome_arrow_core.cli import main


def test_a_folder_of_image_files_converts_to_a_dataset_of_them(tmp_path: Path) -> None:
    pytest.importorskip("ome_arrow_tiff", reason="needs ome-arrow-tiff (pip install -e backends/tiff)")
    folder = tmp_path / "plate"
    folder.mkdir()
    rng = np.random.default_rng(0)
    arrays = {name: rng.integers(0, 4096, (1, 2, 3, 16, 20), dtype=np.uint16) for name in ("a", "b", "c")}
    for name, a in arrays.items():
        OMEArrow(a, "TCZYX").export("ome-tiff", folder / f"{name}.ome.tif")
    out = tmp_path / "plate.ome.parquet"
    assert main(["convert", str(folder), "-o", str(out), "-q"]) == 0
    got = OMEArrowDataset.scan(out)
    scanned = OMEArrowDataset.scan(folder)
    assert len(got) == len(scanned) == 3
    for i in range(3):
        np.testing.assert_array_equal(got[i].to_numpy(layout="TCZYX"), scanned[i].to_numpy(layout="TCZYX"))
    ids = [str(i) for i in scanned.table.column("image_id").to_pylist()]
    assert sorted(ids) == ["a.ome.tif", "b.ome.tif", "c.ome.tif"]  # the files' names, as the scan names them
    for i, image_id in enumerate(ids):
        assert got.metadata(i)["image_id"] == image_id
        np.testing.assert_array_equal(got[i].to_numpy(layout="TCZYX"), arrays[image_id.split(".")[0]])


def test_an_empty_folder_is_one_line_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["convert", str(tmp_path / "empty"), "-o", str(tmp_path / "x.ome.parquet"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "holds no images" in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_an_output_another_process_creates_meanwhile_is_kept_and_said_in_cli_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The output checked absent, then made by another writer while this one converts: the other copy is kept,
    nothing of this run lands, and the message says --force / --mode append (it said "pass mode='append'")."""
    from ome_arrow_core.cli import convert

    src, out = tmp_path / "a.npy", tmp_path / "out.ome.parquet"
    np.save(src, np.zeros((4, 5), np.uint16))
    theirs = np.full((1, 1, 1, 3, 3), 7, np.uint16)
    real = convert.counted

    def another_writer_first(images: list[OMEArrow], bar: object) -> object:
        OMEArrow(theirs).export("parquet", out)  # the other process's dataset, made while this one reads
        yield from real(images, bar)  # type: ignore[arg-type]

    monkeypatch.setattr(convert, "counted", another_writer_first)
    assert main(["convert", str(src), "-o", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"error: {out} was created by another process while converting; nothing of this run was written: pass "
        "--force to replace it or --mode append to add the images to it\n"
    )
    np.testing.assert_array_equal(OMEArrowDataset.scan(out)[0].to_numpy(layout="TCZYX"), theirs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "out.ome.parquet"]
