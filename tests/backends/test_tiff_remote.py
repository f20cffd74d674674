"""OME-TIFF on remote storage (moto S3, a Range-honouring HTTP server): reads fetch only the strips or tiles a
selection needs, merged with their neighbours; writes replace the object in one step; damage is caught."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pytest

tifffile = pytest.importorskip("tifffile", reason="needs tifffile (pip install -e backends/tiff)")
pytest.importorskip("ome_arrow_tiff", reason="needs ome-arrow-tiff (pip install -e backends/tiff)")

from servers import HTTPServer, S3Server, serve  # noqa: E402

from ome_arrow_core import OMEArrow, Selection  # noqa: E402
from ome_arrow_core.errors import ChecksumError, DamagedFileError, StorageError  # noqa: E402
from ome_arrow_tiff.remote import merge_ranges  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
SHAPE = (1, 3, 2, 512, 384)  # TZCYX: 6 planes of 384 KiB (uint16)


def _pixels(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 60000, SHAPE, dtype=np.uint16)


def _tiff(tmp_path: Path, arr: np.ndarray, **options: object) -> Path:
    out = tmp_path / f"img{len(options)}.ome.tiff"
    OMEArrow(arr, "TZCYX").export("ome-tiff", out, **options)
    return out


@pytest.mark.parametrize("where", ["s3", "http"])
@pytest.mark.parametrize("kind", ["strips", "tiles-zlib"])
def test_remote_tiff_reads_bit_exact_and_only_what_a_plane_needs(
    tmp_path: Path, where: str, kind: str, s3_server: S3Server, http_server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    arr = _pixels()
    options: dict[str, object] = {} if kind == "strips" else {"tile": (128, 128), "compression": "zlib"}
    local = _tiff(tmp_path, arr, **options)
    size = local.stat().st_size
    name = f"{kind}.ome.tiff"
    uri, log = serve(where, name, local.read_bytes(), s3_server, http_server, monkeypatch, bucket="tiffs")
    np.testing.assert_array_equal(OMEArrow(uri).to_numpy(layout="TZCYX"), arr)  # bit for bit, checksums verified
    plane_bytes = arr[0, 0, 0].nbytes

    log.clear()
    img = OMEArrow.scan(uri)
    opened = Counter(m for m, *_ in log.requests(name))
    opened_bytes = log.bytes_sent(name)
    np.testing.assert_array_equal(img.tensor_view(t=0, z=2, c=1, layout="YX").to_numpy(), arr[0, 2, 1])
    gets = [e for e in log.requests(name) if e[0] == "GET"][opened["GET"] :]
    # the plane's strips are contiguous: one GET; its tiles (compressed, stored in order) merge into one GET
    assert len(gets) == 1, gets
    assert sum(n for *_, n in gets) <= plane_bytes + (64 << 10)
    # opening reads the header and OME-XML; a series that is not one contiguous block also walks the IFD
    # chain (one 64 KiB block per page: TIFF has no index of its pages)
    pages = 1 if kind == "strips" else SHAPE[1] * SHAPE[2]
    # one lookup: its size opens the file (a second HEAD before 2026-12, pyarrow's own on open_input_file)
    assert opened["HEAD"] == 1 and opened["GET"] <= pages + 1 and opened_bytes < size / 3, log.requests(name)

    log.clear()
    crop = img.tensor_view(t=0, z=1, c=0, roi=(10, 300, 50, 40), layout="YX").to_numpy()
    np.testing.assert_array_equal(crop, arr[0, 1, 0, 300:340, 10:60])
    # a checked crop reads whole strips (their checksums cover whole strips), or the one tile it lies in
    assert len(log.gets(name)) <= 2 and log.bytes_sent(name) <= (256 << 10), log.requests(name)

    log.clear()  # a tall, thin crop: one tile of each tile row, not adjacent in the file: merged into one GET
    tall = img.tensor_view(t=0, z=0, c=1, roi=(5, 5, 40, 500), layout="YX").to_numpy()
    np.testing.assert_array_equal(tall, arr[0, 0, 1, 5:505, 5:45])
    assert len(log.gets(name)) == 1, log.requests(name)


def test_merge_ranges_joins_neighbours_within_the_gap() -> None:
    assert merge_ranges([(100, 200), (0, 40), (250, 300), (10_000, 10_010)], gap=50) == [
        (0, 40),
        (100, 300),
        (10_000, 10_010),
    ]
    assert merge_ranges([(0, 10), (5, 8), (10, 10)], gap=0) == [(0, 10)]


def test_s3_write_round_trips_replaces_and_leaves_no_temporary(
    tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    bucket = s3_server.bucket("tiffs")
    uri = f"s3://{bucket}/written/img.ome.tiff"
    first, second = _pixels(1), _pixels(2)
    OMEArrow(first, "TZCYX").export("ome-tiff", uri)
    np.testing.assert_array_equal(OMEArrow(uri).to_numpy(layout="TZCYX"), first)
    OMEArrow(second, "TZCYX").export("ome-tiff", uri, tile=(128, 128))
    np.testing.assert_array_equal(OMEArrow(uri).to_numpy(layout="TZCYX"), second)
    keys = [i.path for i in s3_server.filesystem().get_file_info(pafs.FileSelector(f"{bucket}/written"))]
    assert keys == [f"{bucket}/written/img.ome.tiff"]


@pytest.mark.parametrize("failing", ["upload", "move"])
def test_a_write_the_store_fails_leaves_the_previous_object(
    tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    bucket = s3_server.bucket("tiffs")
    uri = f"s3://{bucket}/faults/{failing}.ome.tiff"
    old = _pixels(3)
    OMEArrow(old, "TZCYX").export("ome-tiff", uri)
    key = f"/{bucket}/faults/{failing}.ome.tiff"
    # the upload's parts go to a temporary key; the move is a server-side copy onto the key itself
    s3_server.fail("PUT", f"^{key}\\.tmp-" if failing == "upload" else f"^{key}$")
    try:
        with pytest.raises(StorageError, match=f"s3:/{key}"):
            OMEArrow(_pixels(4), "TZCYX").export("ome-tiff", uri)
    finally:
        s3_server.clear_faults()
    np.testing.assert_array_equal(OMEArrow(uri).to_numpy(layout="TZCYX"), old)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_remote_tiff_is_caught(
    tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    local = _tiff(tmp_path, _pixels(5))
    data = bytearray(local.read_bytes())
    with tifffile.TiffFile(local) as tif:
        page = tif.pages[3]
        at = page.dataoffsets[0] + page.databytecounts[0] // 2
    if damage == "truncate":
        data = data[:at]
    else:
        data[at] ^= 0x01
    uri, _ = serve("s3", f"damaged-{damage}.ome.tiff", bytes(data), s3_server, None, monkeypatch, bucket="tiffs")
    expected = ChecksumError if damage == "flip" else DamagedFileError
    with pytest.raises(expected, match=uri):
        OMEArrow(uri).to_numpy()


def test_missing_remote_tiff_is_file_not_found(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    uri = f"s3://{s3_server.bucket('tiffs')}/nope.ome.tiff"
    with pytest.raises(FileNotFoundError, match=uri):
        OMEArrow(uri)


def test_remote_source_pickles_as_its_location(
    tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pickle

    from ome_arrow_core.location import resolve
    from ome_arrow_tiff.reader import TiffSource

    arr = _pixels(6)
    uri, _ = serve(
        "s3", "pickled.ome.tiff", _tiff(tmp_path, arr).read_bytes(), s3_server, None, monkeypatch, bucket="tiffs"
    )
    with TiffSource(resolve(uri)) as src, pickle.loads(pickle.dumps(src)) as again:
        assert str(again.path) == uri and again.describe()["file_size"] == src.describe()["file_size"]
        np.testing.assert_array_equal(again.read(Selection.full(again.meta.sizes)), arr)


@pytest.mark.parametrize("where", ["s3", "http"])
def test_a_tiff_replaced_under_an_open_handle_is_not_served_stale(
    tmp_path: Path, where: str, s3_server: S3Server, http_server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    arr = _pixels(8)
    local = _tiff(tmp_path, arr, tile=(128, 128))
    uri, _ = serve(where, "swapped.ome.tiff", local.read_bytes(), s3_server, http_server, monkeypatch, bucket="tiffs")
    img = OMEArrow.scan(uri)  # opened with the size its lookup gave
    np.testing.assert_array_equal(img.tensor_view(t=0, z=0, c=0, layout="YX").to_numpy(), arr[0, 0, 0])
    data = bytearray(local.read_bytes())
    data[-(64 << 10) :] = bytes(64 << 10)  # the last plane's last tiles zeroed, the same size: checksums tell
    serve(where, "swapped.ome.tiff", bytes(data), s3_server, http_server, monkeypatch, bucket="tiffs")
    with pytest.raises(ChecksumError):
        img.tensor_view(t=0, z=2, c=1, layout="YX").to_numpy()
    serve(where, "swapped.ome.tiff", bytes(data[: len(data) // 2]), s3_server, http_server, monkeypatch, "tiffs")
    with pytest.raises(DamagedFileError):  # shorter now: a short read is damage, never zeros
        img.tensor_view(t=0, z=2, c=0, layout="YX").to_numpy()


def test_fsspec_filesystem_argument_writes_and_reads(tmp_path: Path) -> None:
    fsspec = pytest.importorskip("fsspec")
    mem = fsspec.filesystem("memory")
    arr = _pixels(7)
    OMEArrow(arr, "TZCYX").export("ome-tiff", "/tbucket/m.ome.tiff", filesystem=mem, tile=(128, 128))
    assert mem.ls("/tbucket", detail=False) == ["/tbucket/m.ome.tiff"]  # the temporary key was moved
    img = OMEArrow.scan("/tbucket/m.ome.tiff", filesystem=mem)
    np.testing.assert_array_equal(img.to_numpy(layout="TZCYX"), arr)
    assert img.info()["file"] == "/tbucket/m.ome.tiff"


def test_a_tiff_reads_from_a_server_that_ignores_range(tmp_path: Path, plain_http_server: HTTPServer) -> None:
    arr = _pixels(3)
    local = _tiff(tmp_path, arr)
    (plain_http_server.root / local.name).write_bytes(local.read_bytes())
    # fsspec's file refused the server's whole-object answers: DamagedFileError ("the file is damaged")
    got = OMEArrow.scan(f"{plain_http_server.url}/{local.name}").to_numpy()
    np.testing.assert_array_equal(got, OMEArrow.scan(local).to_numpy())
