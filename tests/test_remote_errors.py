"""A store that refuses, a server that does not answer and a missing key are storage errors naming the URI and
what to check (credentials, endpoint, bucket and key), never "the file is damaged"."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pytest
from servers import HTTPServer, S3Server

from ome_arrow_core import OMEArrow
from ome_arrow_core.errors import DamagedFileError, NotFoundError, StorageError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _record(tmp_path: Path) -> bytes:
    out = tmp_path / "img.ome.parquet"
    OMEArrow(np.arange(2 * 16 * 16, dtype=np.uint16).reshape(1, 1, 2, 16, 16), "TZCYX").export(
        "parquet", out, layout="record"
    )
    return out.read_bytes()


def _raises_storage(uri: str, hint: str) -> StorageError:
    with pytest.raises(StorageError) as info:
        OMEArrow(uri).to_numpy()
    assert not isinstance(info.value, DamagedFileError)
    assert uri.split("?")[0] in str(info.value) and hint in str(info.value), str(info.value)
    return info.value


def test_s3_server_not_running_says_check_the_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(k, v)
    _raises_storage("s3://bucket/img.ome.parquet", "check the endpoint (AWS_ENDPOINT_URL")


def test_http_server_not_running_says_check_the_endpoint() -> None:
    pytest.importorskip("fsspec")
    err = _raises_storage(f"http://127.0.0.1:{_closed_port()}/img.ome.parquet?token=s3cret", "the store did not answer")
    assert "s3cret" not in str(err)


def test_s3_denied_request_says_check_the_credentials(
    tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    bucket = s3_server.bucket("denied")
    fs = pafs.S3FileSystem(endpoint_override=s3_server.endpoint.split("://")[1], scheme="http", region="us-east-1")
    with fs.open_output_stream(f"{bucket}/img.ome.parquet") as out:
        out.write(_record(tmp_path))
    with s3_server.denying():
        _raises_storage(f"s3://{bucket}/img.ome.parquet", "check the credentials")
    OMEArrow(f"s3://{bucket}/img.ome.parquet").to_numpy()  # allowed again: the object itself was fine


def test_s3_request_refused_mid_read_is_not_damage(
    tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lookup succeeds, then the store refuses the ranged GET of the footer."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    bucket = s3_server.bucket("refused")
    fs = pafs.S3FileSystem(endpoint_override=s3_server.endpoint.split("://")[1], scheme="http", region="us-east-1")
    with fs.open_output_stream(f"{bucket}/img.ome.parquet") as out:
        out.write(_record(tmp_path))
    s3_server.fail("GET", f"/{bucket}/img.ome.parquet", 403)
    try:
        _raises_storage(f"s3://{bucket}/img.ome.parquet", "check the credentials")
    finally:
        s3_server.clear_faults()


def test_http_forbidden_says_check_the_credentials(tmp_path: Path, http_server: HTTPServer) -> None:
    pytest.importorskip("fsspec")
    (http_server.root / "denied").mkdir()
    (http_server.root / "denied" / "img.ome.parquet").write_bytes(_record(tmp_path))
    _raises_storage(f"{http_server.url}/denied/img.ome.parquet", "check the credentials")


@pytest.mark.parametrize("where", ["s3", "http"])
def test_missing_key_is_file_not_found(
    where: str, s3_server: S3Server, http_server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("fsspec")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    uri = (
        f"s3://{s3_server.bucket('missing')}/nope.ome.parquet"
        if where == "s3"
        else f"{http_server.url}/nope.ome.parquet"
    )
    with pytest.raises(NotFoundError, match=uri) as err:  # ours (an OMEArrowError) and a FileNotFoundError
        OMEArrow(uri)
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, StorageError)
    assert "check the bucket (or host), the key" in str(err.value)
