"""Typed-chunk dataset directories read from the real S3 (moto) and HTTP test servers, with requests and bytes
counted by the servers: opening fetches the manifest, one listing (S3) and the tables; a crop, a plane and
``ds[i]`` then fetch only their chunks' pages (coalesced), never the metadata again.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pixels import random_pixels
from servers import HTTPServer, RequestLog, S3Server

from ome_arrow_core import OMEArrow, OMEArrowDataset, write_dataset
from ome_arrow_core.errors import ArgumentError, ChecksumError, DamagedFileError, StorageError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SHAPE = (2, 3, 64, 64)  # C, Z, Y, X: chunks of one plane (8 KiB)
IMAGES = [random_pixels(SHAPE, seed=i) for i in range(6)]


def _plate(tmp_path: Path) -> Path:
    out = tmp_path / "plate.ome.parquet"
    write_dataset(IMAGES, out, dim_order="CZYX", chunk_shape=(1, 1, 1, 64, 64), progress=False)
    return out


def _upload(
    local: Path, where: str, s3: S3Server, http: HTTPServer, bucket: str, mp: pytest.MonkeyPatch
) -> tuple[str, RequestLog]:
    """Every file of dataset directory ``local`` on the S3 or HTTP server: the dataset's URI and the server's log."""
    if where == "http":
        pytest.importorskip("fsspec")
        shutil.copytree(local, http.root / local.name)
        return f"{http.url}/{local.name}", http.log
    mp.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    for f in sorted(local.iterdir()):
        s3.put(bucket, f"{local.name}/{f.name}", f.read_bytes())
    return f"s3://{bucket}/{local.name}", s3.log


def _counts(log: RequestLog) -> tuple[Counter[str], int]:
    reqs = log.requests()
    return Counter(m for m, *_ in reqs), sum(n for *_, n in reqs)


def _page_bytes(local: Path) -> int:
    """Bytes of one chunk's pixel page without its header (an uncompressed plane: the value, 6 bytes of levels and
    its 4-byte length)."""
    md = pq.ParquetFile(local / "chunks.parquet").metadata
    col = md.row_group(0).column(md.schema.names.index("pixel_bytes"))
    assert col.compression == "UNCOMPRESSED" and col.total_compressed_size > 64 * 64 * 2 + 10
    return 64 * 64 * 2 + 10


@pytest.mark.parametrize("where", ["s3", "http"])
def test_open_fetches_the_manifest_a_listing_and_the_tables_once(
    tmp_path: Path, where: str, s3_server: S3Server, http_server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = _plate(tmp_path)
    uri, log = _upload(local, where, s3_server, http_server, "ds-open", monkeypatch)
    log.clear()
    ds = OMEArrowDataset.scan(uri)
    assert len(ds) == len(IMAGES)
    methods, _ = _counts(log)
    tables = sum((local / n).stat().st_size for n in ("images.parquet", "index.parquet", "_ome_arrow_dataset.json"))
    if where == "s3":  # the manifest, one listing, the two tables: no lookups (boto3 GETs of listed sizes)
        assert methods == Counter(GET=4), log.requests()
    else:  # a web server: three GETs, no lookups (the manifest gives the chunks file's size)
        assert methods == Counter(GET=3), log.requests()
    assert sum(n for m, p, _, n in log.requests() if not p.startswith("/ds-open?")) == tables
    log.clear()
    again = OMEArrowDataset.scan(uri)  # unchanged: the manifest (and the listing) only, the tables are kept
    assert len(again) == len(IMAGES)
    assert _counts(log)[0] == (Counter(GET=2) if where == "s3" else Counter(GET=1)), log.requests()


@pytest.mark.parametrize("where", ["s3", "http"])
def test_crop_plane_and_image_fetch_only_their_pages(
    tmp_path: Path, where: str, s3_server: S3Server, http_server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = _plate(tmp_path)
    page = _page_bytes(local)
    uri, log = _upload(local, where, s3_server, http_server, "ds-sel", monkeypatch)
    ds = OMEArrowDataset.scan(uri)
    ds[0].to_numpy()  # audits image 0's row groups (no lookup of the chunks object: its size is listed)
    log.clear()
    image = ds[3]
    assert log.requests() == []  # ds[i] reads no metadata: the mirror has it
    crop = image.tensor_view(c=1, z=2, roi=(5, 7, 20, 11), layout="YX").to_numpy()
    np.testing.assert_array_equal(crop, IMAGES[3][1, 2, 7:18, 5:25])
    (get,) = log.requests()  # one chunk: its page, and (first read of it) its row group's small columns
    assert get[0] == "GET" and page <= get[3] <= page + 1024, (get, page)
    log.clear()
    again = ds[3].tensor_view(c=1, z=2, layout="YX").to_numpy()  # the plane again: now its page alone
    np.testing.assert_array_equal(again, IMAGES[3][1, 2])
    assert [(m, n) for m, _, _, n in log.requests()] == [("GET", page)]
    log.clear()
    whole = ds[4].tensor_view(layout="CZYX").to_numpy()
    np.testing.assert_array_equal(whole, IMAGES[4])
    methods, sent = _counts(log)
    # six chunks of one image lie side by side: one coalesced GET, about the pixels' own size
    assert methods == Counter(GET=1) and IMAGES[4].nbytes <= sent <= IMAGES[4].nbytes + 6 * 1024, log.requests()


@pytest.mark.parametrize("where", ["s3", "http"])
def test_batch_read_coalesces_neighbouring_pages(
    tmp_path: Path, where: str, s3_server: S3Server, http_server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = _plate(tmp_path)
    uri, log = _upload(local, where, s3_server, http_server, "ds-batch", monkeypatch)
    ds = OMEArrowDataset.scan(uri)
    log.clear()
    batch = ds.read([1, 2, 5], c=0, z=1, layout="YX")
    for k, i in enumerate([1, 2, 5]):
        np.testing.assert_array_equal(batch[k], IMAGES[i][0, 1])
    gets = [e for e in log.requests() if e[0] == "GET"]
    # pages under 64 KiB apart share a GET: images 1 and 2 in one, image 5 (three images on) in another at most
    assert 1 <= len(gets) <= 2 and len(log.requests()) <= 3, log.requests()
    assert sum(e[3] for e in gets) < (local / "chunks.parquet").stat().st_size / 2


def test_omearrow_scan_of_a_dataset_uri_and_filesystem_arguments(
    tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = _plate(tmp_path)
    uri, _ = _upload(local, "s3", s3_server, None, "ds-fs", monkeypatch)  # type: ignore[arg-type]
    img = OMEArrow.scan(uri, row=2)
    np.testing.assert_array_equal(img.tensor_view(layout="CZYX").to_numpy(), IMAGES[2])
    ds = OMEArrowDataset.scan("ds-fs/plate.ome.parquet", filesystem=s3_server.filesystem())
    np.testing.assert_array_equal(ds[5].tensor_view(layout="CZYX").to_numpy(), IMAGES[5])
    s3fs = pytest.importorskip("s3fs")
    fs = s3fs.S3FileSystem(endpoint_url=s3_server.endpoint, key="testing", secret="testing")
    ds = OMEArrowDataset.scan("s3://ds-fs/plate.ome.parquet", filesystem=fs)
    np.testing.assert_array_equal(ds[1].tensor_view(layout="CZYX").to_numpy(), IMAGES[1])
    np.testing.assert_array_equal(
        OMEArrowDataset.scan(local.as_uri())[0].tensor_view(layout="CZYX").to_numpy(), IMAGES[0]
    )


def test_an_append_after_open_is_seen_by_the_next_scan(
    tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = _plate(tmp_path)
    uri, _ = _upload(local, "s3", s3_server, None, "ds-append", monkeypatch)  # type: ignore[arg-type]
    before = OMEArrowDataset.scan(uri)
    extra = random_pixels(SHAPE, seed=99)
    write_dataset([extra], local, mode="append", dim_order="CZYX", chunk_shape=(1, 1, 1, 64, 64), progress=False)
    _upload(local, "s3", s3_server, None, "ds-append", monkeypatch)  # type: ignore[arg-type]
    after = OMEArrowDataset.scan(uri)
    assert len(before) == len(IMAGES) and len(after) == len(IMAGES) + 1
    np.testing.assert_array_equal(after[len(IMAGES)].tensor_view(layout="CZYX").to_numpy(), extra)
    np.testing.assert_array_equal(before[3].tensor_view(layout="CZYX").to_numpy(), IMAGES[3])


@pytest.mark.parametrize("where", ["s3", "http"])
def test_damaged_chunk_bytes_fail_the_checksum(
    tmp_path: Path, where: str, s3_server: S3Server, http_server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = _plate(tmp_path)
    md = pq.ParquetFile(local / "chunks.parquet").metadata
    col = md.row_group(7).column(md.schema.names.index("pixel_bytes"))
    raw = bytearray((local / "chunks.parquet").read_bytes())
    raw[col.data_page_offset + col.total_compressed_size - 100] ^= 0xFF  # a pixel of chunk 7 (image 1)
    (local / "chunks.parquet").write_bytes(bytes(raw))
    uri, _ = _upload(local, where, s3_server, http_server, "ds-flip", monkeypatch)
    ds = OMEArrowDataset.scan(uri)
    np.testing.assert_array_equal(ds[0].tensor_view(layout="CZYX").to_numpy(), IMAGES[0])
    with pytest.raises(ChecksumError) as caught:
        ds[1].to_numpy()
    # named as the user named it: the dataset's object, never the local mirror they did not know of
    assert str(caught.value).startswith(
        f"{uri.rstrip('/')}/chunks.parquet: the bytes of chunk 7 of image 'image-00001'"
    )
    assert "ome-arrow-remote" not in str(caught.value)


@pytest.mark.parametrize("where", ["s3", "http"])
def test_truncated_chunks_object_is_damage_not_zeros(
    tmp_path: Path, where: str, s3_server: S3Server, http_server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = _plate(tmp_path)
    uri, _ = _upload(local, where, s3_server, http_server, "ds-trunc", monkeypatch)
    ds = OMEArrowDataset.scan(uri)
    data = (local / "chunks.parquet").read_bytes()[:20_000]  # replaced by a shorter object while open
    if where == "http":
        (http_server.root / local.name / "chunks.parquet").write_bytes(data)
    else:
        s3_server.put("ds-trunc", f"{local.name}/chunks.parquet", data)
    with pytest.raises(DamagedFileError) as caught:
        ds[5].to_numpy()
    assert str(caught.value).startswith(f"{uri.rstrip('/')}/chunks.parquet: ") and "truncated" in str(caught.value)
    assert "ome-arrow-remote" not in str(caught.value)


def test_damaged_manifest_missing_dataset_and_refused_requests(
    tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = _plate(tmp_path)
    uri, _ = _upload(local, "s3", s3_server, None, "ds-bad", monkeypatch)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="holds no OME-Arrow dataset"):
        OMEArrowDataset.scan("s3://ds-bad/nothing-here")
    with s3_server.denying(), pytest.raises(StorageError, match="access denied"):
        OMEArrowDataset.scan(uri)
    s3_server.fail("GET", r"/ds-bad/plate.ome.parquet/index.parquet$", 403)
    with pytest.raises(StorageError, match="index.parquet"):
        OMEArrowDataset.scan(uri)
    s3_server.put("ds-bad", f"{local.name}/images.parquet", b"PAR1 not a table PAR1")  # a table the digest refuses
    with pytest.raises(DamagedFileError):  # (a scan counts by the manifest: the first read checks the footer)
        OMEArrowDataset.scan(uri)[0].to_numpy()
    s3_server.put("ds-bad", f"{local.name}/_ome_arrow_dataset.json", b"{not json")
    with pytest.raises(DamagedFileError, match="JSON"):
        OMEArrowDataset.scan(uri)


def test_a_placeholder_is_never_read_as_pixels(
    tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tools that read local bytes refuse the mirror's stand-ins for remote chunk files instead of reading zeros."""
    from ome_arrow_core.typed_chunk.parquet_pages import page_ranges
    from ome_arrow_core.verification import verify

    local = _plate(tmp_path)
    uri, _ = _upload(local, "s3", s3_server, None, "ds-stand", monkeypatch)  # type: ignore[arg-type]
    ds = OMEArrowDataset.scan(uri)
    mirror = Path(ds.locate(0).path)
    assert (mirror / "chunks.parquet").stat().st_size == (local / "chunks.parquet").stat().st_size
    with pytest.raises(ArgumentError, match="s3://ds-stand/plate.ome.parquet/chunks.parquet"):
        page_ranges(mirror / "chunks.parquet")
    with pytest.raises(ArgumentError, match="copy it to a local disk"):
        verify(uri)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    i=st.integers(0, len(IMAGES) - 1),
    c=st.integers(0, 1),
    z=st.integers(0, 2),
    x0=st.integers(0, 63),
    y0=st.integers(0, 63),
    w=st.integers(1, 64),
    h=st.integers(1, 64),
)
def test_any_crop_over_http_equals_the_local_read(
    tmp_path_factory: pytest.TempPathFactory,
    http_server: HTTPServer,
    i: int,
    c: int,
    z: int,
    x0: int,
    y0: int,
    w: int,
    h: int,
) -> None:
    pytest.importorskip("fsspec")
    if not (http_server.root / "plate.ome.parquet").exists():
        shutil.copytree(_plate(tmp_path_factory.mktemp("plate")), http_server.root / "plate.ome.parquet")
    ds = OMEArrowDataset.scan(f"{http_server.url}/plate.ome.parquet")
    w, h = min(w, 64 - x0), min(h, 64 - y0)
    got = ds[i].tensor_view(c=c, z=z, roi=(x0, y0, w, h), layout="YX").to_numpy()
    np.testing.assert_array_equal(got, IMAGES[i][c, z, y0 : y0 + h, x0 : x0 + w])


