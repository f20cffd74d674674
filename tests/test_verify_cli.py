"""``ome-arrow-core verify PATH [--json]``: 'ok' and exit 0 when clean, the damage and exit 1 otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from table_digests import without_table_digests

from ome_arrow_core import OMEArrow
from ome_arrow_core.cli import main


def dataset(tmp_path: Path) -> tuple[Path, bytes]:
    a = np.random.default_rng(3).integers(0, 65535, (2, 2, 32, 32), dtype=np.uint16)
    out = tmp_path / "d.ome.parquet"
    OMEArrow(a, "ZCYX").export("parquet", out, compression=None)
    return out, np.ascontiguousarray(a[1, 1, 9, :8]).tobytes()


def flip(file: Path, pattern: bytes) -> None:
    raw = bytearray(file.read_bytes())
    at = raw.find(pattern)
    assert at >= 0
    raw[at + 2] ^= 0x01
    file.write_bytes(bytes(raw))


def test_clean_dataset_prints_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = dataset(tmp_path)
    assert main(["verify", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("ok: ") and "4 chunk(s) read, 4 matched their checksum" in text


def test_damaged_dataset_names_file_image_and_chunk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, pattern = dataset(tmp_path)
    flip(out / "chunks.parquet", pattern)
    assert main(["verify", str(out)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("DAMAGED: ")
    assert "chunks.parquet" in lines[0] and "image " in lines[0] and "chunk 3" in lines[0]
    assert main(["verify", "--json", str(out)]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["damage"][0]["chunk_id"] == 3
    assert doc["damage"][0]["file"].endswith("chunks.parquet")


def test_missing_chunk_file_and_rows_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = dataset(tmp_path)
    (out / "chunks.parquet").unlink()
    assert main(["verify", str(out)]) == 1
    assert "is missing" in capsys.readouterr().out


@pytest.mark.parametrize("content", [b"", b"PAR1 not really", b"\x00" * 64, b"VTXF garbage"])
def test_garbage_files_exit_1_without_a_traceback(
    content: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(content)
    assert main(["verify", str(bad)]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err and "DAMAGED" in captured.out


def test_not_a_dataset_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(tmp_path)]) == 1
    assert "not an OME-Arrow dataset" in capsys.readouterr().out


def test_record_and_vortex_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = OMEArrow(np.arange(2 * 16 * 16, dtype=np.uint16).reshape(2, 16, 16))
    img.export("parquet", tmp_path / "r.parquet", layout="record")
    assert main(["verify", str(tmp_path / "r.parquet")]) == 0
    assert "struct-record parquet" in capsys.readouterr().out
    pytest.importorskip("vortex")
    img.export("vortex", tmp_path / "x.vortex")
    assert main(["verify", str(tmp_path / "x.vortex")]) == 0
    assert "(vortex)" in capsys.readouterr().out


def test_ome_tiff_every_page_decodes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tifffile")
    img = OMEArrow(np.arange(3 * 16 * 16, dtype=np.uint16).reshape(3, 16, 16))
    out = tmp_path / "i.ome.tiff"
    img.export("ome-tiff", out)
    assert main(["verify", str(out)]) == 0
    text = capsys.readouterr().out
    assert "3 chunk(s) read, 3 matched their checksum" in text and "(tiff)" in text
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "t.ome.tif", np.zeros((3, 16, 16), np.uint16), ome=True)  # no checksums
    assert main(["verify", str(tmp_path / "t.ome.tif")]) == 0
    text = capsys.readouterr().out
    assert "3 chunk(s) read" in text and "without checksums" in text


def test_fifos_are_reported_not_opened(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    os.mkfifo(tmp_path / "pipe.parquet")
    assert main(["verify", str(tmp_path / "pipe.parquet")]) == 1
    out, _ = dataset(tmp_path)
    (out / "chunks.parquet").unlink()
    os.mkfifo(out / "chunks.parquet")
    assert main(["verify", str(out)]) == 1
    (out / "images.parquet").unlink()
    os.mkfifo(out / "images.parquet")
    assert main(["verify", str(out)]) == 1
    assert "DAMAGED" in capsys.readouterr().out


def test_index_rows_pointing_nowhere_or_at_other_chunks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out, _ = dataset(tmp_path)
    index = pq.read_table(out / "index.parquet")
    groups = index.column("row_group_id").to_numpy().copy()
    groups[1], groups[2] = 99, groups[3]  # row 1 points past the file, row 2 at chunk 3's row group
    at = index.schema.get_field_index("row_group_id")
    pq.write_table(index.set_column(at, index.schema.field(at), pa.array(groups, pa.int32())), out / "index.parquet")
    without_table_digests(out)  # a lie the table checksums would refuse first
    assert main(["verify", "--json", str(out)]) == 1
    damage = json.loads(capsys.readouterr().out)["damage"]
    assert any(d["chunk_id"] == 1 and "row group 99" in d["problem"] for d in damage)
    assert any(d["chunk_id"] == 2 and "points at chunk 3" in d["problem"] for d in damage)
