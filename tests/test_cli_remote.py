"""The command line reads what the library reads: ``info``, ``convert`` and ``thumbnail`` of ``s3://`` (moto's real
S3 server) and ``http://`` (a real server on 127.0.0.1) inputs; ``convert -o`` to object storage where the writer
writes it; the library's one-line errors for a missing key, a missing bucket and a bad URI; refusals that say why.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from png_support import decode_png
from servers import HTTPServer, S3Server

from ome_arrow_core import OMEArrow, OMEArrowDataset, write_dataset
from ome_arrow_core.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

IMAGES = [np.arange(2 * 24 * 32, dtype=np.uint16).reshape(2, 24, 32) * (i + 1) for i in range(2)]


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    """The one line the command printed on stderr."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The S3 server, found the standard way (AWS_ENDPOINT_URL)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    return s3_server


@pytest.fixture
def bucket(s3: S3Server) -> str:
    """A new bucket of its own for one test (the server lives for the session)."""
    return s3.bucket(f"cli-{secrets.token_hex(6)}")


def _plate(where: str, bucket: str, http: HTTPServer | None, name: str = "plate.ome.parquet") -> str:
    """A two-image dataset (CYX, a metadata column) on the S3 or HTTP server; its URI."""
    kw = {"dim_order": "CYX", "metadata": {"well": ["A01", "B02"]}, "progress": False}
    if where == "http":
        pytest.importorskip("fsspec")
        assert http is not None
        write_dataset(IMAGES, http.root / name, **kw)  # type: ignore[arg-type]
        return f"{http.url}/{name}"
    uri = f"s3://{bucket}/{name}"
    write_dataset(IMAGES, uri, **kw)  # type: ignore[arg-type]
    return uri


