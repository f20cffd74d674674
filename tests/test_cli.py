"""Clear errors for bad files; nothing half-written; the command line's exit codes and output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ome_arrow_core import OMEArrow, SchemaError
from ome_arrow_core.cli import main

DATA = Path(__file__).resolve().parent / "data"


def test_non_ome_parquet_says_what_is_missing(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"]}), tmp_path / "plain.parquet")
    with pytest.raises(SchemaError, match=r"no OME-Arrow column found.*columns here are \['a', 'b'\]"):
        OMEArrow(tmp_path / "plain.parquet")
    (tmp_path / "dir.ome.parquet").mkdir()
    with pytest.raises(SchemaError, match="not an OME-Arrow dataset"):
        OMEArrow(tmp_path / "dir.ome.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(SchemaError, match="not a readable Parquet file"):
        OMEArrow(tmp_path / "junk.parquet")
    with pytest.raises(FileNotFoundError):
        OMEArrow(tmp_path / "missing.parquet")


def test_newer_format_version_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "v.ome.parquet"
    OMEArrow(np.zeros((4, 4), np.uint8)).export("parquet", out)
    manifest = json.loads((out / "_ome_arrow_dataset.json").read_text())
    manifest["ome_arrow_core"]["format_version"] = 99
    (out / "_ome_arrow_dataset.json").write_text(json.dumps(manifest))
    from ome_arrow_core import FormatVersionError

    with pytest.raises(FormatVersionError, match="format 99"):
        OMEArrow(out)


def test_failed_export_leaves_nothing_behind(tmp_path: Path) -> None:
    out = tmp_path / "x.ome.parquet"
    img = OMEArrow(np.zeros((8, 8), np.uint16))
    with pytest.raises(Exception, match="chunk_shape"):
        img.export("parquet", out, chunk_shape=(0, 4))
    assert list(tmp_path.iterdir()) == []
    img.export("parquet", out)
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(Exception):
        img.export("parquet", out, compression="no-such-codec")
    assert sorted(p.name for p in out.iterdir()) == before  # the old dataset is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["x.ome.parquet"]  # and no temp directory is left


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
    proc = subprocess.run([sys.executable, "-m", "ome_arrow_core.cli", "convert", str(tmp_path / "ok.npy"),
                           str(tmp_path / "bad.npy"), "-o", str(out), "-q"], capture_output=True, text=True)
    assert proc.returncode == 1 and "bad.npy" in proc.stderr
    assert OMEArrow(out).sizes["Y"] == 4  # the good input was written
    proc = subprocess.run([sys.executable, "-m", "ome_arrow_core.cli", "info", str(tmp_path / "nope")],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.startswith("error:") and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "ome_arrow_core.cli", "convert"], capture_output=True, text=True)
    assert proc.returncode == 2


def test_cli_converts_the_sample_tiffs_into_one_dataset(tmp_path: Path) -> None:
    pytest.importorskip("ome_arrow_tiff", reason="TIFF backend not installed")
    inputs = sorted((DATA / "ome-artificial").glob("*.ome.tif*"))
    out = tmp_path / "plate.ome.parquet"
    assert main(["convert", *map(str, inputs), "-o", str(out), "-q"]) == 0
    for row, path in enumerate(inputs):
        np.testing.assert_array_equal(OMEArrow(out, row=row).to_numpy(), OMEArrow(path).to_numpy())
