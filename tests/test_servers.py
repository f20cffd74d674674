"""The test servers behave like the real ones: ranges are honoured and counted; S3 stores and returns objects."""

from __future__ import annotations

import urllib.request

import pytest
from servers import HTTPServer, S3Server

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_http_server_honours_ranges_and_counts_bytes(http_server: HTTPServer) -> None:
    data = bytes(range(256)) * 4
    (http_server.root / "f.bin").write_bytes(data)
    req = urllib.request.Request(f"{http_server.url}/f.bin", headers={"Range": "bytes=10-19"})
    with urllib.request.urlopen(req) as r:
        assert r.status == 206 and r.read() == data[10:20]
        assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    req = urllib.request.Request(f"{http_server.url}/f.bin", headers={"Range": "bytes=-5"})
    with urllib.request.urlopen(req) as r:
        assert r.read() == data[-5:]
    with urllib.request.urlopen(f"{http_server.url}/f.bin") as r:
        assert r.status == 200 and r.read() == data
    assert [e[2:] for e in http_server.log.gets("f.bin")] == [(10, 10), (len(data) - 5, 5), (0, len(data))]
    assert http_server.log.bytes_sent() == 10 + 5 + len(data)


def test_s3_server_round_trips_an_object(s3_server: S3Server) -> None:
    import pyarrow.fs as pafs

    bucket = s3_server.bucket("roundtrip")
    fs = pafs.S3FileSystem(endpoint_override=s3_server.endpoint, scheme="http", region="us-east-1")
    with fs.open_output_stream(f"{bucket}/a/b.bin") as f:
        f.write(b"hello pixels")
    with fs.open_input_file(f"{bucket}/a/b.bin") as f:
        assert f.read_at(6, 6) == b"pixels"
    assert fs.get_file_info(f"{bucket}/a/b.bin").size == 12