@pytest.mark.parametrize("where", ["s3", "http"])
def test_info_lists_a_remote_dataset_and_shows_one_image(
    where: str, bucket: str, http_server: HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = _plate(where, bucket, http_server)
    assert main(["info", uri, "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["path"] == uri and [im["well"] for im in listing["images"]] == ["A01", "B02"]
    assert [im["shape"] for im in listing["images"]] == [{"T": 1, "Z": 1, "C": 2, "Y": 24, "X": 32}] * 2
    assert main(["info", uri, "--image", listing["images"][1]["id"], "--json"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert one["well"] == "B02" and one["dtype"] == "uint16"
    assert main(["info", uri]) == 0
    assert capsys.readouterr().out.startswith(f"{uri}: 2 images; pick one with --row N or --image ID")


def test_info_through_the_installed_module_reads_s3(s3: S3Server, bucket: str) -> None:
    uri = _plate("s3", bucket, None)
    run = subprocess.run(
        [sys.executable, "-m", "ome_arrow_core.cli", "info", uri, "--row", "1", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "AWS_ENDPOINT_URL": s3.endpoint},
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["well"] == "B02"


def test_info_of_an_http_ome_tiff(http_server: HTTPServer, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ome_arrow_tiff")
    pytest.importorskip("fsspec")
    OMEArrow(IMAGES[0], "CYX").export("ome-tiff", http_server.root / "img.ome.tiff")
    url = f"{http_server.url}/img.ome.tiff"
    assert main(["info", url, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shape"] == {"T": 1, "Z": 1, "C": 2, "Y": 24, "X": 32} and info["storage"] == "tiff"


def test_a_query_string_is_used_but_never_printed(
    s3_server: S3Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # the endpoint comes from the URI's query alone
    s3_server.bucket("cli-query")
    write_dataset(IMAGES, "s3://cli-query/q.ome.parquet", filesystem=s3_server.filesystem(), progress=False)
    host = s3_server.endpoint.split("://")[1]
    assert main(["info", f"s3://cli-query/q.ome.parquet?endpoint_override={host}&scheme=http&region=us-east-1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("s3://cli-query/q.ome.parquet: 2 images") and "endpoint_override" not in out


@pytest.mark.parametrize("to", ["ome.tiff", "ome.zarr", "ome.parquet"])
def test_convert_from_s3_to_a_local_file_keeps_the_pixels(to: str, bucket: str, tmp_path: Path) -> None:
    pytest.importorskip({"ome.tiff": "ome_arrow_tiff", "ome.zarr": "ome_arrow_zarr", "ome.parquet": "pyarrow"}[to])
    uri = _plate("s3", bucket, None)
    out = tmp_path / f"out.{to}"
    if to == "ome.parquet":  # the whole dataset
        assert main(["convert", uri, "-o", str(out), "-q"]) == 0
        got = OMEArrowDataset.scan(out)
        assert len(got) == 2  # (convert keeps no metadata columns, from a local dataset neither)
        for img, want in zip(got, IMAGES):
            np.testing.assert_array_equal(img.to_numpy(layout="CYX"), want)
        return
    one = f"s3://{bucket}/one.ome.parquet"
    write_dataset(IMAGES[1:], one, dim_order="CYX", progress=False)
    assert main(["convert", one, "-o", str(out), "-q"]) == 0
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(layout="CYX"), IMAGES[1])


def test_convert_of_two_remote_inputs_names_each_image_for_its_object(
    bucket: str, http_server: HTTPServer, tmp_path: Path
) -> None:
    pytest.importorskip("ome_arrow_tiff")
    pytest.importorskip("fsspec")
    OMEArrow(IMAGES[0], "CYX").export("ome-tiff", f"s3://{bucket}/a.ome.tiff")
    OMEArrow(IMAGES[1], "CYX").export("ome-tiff", http_server.root / "b.ome.tiff")
    out = tmp_path / "both.ome.parquet"
    assert main(["convert", f"s3://{bucket}/a.ome.tiff", f"{http_server.url}/b.ome.tiff", "-o", str(out), "-q"]) == 0
    ds = OMEArrowDataset.scan(out)
    assert ds.table.column("image_id").to_pylist() == ["a.ome.tiff", "b.ome.tiff"]
    for img, want in zip(ds, IMAGES):
        np.testing.assert_array_equal(img.to_numpy(layout="CYX"), want)


@pytest.mark.parametrize("where", ["s3", "http"])
def test_thumbnail_of_a_remote_image_is_the_local_one(
    where: str, bucket: str, http_server: HTTPServer, tmp_path: Path
) -> None:
    uri = _plate(where, bucket, http_server)
    local = tmp_path / "plate.ome.parquet"
    write_dataset(IMAGES, local, dim_order="CYX", progress=False)
    for extra in (["--row", "1"], []):  # one image; the grid of both
        assert main(["thumbnail", uri, "-o", str(tmp_path / "r.png"), "--size", "16", "-q", *extra]) == 0
        assert main(["thumbnail", str(local), "-o", str(tmp_path / "l.png"), "--size", "16", "-q", *extra]) == 0
        np.testing.assert_array_equal(decode_png(tmp_path / "r.png"), decode_png(tmp_path / "l.png"))


def test_thumbnail_of_an_s3_ome_tiff(bucket: str, tmp_path: Path) -> None:
    pytest.importorskip("ome_arrow_tiff")
    uri = f"s3://{bucket}/t.ome.tiff"
    OMEArrow(IMAGES[0], "CYX").export("ome-tiff", uri)
    assert main(["thumbnail", uri, "-o", str(tmp_path / "t.png"), "--size", "16", "-q"]) == 0
    np.testing.assert_array_equal(decode_png(tmp_path / "t.png"), OMEArrow(IMAGES[0], "CYX").thumbnail(16))


@pytest.mark.parametrize("command", ["info", "thumbnail", "convert"])
@pytest.mark.parametrize("where", ["key", "bucket", "http"])
def test_a_missing_object_or_bucket_is_the_librarys_one_line(
    command: str,
    where: str,
    bucket: str,
    http_server: HTTPServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if where == "http":
        pytest.importorskip("fsspec")
    uri = {
        "key": f"s3://{bucket}/nothing-here.ome.parquet",
        "bucket": "s3://no-such-bucket-here/plate.ome.parquet",
        "http": f"{http_server.url}/nothing-here.ome.tiff",
    }[where]
    argv = {
        "info": [uri],
        "thumbnail": [uri, "-o", str(tmp_path / "t.png")],
        "convert": [uri, "-o", str(tmp_path / "x.ome.tiff")],
    }
    assert main([command, *argv[command]]) == 1
    line = _err(capsys)
    assert f"no such object or directory: check the bucket (or host), the key and AWS_ENDPOINT_URL: '{uri}'" in line
    assert not (tmp_path / "t.png").exists() and not (tmp_path / "x.ome.tiff").exists()


def test_a_uri_the_library_cannot_read_is_its_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for uri, says in (
        ("ftp://host/plate.ome.parquet", "unsupported URI scheme 'ftp'"),
        ("s3:///plate.ome.parquet", "names no bucket"),
        ("s3://bucket/a/../plate.ome.parquet", "cannot have an empty, '.' or '..' component"),
    ):
        for argv in (["info", uri], ["convert", uri, "-o", "x.ome.tiff"], ["thumbnail", uri, "-o", "t.png"]):
            assert main(argv) == 1, argv
            assert says in _err(capsys), argv


def test_convert_writes_object_storage_where_the_writer_does(
    bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("ome_arrow_tiff")
    pytest.importorskip("ome_arrow_zarr")
    src = tmp_path / "a.npy"
    np.save(src, IMAGES[0])
    for name in ("a.ome.tiff", "a.ome.zarr", "a.ome.parquet"):
        assert main(["convert", str(src), "-o", f"s3://{bucket}/{name}", "-q"]) == 0, name
        np.testing.assert_array_equal(OMEArrow.scan(f"s3://{bucket}/{name}").to_numpy(layout="ZYX"), IMAGES[0])
    assert main(["info", f"s3://{bucket}/a.ome.zarr", "--json"]) == 0  # a remote store is one image, not a dataset
    assert json.loads(capsys.readouterr().out)["storage"] == "ome-zarr"
    # what is there is refused as locally: a file or dataset without --force, a store always
    for name, says in (
        ("a.ome.tiff", "exists; pass --force to replace it"),
        ("a.ome.parquet", "exists; pass --force to replace it"),
        ("a.ome.zarr", "an OME-Zarr output is never replaced"),
    ):
        assert main(["convert", str(src), "-o", f"s3://{bucket}/{name}", "-q"]) == 1
        line = _err(capsys)
        assert line.startswith(f"error: s3://{bucket}/{name} exists") and says in line, line
    np.save(src, IMAGES[1])
    assert main(["convert", str(src), "-o", f"s3://{bucket}/a.ome.tiff", "-q", "--force"]) == 0
    np.testing.assert_array_equal(OMEArrow.scan(f"s3://{bucket}/a.ome.tiff").to_numpy(layout="ZYX"), IMAGES[1])
    assert main(["convert", str(src), "-o", f"s3://{bucket}/a.ome.parquet", "-q", "--mode", "append"]) == 0
    assert len(OMEArrowDataset.scan(f"s3://{bucket}/a.ome.parquet")) == 2


def test_outputs_the_library_cannot_write_are_refused_before_reading(
    s3: S3Server, bucket: str, http_server: HTTPServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "a.npy"
    np.save(src, IMAGES[0])
    s3.log.clear()
    for argv, says in (
        (["convert", str(src), "-o", f"s3://{bucket}/a.vortex"], "the 'vortex' writer writes local files only"),
        (["convert", str(src), "-o", f"{http_server.url}/a.ome.tiff"], "HTTP(S) locations are read-only"),
        (["thumbnail", str(src), "-o", f"s3://{bucket}/t.png"], "thumbnail -o takes local paths only"),
    ):
        assert main(argv) == 1, argv
        assert says in _err(capsys), argv
    assert not s3.log.requests() and not http_server.log.requests()
    assert not list(http_server.root.iterdir())


@pytest.mark.parametrize("what", ["denied", "unreachable", "http-forbidden"])
def test_a_refused_or_unreachable_store_is_the_librarys_one_line(
    what: str,
    s3: S3Server,
    bucket: str,
    http_server: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    uri = _plate("s3", bucket, None)
    if what == "denied":
        with s3.denying():
            assert main(["info", uri]) == 1
        assert "check the credentials" in _err(capsys)
        return
    if what == "http-forbidden":
        pytest.importorskip("fsspec")
        (http_server.root / "denied").mkdir()
        assert main(["info", f"{http_server.url}/denied/plate.ome.parquet"]) == 1
        assert "check the credentials" in _err(capsys)
        return
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    assert main(["info", uri]) == 1
    line = _err(capsys)
    assert line.startswith(f"error: {uri}") and "the store did not answer; check the endpoint" in line, line
