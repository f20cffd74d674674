"""OME-Zarr on remote storage (moto S3, a Range-honouring HTTP server, an fsspec filesystem): reads fetch only
the chunks a selection intersects; writes upload the chunks first and the root metadata last; damage is caught."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pytest

pytest.importorskip("zarr", reason="needs zarr (pip install -e backends/zarr)")
pytest.importorskip("ome_arrow_zarr", reason="needs ome-arrow-zarr (pip install -e backends/zarr)")
pytest.importorskip("fsspec")

from servers import HTTPServer, S3Server

from ome_arrow_core import OMEArrow
from ome_arrow_core.errors import DamagedFileError, OMEArrowError, StorageError, UnsafeOverwriteError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
SHAPE = (1, 2, 2, 256, 256)  # TZCYX; chunks of one 64x64 tile of one plane: 64 chunks per level
CHUNKS = (1, 64, 64)


def _pixels(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 60000, SHAPE, dtype=np.uint16)


def _fs(s3_server: S3Server) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(endpoint_override=s3_server.endpoint.split("://")[1], scheme="http", region="us-east-1")


@pytest.fixture
def bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    return s3_server.bucket("zarrs")


def _chunk_gets(log: list[tuple[str, str, int, int]], store: str) -> list[tuple[str, str, int, int]]:
    return [e for e in log if e[0] == "GET" and f"{store}/0/c/" in e[1]]


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_s3_write_then_read_bit_exact_fetching_only_the_crop_chunks(
    s3_server: S3Server, bucket: str, version: str
) -> None:
    arr = _pixels()
    uri = f"s3://{bucket}/rt-{version}.ome.zarr"
    OMEArrow(arr, "TZCYX").export("ome-zarr", uri, version=version, chunk_shape=CHUNKS)
    np.testing.assert_array_equal(OMEArrow(uri).to_numpy(layout="TZCYX"), arr)
    s3_server.log.clear()
    img = OMEArrow.scan(uri)
    crop = img.tensor_view(t=0, z=1, c=0, roi=(70, 10, 40, 100), layout="YX").to_numpy()  # x 70:110, y 10:110
    np.testing.assert_array_equal(crop, arr[0, 1, 0, 10:110, 70:110])
    chunk_dir = "/0/c/" if version == "0.5" else "/0/"
    on_chunks = [
        e
        for e in s3_server.log.requests()
        if f"/rt-{version}.ome.zarr{chunk_dir}" in e[1] and not e[1].rsplit("/", 1)[1].startswith(("zarr.json", "."))
    ]
    chunk_requests = [e for e in on_chunks if e[0] == "GET"]
    # x 70:110 lies in chunk column 1, y 10:110 in chunk rows 0 and 1: 2 of the image's 64 chunks, once each
    assert len(chunk_requests) == 2, chunk_requests
    assert {e[1].split(chunk_dir, 1)[1] for e in chunk_requests} == {"0/0/1/0/1", "0/0/1/1/1"}
    # one GET per chunk, no lookup before it (pyarrow would HEAD each object: reads go through get_range)
    assert on_chunks == chunk_requests, on_chunks
    assert s3_server.log.bytes_sent() < arr.nbytes / 16


@pytest.mark.parametrize(("version", "documents"), [("0.5", 3), ("0.4", 10)])
def test_s3_open_reads_each_metadata_document_once_without_lookups(
    s3_server: S3Server, bucket: str, version: str, documents: int
) -> None:
    """Opening asks for zarr.json as Zarr v3 first (one GET each for the root, labels/ and the level array), and
    only then for the v2 documents; no object is looked up (HEAD) before its GET."""
    uri = f"s3://{bucket}/open-{version}.ome.zarr"
    OMEArrow(_pixels(7), "TZCYX").export("ome-zarr", uri, version=version, chunk_shape=CHUNKS)
    s3_server.log.clear()
    OMEArrow.scan(uri)
    docs = [e for e in s3_server.log.requests() if f"/open-{version}.ome.zarr/" in e[1]]
    assert all(e[0] == "GET" for e in docs) and len(docs) == documents, docs
    # beside them: the target's lookup (a HEAD and a one-key listing) and the listing that tells a dataset directory
    assert len(s3_server.log.requests()) == documents + 3, s3_server.log.requests()


def test_http_read_fetches_only_the_plane_chunks(tmp_path: Path, http_server: HTTPServer) -> None:
    arr = _pixels(1)
    OMEArrow(arr, "TZCYX").export("ome-zarr", http_server.root / "img.ome.zarr", chunk_shape=CHUNKS)
    http_server.log.clear()
    img = OMEArrow.scan(f"{http_server.url}/img.ome.zarr")
    np.testing.assert_array_equal(img.tensor_view(t=0, z=0, c=1, layout="YX").to_numpy(), arr[0, 0, 1])
    chunks = [e for e in http_server.log.gets() if "/img.ome.zarr/0/c/" in e[1]]
    assert len(chunks) == 16 and len({e[1] for e in chunks}) == 16, chunks  # one plane: 4x4 chunks, once each
    assert all(e[1].startswith("/img.ome.zarr/0/c/0/1/0/") for e in chunks)


def test_fsspec_filesystem_argument_reads_and_writes(tmp_path: Path) -> None:
    import fsspec

    mem = fsspec.filesystem("memory")
    arr = _pixels(2)
    OMEArrow(arr, "TZCYX").export("ome-zarr", "/zbucket/m.ome.zarr", filesystem=mem, chunk_shape=CHUNKS)
    assert mem.exists("/zbucket/m.ome.zarr/zarr.json")
    np.testing.assert_array_equal(OMEArrow("/zbucket/m.ome.zarr", filesystem=mem).to_numpy(layout="TZCYX"), arr)


def test_existing_remote_store_is_never_replaced(s3_server: S3Server, bucket: str) -> None:
    uri = f"s3://{bucket}/kept.ome.zarr"
    old = _pixels(3)
    OMEArrow(old, "TZCYX").export("ome-zarr", uri, chunk_shape=CHUNKS)
    with pytest.raises(UnsafeOverwriteError, match=uri):
        OMEArrow(_pixels(4), "TZCYX").export("ome-zarr", uri, chunk_shape=CHUNKS)
    np.testing.assert_array_equal(OMEArrow(uri).to_numpy(layout="TZCYX"), old)


def test_an_upload_the_store_fails_leaves_no_readable_store(s3_server: S3Server, bucket: str) -> None:
    """The store refuses one chunk's upload: the root metadata (uploaded last) never lands, so nothing opens."""
    uri = f"s3://{bucket}/cut.ome.zarr"
    s3_server.fail("PUT", f"^/{bucket}/cut\\.ome\\.zarr/0/c/0/1/1/2/3\\?partNumber=", 403)
    try:
        with pytest.raises(StorageError, match=f"{uri} \\[0/c/0/1/1/2/3\\]: uploading failed"):
            OMEArrow(_pixels(5), "TZCYX").export("ome-zarr", uri, chunk_shape=CHUNKS)
    finally:
        s3_server.clear_faults()
    fs = _fs(s3_server)
    assert fs.get_file_info(f"{bucket}/cut.ome.zarr/0/c/0/0/0/0/0").type == pafs.FileType.File  # chunks went first
    assert fs.get_file_info(f"{bucket}/cut.ome.zarr/zarr.json").type == pafs.FileType.NotFound
    with pytest.raises(OMEArrowError):
        OMEArrow(uri).to_numpy()


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_remote_chunk_is_caught(s3_server: S3Server, bucket: str, damage: str) -> None:
    uri = f"s3://{bucket}/damaged-{damage}.ome.zarr"
    OMEArrow(_pixels(6), "TZCYX").export("ome-zarr", uri, chunk_shape=CHUNKS)
    key = f"{bucket}/damaged-{damage}.ome.zarr/0/c/0/0/1/1/2"
    fs = _fs(s3_server)
    with fs.open_input_file(key) as fh:
        data = bytearray(fh.read())
    if damage == "flip":
        data[len(data) // 2] ^= 0x04
    else:
        data = data[: len(data) // 2]
    with fs.open_output_stream(key) as out:
        out.write(bytes(data))
    with pytest.raises(DamagedFileError, match="0/c/0/0/1/1/2"):
        OMEArrow(uri).to_numpy()
