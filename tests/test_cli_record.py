"""``ome-arrow-core convert --record``: one image written in ome-arrow 0.1.0's one-record layout (a .parquet or
.vortex file), which the reference reads; every other use refused in one line, nothing written."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from ome_arrow_core import OMEArrow
from ome_arrow_core.cli import main


@pytest.fixture
def tiff(tmp_path: Path) -> tuple[Path, np.ndarray]:
    pytest.importorskip("ome_arrow_tiff", reason="needs ome-arrow-tiff (pip install -e backends/tiff)")
    a = np.random.default_rng(0).integers(0, 4096, (1, 2, 3, 16, 20), dtype=np.uint16)  # TCZYX
    path = tmp_path / "in.ome.tif"
    OMEArrow(a, "TCZYX").export("ome-tiff", path)
    return path, a


@pytest.mark.parametrize("name", ["out.parquet", "out.vortex"])
def test_the_reference_reads_a_record_file_the_cli_wrote(tiff: tuple[Path, np.ndarray], name: str) -> None:
    ome_arrow = pytest.importorskip("ome_arrow", reason="needs the reference package ome-arrow 0.1.0")
    if name.endswith(".vortex"):
        pytest.importorskip("ome_arrow_vortex", reason="needs ome-arrow-vortex (pip install -e backends/vortex)")
    src, a = tiff
    out = src.parent / name
    assert main(["convert", str(src), "-o", str(out), "--record", "-q"]) == 0
    assert out.is_file()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = np.asarray(ome_arrow.OMEArrow(str(out)).export(how="numpy"))
    np.testing.assert_array_equal(got, a)
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(layout="TCZYX"), a)


def test_record_refusals_are_one_line_and_write_nothing(
    tiff: tuple[Path, np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    src, _ = tiff
    folder = src.parent
    cases = [
        (["-o", str(folder / "x.ome.tif")], "--record writes ome-arrow 0.1.0's one-record layout"),
        ([str(src), "-o", str(folder / "x.parquet")], "the inputs hold 2 image(s)"),
        (["-o", str(folder / "x.parquet"), "--mode", "append"], "--mode append adds to a dataset"),
    ]
    for extra, message in cases:
        assert main(["convert", str(src), *extra, "--record", "-q"]) == 1
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in folder.iterdir()) == [src.name]


def test_a_dataset_directory_is_never_replaced_by_a_record_file(
    tiff: tuple[Path, np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    src, _ = tiff
    out = src.parent / "out.ome.parquet"
    assert main(["convert", str(src), "-o", str(out), "-q"]) == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main(["convert", str(src), "-o", str(out), "--record", "--force", "-q"]) == 1
    assert "it is a directory and the output is a file" in capsys.readouterr().err
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
