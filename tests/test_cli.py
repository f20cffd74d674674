"""The command line: convert, info, compact, plugins; exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ome_arrow_core import OMEArrow, OMEArrowDataset, write_dataset
from ome_arrow_core.cli import main

DATA = Path(__file__).resolve().parent / "data"


def test_cli_convert_info_plugins(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "a.npy", np.arange(2 * 16 * 16, dtype=np.float32).reshape(2, 16, 16))
    out = tmp_path / "a.ome.parquet"
    assert main(["convert", str(tmp_path / "a.npy"), "-o", str(out), "-q", "--chunk-shape", "8,8"]) == 0
    np.testing.assert_array_equal(OMEArrow(out).tensor_view(layout="ZYX").to_numpy(), np.load(tmp_path / "a.npy"))
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shape"] == {"T": 1, "Z": 2, "C": 1, "Y": 16, "X": 16} and info["dtype"] == "float32"
    assert info["chunk_shape_tczyx"] == [1, 1, 1, 8, 8]
    assert main(["plugins"]) == 0
    assert "parquet" in capsys.readouterr().out


def test_cli_failed_input_and_usage(tmp_path: Path) -> None:
    np.save(tmp_path / "ok.npy", np.zeros((4, 4), np.uint8))
    (tmp_path / "bad.npy").write_bytes(b"garbage")
    out = tmp_path / "two.ome.parquet"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ome_arrow_core.cli",
            "convert",
            str(tmp_path / "ok.npy"),
            str(tmp_path / "bad.npy"),
            "-o",
            str(out),
            "-q",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "bad.npy" in proc.stderr
    assert OMEArrow(out).sizes["Y"] == 4  # the good input was written
    proc = subprocess.run(
        [sys.executable, "-m", "ome_arrow_core.cli", "info", str(tmp_path / "nope")], capture_output=True, text=True
    )
    assert proc.returncode == 1 and proc.stderr.startswith("error:") and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "ome_arrow_core.cli", "convert"], capture_output=True, text=True)
    assert proc.returncode == 2


def test_cli_compact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arrs = [np.full((2, 8, 8), i, np.uint16) for i in range(3)]
    out = write_dataset(arrs[:1], tmp_path / "d", dim_order="CYX", progress=False)
    write_dataset(arrs[1:], out, dim_order="CYX", mode="append", progress=False)
    assert main(["compact", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"compacted {out}: chunks.parquet, chunks-00001.parquet -> chunks.parquet"
    assert sorted(p.name for p in out.glob("chunks*")) == ["chunks.parquet"]
    np.testing.assert_array_equal(OMEArrowDataset.scan(out).read(), np.stack(arrs))
    assert main(["compact", str(out)]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main(["compact", "-q", str(out)]) == 0 and capsys.readouterr().out == ""
    for argv, code in ((["compact", str(tmp_path)], 1), (["compact", str(tmp_path / "nope")], 1), (["compact"], 2)):
        proc = subprocess.run([sys.executable, "-m", "ome_arrow_core.cli", *argv], capture_output=True, text=True)
        assert proc.returncode == code, proc.stderr
        if code == 1:
            assert proc.stderr.startswith("error:") and len(proc.stderr.strip().splitlines()) == 1
    proc = subprocess.run(
        [sys.executable, "-m", "ome_arrow_core.cli", "compact", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "chunks.parquet" in proc.stdout


def test_cli_converts_the_sample_tiffs_into_one_dataset(tmp_path: Path) -> None:
    pytest.importorskip("ome_arrow_tiff", reason="TIFF backend not installed")
    inputs = sorted((DATA / "ome-artificial").glob("*.ome.tif*"))
    out = tmp_path / "plate.ome.parquet"
    assert main(["convert", *map(str, inputs), "-o", str(out), "-q"]) == 0
    for row, path in enumerate(inputs):
        np.testing.assert_array_equal(OMEArrow(out, row=row).to_numpy(), OMEArrow(path).to_numpy())


def test_cli_converts_every_series_of_a_multi_image_tiff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An OME-TIFF of two images converts to a dataset of both (only the first was written, without a word); to a
    one-image format it is refused, saying how to convert one image."""
    tifffile = pytest.importorskip("tifffile")
    pytest.importorskip("ome_arrow_tiff", reason="TIFF backend not installed")
    first = np.random.default_rng(0).integers(0, 60000, (2, 16, 24), dtype=np.uint16)
    second = np.random.default_rng(1).integers(0, 255, (3, 8, 8), dtype=np.uint8)
    src = tmp_path / "two.ome.tif"
    with tifffile.TiffWriter(src, ome=True) as tw:
        tw.write(first, metadata={"axes": "CYX"})
        tw.write(second, metadata={"axes": "ZYX"})
    out = tmp_path / "two.ome.parquet"
    assert main(["convert", str(src), "-o", str(out), "-q"]) == 0
    ds = OMEArrowDataset.scan(out)
    assert len(ds) == 2
    np.testing.assert_array_equal(ds[0].to_numpy()[0, :, 0], first)
    np.testing.assert_array_equal(ds[1].to_numpy()[0, 0], second)
    capsys.readouterr()
    assert main(["convert", str(src), "-o", str(tmp_path / "one.ome.tiff"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "hold 2 images" in err and "row=" in err and not (tmp_path / "one.ome.tiff").exists()


def test_cli_names_each_input_image_for_its_file(tmp_path: Path) -> None:
    """Several inputs: each image is named for its file (the CLI wraps the source; the reader's meta is untouched)."""
    paths = []
    for k in range(2):  # records that carry a name of their own
        path = tmp_path / f"plane{k}.parquet"
        OMEArrow(np.full((3, 4), k, np.uint8), name="inner").export("parquet", path, layout="record")
        paths.append(path)
    assert OMEArrow.scan(paths[0]).meta.name == "inner"
    out = tmp_path / "both.ome.parquet"
    assert main(["convert", *map(str, paths), "-o", str(out), "-q"]) == 0
    ds = OMEArrowDataset.scan(out)
    assert ds.table.column("image_id").to_pylist() == ["plane0.parquet", "plane1.parquet"]
    assert [img.meta.name for img in ds] == ["plane0", "plane1"]
    assert [int(img.to_numpy().max()) for img in ds] == [0, 1]


def test_a_uri_the_maintenance_commands_cannot_take_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """compact, cleanup and verify take local datasets (the library refuses URIs), as does thumbnail -o; info,
    thumbnail and convert read URIs (tests/test_cli_remote.py)."""
    from ome_arrow_core import cleanup_dataset, compact_dataset
    from ome_arrow_core.errors import ArgumentError

    monkeypatch.chdir(tmp_path)  # Path("s3://b/p") is the local s3:/b/p: cleanup looked there, found nothing
    local = write_dataset([np.zeros((4, 4), np.uint8)], tmp_path / "p.ome.parquet", progress=False)
    uri = "s3://bucket/plate.ome.parquet"
    for argv, who in (
        (["thumbnail", str(local), "-o", "s3://bucket/t.png"], "thumbnail -o"),
        (["compact", uri], "compact"),
        (["cleanup", uri], "cleanup"),
        (["verify", uri], "verify"),
    ):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{who} takes local paths only (s3://bucket/" in err[0], (argv, err)
    for call in (cleanup_dataset, compact_dataset):
        with pytest.raises(ArgumentError, match="local paths only"):
            call(uri)
    assert not list(tmp_path.glob("s3*")) and main(["info", f"file://{local}"]) == 0
    assert main(["thumbnail", f"file://{local}", "-o", f"file://{tmp_path}/t.png", "-q"]) == 0
    assert main(["convert", f"file://{local}", "-o", f"file://{tmp_path}/c.ome.parquet", "-q"]) == 0
    assert len(OMEArrowDataset.scan(tmp_path / "c.ome.parquet")) == 1


def test_force_with_mode_append_is_refused_not_an_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plate = write_dataset([np.zeros((4, 4), np.uint8)] * 2, tmp_path / "p.ome.parquet", progress=False)
    one = tmp_path / "one.npy"
    np.save(one, np.ones((4, 4), np.uint8))
    assert main(["convert", str(one), "-o", str(plate), "--mode", "append", "--force", "-q"]) == 1
    assert "--force replaces" in capsys.readouterr().err
    assert len(OMEArrowDataset.scan(plate)) == 2  # the plate was replaced by the one image before
    assert main(["convert", str(one), "-o", str(plate), "--mode", "append", "-q"]) == 0
    assert main(["convert", str(one), "-o", str(plate), "--mode", "overwrite", "--force", "-q"]) == 0
    assert len(OMEArrowDataset.scan(plate)) == 1
