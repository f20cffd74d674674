"""A remote plate's one-chunk images read by their pixel locators, counted by the S3 (moto) and HTTP test servers.

``ds[i]`` of a plate written with the defaults costs one ranged GET of exactly the image's pixel bytes (it cost its
chunks file's 64 KiB footer tail and its whole row group's page, 32 images: 73 KiB and 265 KiB for 8 KiB);
``ds.read`` fetches each run of neighbouring images in one GET and no byte twice. The bytes are always checked
against the locator's checksum (also with ``verify=False``): damage, or an object replaced or truncated under an
open handle, raises.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from servers import HTTPServer, S3Server
from test_remote_datasets import _upload

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_core.errors import ChecksumError, DamagedFileError
from ome_arrow_core.typed_chunk.locators import GAP_BYTES

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

N = 400
IMAGES = [np.random.default_rng(i).integers(0, 60000, (1, 1, 1, 64, 64), dtype=np.uint16) for i in range(N)]
NBYTES = 64 * 64 * 2


def _plate(tmp_path: Path) -> Path:
    out = tmp_path / "plate.ome.parquet"
    write_dataset(IMAGES, out, progress=False)  # the defaults: images packed into row groups, with pixel locators
    return out


def _replace(where: str, local: Path, s3: S3Server, http: HTTPServer, bucket: str, data: bytes) -> None:
    """Put ``data`` in place of the served plate's chunks object."""
    if where == "http":
        (http.root / local.name / "chunks.parquet").write_bytes(data)
    else:
        s3.put(bucket, f"{local.name}/chunks.parquet", data)


@pytest.mark.parametrize("where", ["s3", "http"])
def test_ds_i_fetches_exactly_its_pixel_bytes_in_one_get(
    tmp_path: Path, where: str, s3_server: S3Server, http_server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, log = _upload(_plate(tmp_path), where, s3_server, http_server, "loc-one", monkeypatch)
    ds = OMEArrowDataset.scan(uri)
    log.clear()
    np.testing.assert_array_equal(ds[123].to_numpy(), IMAGES[123])
    assert [(m, n) for m, p, _, n in log.requests()] == [("GET", NBYTES)], log.requests()
    log.clear()
    crop = ds[77].tensor_view(t=0, z=0, roi=(3, 5, 20, 10), layout="YX").to_numpy()
    np.testing.assert_array_equal(crop, IMAGES[77][0, 0, 0, 5:15, 3:23])
    assert [(m, n) for m, p, _, n in log.requests()] == [("GET", NBYTES)], log.requests()


@pytest.mark.parametrize("where", ["s3", "http"])
def test_a_batch_fetches_runs_of_neighbours_once_each(
    tmp_path: Path, where: str, s3_server: S3Server, http_server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, log = _upload(_plate(tmp_path), where, s3_server, http_server, "loc-batch", monkeypatch)
    ds = OMEArrowDataset.scan(uri)
    picks = np.random.default_rng(5).permutation(N)[:32].tolist()
    log.clear()
    batch = ds.read(picks)
    for k, i in enumerate(picks):
        np.testing.assert_array_equal(batch[k].reshape(IMAGES[i].shape), IMAGES[i])
    gets = log.requests()
    spans = sorted((start, start + n) for m, _, start, n in gets)
    assert all(m == "GET" for m, *_ in gets) and len(gets) <= 32, gets
    assert all(a[1] <= b[0] for a, b in pairwise(spans)), spans  # no byte fetched twice
    sent = sum(n for *_, n in gets)
    assert sent <= 32 * NBYTES + (32 - len(gets)) * GAP_BYTES, (sent, len(gets))  # pixels, and merged gaps only
    log.clear()
    run = ds.read(list(range(200, 240)))  # 40 neighbours, across row groups: one GET
    np.testing.assert_array_equal(run.reshape(40, *IMAGES[0].shape), np.stack(IMAGES[200:240]))
    ((method, _, _, sent),) = log.requests()
    assert method == "GET" and 40 * NBYTES <= sent <= 40 * NBYTES + 8 * 1024, sent


@pytest.mark.parametrize("where", ["s3", "http"])
@pytest.mark.parametrize("verify", [True, False])
def test_damaged_or_replaced_pixels_raise(
    tmp_path: Path,
    where: str,
    verify: bool,
    s3_server: S3Server,
    http_server: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local = _plate(tmp_path)
    bucket = f"loc-trust-{verify}".lower()
    uri, _ = _upload(local, where, s3_server, http_server, bucket, monkeypatch)
    ds = OMEArrowDataset.scan(uri, verify=verify)
    held = ds[10]  # a handle opened before the object changes
    np.testing.assert_array_equal(ds.read([300]).reshape(IMAGES[300].shape), IMAGES[300])  # another row group
    data = bytearray((local / "chunks.parquet").read_bytes())
    for i in (10, 11, 12):  # one pixel of each of these images, found by their bytes
        at = bytes(data).index(IMAGES[i].tobytes()[:64])
        data[at + 1000] ^= 0xFF
    _replace(where, local, s3_server, http_server, bucket, bytes(data))  # the same size: only checksums can tell
    with pytest.raises(ChecksumError):
        held.to_numpy()
    with pytest.raises(ChecksumError):
        ds[11].to_numpy()
    with pytest.raises(ChecksumError):
        ds.read([3, 12])
    np.testing.assert_array_equal(ds.read([350, 300]).reshape(2, 1, 1, 1, 64, 64), np.stack([IMAGES[350], IMAGES[300]]))
    _replace(where, local, s3_server, http_server, bucket, bytes(data[: len(data) // 2]))  # truncated under it
    with pytest.raises(DamagedFileError):
        ds[N - 1].to_numpy()
    with pytest.raises(DamagedFileError):
        ds.read([0, N - 2])


def test_a_batch_s_runs_are_in_flight_at_once_and_come_back_in_order() -> None:
    import threading

    from ome_arrow_core.remote import fetch_spans

    met = threading.Barrier(3, timeout=30)  # three runs: each waits for the other two (fetched in turn: broken)

    def read_at(start: int, length: int) -> bytes:
        met.wait()
        return bytes([start]) * length

    assert list(fetch_spans(read_at, [(7, 2), (3, 1), (5, 3)])) == [b"\x07\x07", b"\x03", b"\x05\x05\x05"]

    def failing(start: int, length: int) -> bytes:
        if start == 3:
            raise DamagedFileError("the third")
        return b"x" * length

    with pytest.raises(DamagedFileError, match="the third"):
        list(fetch_spans(failing, [(1, 1), (2, 1), (3, 1), (4, 1)]))


def test_runs_are_fetched_in_waves_of_bounded_bytes() -> None:
    import threading

    from ome_arrow_core.remote import fetch_spans

    lock, live, most = threading.Lock(), [0], [0]
    met = threading.Barrier(2, timeout=30)  # the first wave's two runs are in flight together

    def read_at(start: int, length: int) -> bytes:
        with lock:
            live[0] += 1
            most[0] = max(most[0], live[0])
        if start < 2:
            met.wait()
        with lock:
            live[0] -= 1
        return bytes([start]) * length

    spans = [(0, 2), (1, 1), (2, 2), (3, 2), (4, 9)]  # waves of 3 bytes: runs 0-1, then 2, 3 and 4 each alone
    assert list(fetch_spans(read_at, spans, wave_bytes=3)) == [bytes([a]) * n for a, n in spans]
    assert most[0] == 2