def _refuse(*a: Any, **k: Any) -> None:
    raise AssertionError("the images table's footer was read")


@pytest.mark.parametrize("where", ["s3", "http"])
@pytest.mark.parametrize("value_file", ["served", "missing", "damaged"])
def test_a_remote_filter_reads_the_mirrored_value_index(
    tmp_path: Path,
    where: str,
    value_file: str,
    s3_server: S3Server,
    http_server: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The value index file the manifest names is mirrored (never stood in for by a placeholder of zeros): a remote
    mapping filter reads it and no footer, and keeps what the local one keeps. A value file the server does not
    have leaves the filter to the footers; a damaged one is refused, as on a local disk."""
    from ome_arrow_core.dataset import column_filter

    local = tmp_path / "wells.ome.parquet"
    wells = [f"A0{i % 3}" for i in range(len(IMAGES))]
    write_dataset(IMAGES, local, dim_order="CZYX", metadata=[{"well": w} for w in wells], progress=False)
    (value,) = [p for p in local.iterdir() if p.name.startswith("_ome_arrow_values.")]
    if value_file == "missing":
        value.unlink()
    elif value_file == "damaged":
        data = bytearray(value.read_bytes())
        data[-3] ^= 0x01  # in the last value's rows
        value.write_bytes(bytes(data))
    uri, _ = _upload(local, where, s3_server, http_server, f"ds-values-{value_file}", monkeypatch)
    mirror = Path(OMEArrowDataset.scan(uri).locate(0).path)
    assert (mirror / value.name).is_file() == (value_file != "missing")
    for well in ("A00", "A01", "A02"):
        want = [i for i, w in enumerate(wells) if w == well]
        if value_file == "damaged" and well == "A02":
            with pytest.raises(ChecksumError):
                OMEArrowDataset.scan(uri).filter({"well": well})
            continue
        real = column_filter.pq.read_metadata, column_filter.check_table_footers
        if value_file != "missing":  # (patched, then put back, by hand: undo() would drop the server's endpoint)
            column_filter.pq.read_metadata, column_filter.check_table_footers = _refuse, _refuse
        try:
            got = OMEArrowDataset.scan(uri).filter({"well": well})
        finally:
            column_filter.pq.read_metadata, column_filter.check_table_footers = real
        assert [got.locate(k).row for k in range(len(got))] == want
        for k, i in enumerate(want):
            np.testing.assert_array_equal(got[k].tensor_view(layout="CZYX").to_numpy(), IMAGES[i])


@pytest.mark.parametrize("where", ["s3", "http"])
def test_a_remote_plate_with_its_row_group_lists_in_a_sidecar_reads_its_pixels(
    tmp_path: Path, where: str, s3_server: S3Server, http_server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The row-group lists' sidecar (see ome_arrow_core.typed_chunk.group_lists) and the image records are not
    mirrored, nor stood in for by placeholders of zeros (which would fail their digests; the records' did): the
    mirrored tables are hashed whole and serve each image's row, as before."""
    local = tmp_path / "many.ome.parquet"
    images = [random_pixels((1, 8, 8), seed=i) for i in range(48)]
    opts = {"dim_order": "CYX", "images_per_group": 1, "rows_per_group": 2, "progress": False}
    write_dataset(images, local, **opts)  # type: ignore[arg-type]
    assert any(p.name.startswith("_ome_arrow_groups.") for p in local.iterdir())
    assert (local / "images.records").is_file()
    uri, _ = _upload(local, where, s3_server, http_server, "ds-groups", monkeypatch)
    ds = OMEArrowDataset.scan(uri)
    assert len(ds) == 48
    for i in (0, 17, 47):
        np.testing.assert_array_equal(ds[i].tensor_view(layout="CYX").to_numpy(), images[i])


@pytest.mark.parametrize("where", ["s3", "http"])
def test_a_remote_plate_with_image_records_reads_through_its_images_tables(
    tmp_path: Path, where: str, s3_server: S3Server, http_server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plate of one-chunk images has image records (images.records, images-00001.records): they are not mirrored
    (a placeholder of zeros stood in for them on object stores, and ds[i] was refused for its page sums); ds[i]
    then reads the images tables, as a plate without records does, and keeps what the local plate keeps."""
    from ome_arrow_core.typed_chunk.opening import open_dataset

    images = [random_pixels((1, 6, 5), seed=i) for i in range(12)]
    wells = [f"A0{i % 3}" for i in range(12)]
    local = tmp_path / "records.ome.parquet"
    write_dataset(images[:8], local, dim_order="CYX", metadata={"well": wells[:8]}, progress=False)
    write_dataset(images[8:], local, mode="append", dim_order="CYX", metadata={"well": wells[8:]}, progress=False)
    assert {"images.records", "images-00001.records"} <= {p.name for p in local.iterdir()}
    uri, _ = _upload(local, where, s3_server, http_server, "ds-records", monkeypatch)
    ds = OMEArrowDataset.scan(uri)
    mirror = Path(ds.locate(0).path)
    assert not list(mirror.glob("*.records"))
    for i in (11, 0, 5, 8):
        np.testing.assert_array_equal(ds[i].to_numpy(layout="CYX"), images[i])
        assert ds[i].meta == OMEArrowDataset.scan(local)[i].meta
    np.testing.assert_array_equal(ds.read([3, 9]), np.stack([images[3], images[9]]))
    records = open_dataset(mirror).images.records
    assert records is None or records.readers == [None, None]  # the tables served
    got = OMEArrowDataset.scan(uri, filter={"well": "A01"})
    assert [got.locate(k).row for k in range(len(got))] == [i for i, w in enumerate(wells) if w == "A01"]


def test_a_server_that_ignores_range_still_serves_the_right_pixels(
    tmp_path: Path, plain_http_server: HTTPServer
) -> None:
    pytest.importorskip("fsspec")
    a = np.arange(2 * 64 * 64, dtype=np.uint16).reshape(2, 64, 64)
    local = write_dataset([a, a + 1], tmp_path / "x.ome.parquet", dim_order="CYX", progress=False)
    shutil.copytree(local, plain_http_server.root / local.name)
    uri = f"{plain_http_server.url}/{local.name}"
    ds = OMEArrowDataset.scan(uri)  # each ranged GET answered with the whole file (it was called truncated)
    np.testing.assert_array_equal(ds[1].to_numpy()[0, :, 0], a + 1)
    np.testing.assert_array_equal(ds.read([0, 1])[:, 1], np.stack([a[1], a[1] + 1]))
    crop = OMEArrow.scan(uri).tensor_view(c=1, roi=(3, 4, 20, 10), layout="YX").to_numpy()
    np.testing.assert_array_equal(crop, a[1, 4:14, 3:23])


def test_a_reference_dataset_reads_from_a_server_that_ignores_range(
    tmp_path: Path, plain_http_server: HTTPServer
) -> None:
    pytest.importorskip("fsspec")
    local = Path(__file__).parent / "data" / "reference" / "oa010_dataset_default.ome-arrow"  # zstd, no page ranges
    shutil.copytree(local, plain_http_server.root / local.name)
    uri = f"{plain_http_server.url}/{local.name}"
    # read through the chunks file's footer: fsspec's file refused the whole-object answer, DamagedFileError
    np.testing.assert_array_equal(OMEArrowDataset.scan(uri).read(), OMEArrowDataset.scan(local).read())
    damaged = shutil.copytree(local, plain_http_server.root / "damaged.ome-arrow")
    raw = bytearray((damaged / "chunks.parquet").read_bytes())
    raw[200:2000] = bytes(b ^ 0xFF for b in raw[200:2000])
    (damaged / "chunks.parquet").write_bytes(bytes(raw))
    with pytest.raises(DamagedFileError, match=f"{plain_http_server.url}/damaged.ome-arrow/chunks.parquet"):
        OMEArrowDataset.scan(f"{plain_http_server.url}/damaged.ome-arrow").read()  # named its local mirror only


def test_a_crop_s_pages_apart_are_fetched_side_by_side(
    tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from ome_arrow_core.remote.chunks import RemoteChunk

    image = random_pixels((2, 3, 256, 256), seed=3)  # C, Z, Y, X: a chunk a plane (128 KiB), stored c-major
    local = tmp_path / "apart.ome.parquet"
    write_dataset([image], local, dim_order="CZYX", chunk_shape=(1, 1, 1, 256, 256), progress=False)
    uri, log = _upload(local, "s3", s3_server, None, "ds-apart", monkeypatch)  # type: ignore[arg-type]
    ds = OMEArrowDataset.scan(uri)
    ds[0].tensor_view(c=0, z=1, layout="YX").to_numpy()  # audited once (its row group's columns)
    met = threading.Barrier(2, timeout=10)  # both channels' pages (256 KiB apart: two GETs) in flight together
    read_at = RemoteChunk.read_at

    def meeting(self: RemoteChunk, start: int, length: int) -> bytes:
        met.wait()
        return read_at(self, start, length)

    monkeypatch.setattr(RemoteChunk, "read_at", meeting)
    log.clear()
    crop = ds[0].tensor_view(z=2, roi=(10, 20, 100, 50), layout="CYX").to_numpy()
    np.testing.assert_array_equal(crop, image[:, 2, 20:70, 10:110])
    assert [m for m, *_ in log.requests()] == ["GET", "GET"], log.requests()
