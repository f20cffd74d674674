"""Paths, URIs and filesystems resolve to one Location; remote bytes come back by range from real servers."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from servers import HTTPServer, S3Server

from ome_arrow_core.errors import ArgumentError
from ome_arrow_core.location import Location, is_uri, resolve

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("s3://b/k", True),
        ("https://h/x", True),
        ("file:///tmp/x", True),
        ("/tmp/x", False),
        ("rel/x.parquet", False),
        ("C:\\data\\x", False),
        ("weird name://x", False),
    ],
)
def test_is_uri(text: str, expected: bool) -> None:
    assert is_uri(text) is expected


def test_local_paths_and_file_uris_stay_local(tmp_path: Path) -> None:
    f = tmp_path / "a b.bin"
    f.write_bytes(b"xyz")
    for target in (f, str(f), f"file://{str(f).replace(' ', '%20')}"):
        loc = resolve(target)
        assert loc.local and loc.path == str(f) and loc.os_path() == f
        with loc.fs.open_input_file(loc.path) as fh:
            assert fh.read() == b"xyz"
    assert resolve(tmp_path).join("a b.bin").path == str(f)


def test_file_uri_with_a_host_is_refused() -> None:
    with pytest.raises(ArgumentError, match="file:// URIs must name a local path"):
        resolve("file://server/share/x")


def test_unknown_scheme_names_the_choices_and_hides_secrets() -> None:
    with pytest.raises(ArgumentError, match="unsupported URI scheme 'ftp'") as info:
        resolve("ftp://user:hunter2@host/x?token=s3cret")
    assert "hunter2" not in str(info.value) and "s3cret" not in str(info.value)


@pytest.mark.parametrize("endpoint", [None, "http://127.0.0.1:9"])
def test_a_uri_pyarrow_cannot_parse_is_an_argument_error(endpoint: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """s3:///key leaked pyarrow's ArrowInvalid ('Missing bucket name in S3 URI') without AWS_ENDPOINT_URL, and
    said 'an empty component' with it; an option pyarrow does not know leaked ArrowInvalid too."""
    for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(k, raising=False)
    if endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    for uri in ("s3:///plate.ome.parquet", "gs:///plate.ome.parquet"):
        with pytest.raises(ArgumentError, match="names no bucket; write (s3|gs)://bucket/folder/name"):
            resolve(uri)
    with pytest.raises(ArgumentError, match="s3://b/x: .*nosuchoption.*; write s3://bucket/folder/name") as info:
        resolve("s3://b/x?nosuchoption=s3cret&endpoint_override=h")
    assert "s3cret" not in str(info.value).replace("nosuchoption", "")


def test_bad_filesystem_argument() -> None:
    with pytest.raises(ArgumentError, match="filesystem= takes a pyarrow.fs.FileSystem or an fsspec filesystem"):
        resolve("x", filesystem=object())


def test_s3_uri_reads_through_the_standard_endpoint_variable(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3_server.bucket("loc")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    loc = resolve(f"s3://{bucket}/dir/obj.bin?unused=1")
    assert not loc.local and loc.path == f"{bucket}/dir/obj.bin" and loc.uri == f"s3://{bucket}/dir/obj.bin"
    with loc.fs.open_output_stream(loc.path) as out:
        out.write(b"0123456789")
    with resolve(f"s3://{bucket}/dir").join("obj.bin").fs.open_input_file(loc.path) as fh:
        assert fh.read_at(3, 4) == b"456"


def test_s3_uri_query_options_without_the_variable(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = s3_server.bucket("loc2")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    host = s3_server.endpoint.split("://", 1)[1]
    loc = resolve(f"s3://{bucket}/k.bin?endpoint_override={host}&scheme=http")
    with loc.fs.open_output_stream(loc.path) as out:
        out.write(b"abc")
    assert loc.fs.get_file_info(loc.path).size == 3 and "endpoint_override" not in loc.uri


def test_http_reads_only_the_range_asked(http_server: HTTPServer) -> None:
    pytest.importorskip("fsspec")
    data = os.urandom(1 << 20)
    (http_server.root / "big.bin").write_bytes(data)
    loc = resolve(f"{http_server.url}/big.bin")
    assert not loc.local and loc.uri == f"{http_server.url}/big.bin"
    http_server.log.clear()
    with loc.fs.open_input_file(loc.path) as fh:
        assert fh.read_at(1000, 100) == data[100:1100]
    assert [e[2:] for e in http_server.log.gets("big.bin")] == [
        (100, 1000)
    ]  # one exact ranged GET, no whole-body probe


def test_fsspec_filesystem_is_wrapped(tmp_path: Path) -> None:
    fsspec = pytest.importorskip("fsspec")
    mem = fsspec.filesystem("memory")
    mem.pipe("/bucket/x.bin", b"hello")
    loc = resolve("memory://bucket/x.bin", filesystem=mem)
    assert isinstance(loc, Location) and not loc.local
    with loc.fs.open_input_file(loc.path) as fh:
        assert fh.read() == b"hello"
    assert resolve(tmp_path, filesystem=pafs.LocalFileSystem()).local
