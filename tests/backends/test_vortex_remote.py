"""Vortex files are local only: a URI is refused with a message that says so, before any byte or local path is
touched (vortex-data can open URLs itself, but this reader's damage guards and memory map need a local file)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pytest

pytest.importorskip("vortex", reason="needs vortex-data (pip install -e backends/vortex)")
pytest.importorskip("ome_arrow_vortex", reason="needs ome-arrow-vortex (pip install -e backends/vortex)")

from servers import S3Server

from ome_arrow_core import OMEArrow
from ome_arrow_core.errors import ArgumentError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_vortex_uris_are_refused_clearly(tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.chdir(tmp_path)
    bucket = s3_server.bucket("vortexes")
    local = tmp_path / "img.vortex"
    OMEArrow(np.arange(64, dtype=np.uint16).reshape(1, 1, 1, 8, 8)).export("vortex", local)
    fs = pafs.S3FileSystem(endpoint_override=s3_server.endpoint.split("://")[1], scheme="http", region="us-east-1")
    with fs.open_output_stream(f"{bucket}/img.vortex") as out:
        out.write(local.read_bytes())
    uri = f"s3://{bucket}/img.vortex"
    with pytest.raises(ArgumentError, match=f"{uri}: the 'vortex' reader reads local files only; copy the file"):
        OMEArrow.scan(uri)
    with pytest.raises(ArgumentError, match=f"{uri}/new.vortex: the 'vortex' writer writes local files only"):
        OMEArrow(np.zeros((4, 4), np.uint8)).export("vortex", f"{uri}/new.vortex")
    assert sorted(os.listdir(tmp_path)) == ["img.vortex"]  # no mangled local path (s3:/...) was created
