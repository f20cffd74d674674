"""Struct-record Parquet files read from real remote servers (moto S3, a Range-honouring HTTP server).

Bit-exact pixels for every dtype, only the row group a record lives in fetched, and damaged or
missing objects answered with our errors.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from servers import HTTPServer, S3Server

from ome_arrow_core import OMEArrow, OMEArrowDataset, write_dataset
from ome_arrow_core.errors import ArgumentError, DamagedFileError, UnsafeOverwriteError
from ome_arrow_core.meta import ImageMeta
from ome_arrow_core.record import pixels_to_record

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64"]


def _pixels(dtype: str, shape: tuple[int, ...] = (1, 2, 2, 33, 47), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)


def _record_file(tmp_path: Path, arr: np.ndarray, name: str = "img.ome.parquet") -> Path:
    out = tmp_path / name
    OMEArrow(arr, "TZCYX").export("parquet", out, layout="record")
    return out


def _many_rows(tmp_path: Path, n: int) -> tuple[Path, list[np.ndarray]]:
    """A CytoDataFrame-style table: ``n`` rows, one image each, one row group per row."""
    arrays = [_pixels("uint16", (1, 1, 1, 64, 64), seed=i) for i in range(n)]
    records = [pixels_to_record(ImageMeta(sizes=dict(zip("TZCYX", a.shape)), dtype=a.dtype), a) for a in arrays]
    out = tmp_path / "table.parquet"
    pq.write_table(pa.table({"ome_arrow": pa.concat_arrays(records)}), out, row_group_size=1)
    return out, arrays


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> tuple[pafs.S3FileSystem, str]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    fs = pafs.S3FileSystem(endpoint_override=s3_server.endpoint.split("://")[1], scheme="http", region="us-east-1")
    return fs, s3_server.bucket("records")


def _upload(fs: pafs.FileSystem, local: Path, key: str) -> None:
    with fs.open_output_stream(key) as out:
        out.write(local.read_bytes())


@pytest.mark.parametrize("dtype", DTYPES)
def test_s3_record_reads_bit_exact(tmp_path: Path, s3: tuple[pafs.S3FileSystem, str], dtype: str) -> None:
    fs, bucket = s3
    arr = _pixels(dtype)
    _upload(fs, _record_file(tmp_path, arr), f"{bucket}/{dtype}/img.ome.parquet")
    img = OMEArrow.scan(f"s3://{bucket}/{dtype}/img.ome.parquet")
    assert img.is_lazy and img.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(img.to_numpy(layout="TZCYX"), arr)  # bit for bit: no cast
    assert img.info()["path"] == f"s3://{bucket}/{dtype}/img.ome.parquet"
    crop = img.tensor_view(t=0, z=1, roi=(5, 7, 20, 11), layout="CYX").to_numpy()
    np.testing.assert_array_equal(crop, arr[0, 1, :, 7:18, 5:25])


def test_http_reads_only_the_row_group_of_the_row(tmp_path: Path, http_server: HTTPServer) -> None:
    pytest.importorskip("fsspec")
    local, arrays = _many_rows(tmp_path, 16)
    (http_server.root / "table.parquet").write_bytes(local.read_bytes())
    http_server.log.clear()
    img = OMEArrow(f"{http_server.url}/table.parquet", row=11)
    np.testing.assert_array_equal(img.to_numpy(layout="TZCYX"), arrays[11])
    md = pq.ParquetFile(local).metadata
    spans = []  # byte span of each row group's column chunks
    for g in range(md.num_row_groups):
        cols = [md.row_group(g).column(c) for c in range(md.row_group(g).num_columns)]
        starts = [min(x for x in (c.dictionary_page_offset, c.data_page_offset) if x is not None) for c in cols]
        spans.append((min(starts), max(s + c.total_compressed_size for s, c in zip(starts, cols))))
    gets = [(start, start + n) for _, _, start, n in http_server.log.gets("table.parquet")]
    touched = {g for g, (a, b) in enumerate(spans) for lo, hi in gets if lo < b and a < hi}
    footer_start = local.stat().st_size - md.serialized_size - 8
    # the footer's tail read may reach back into the last groups; pixels come from group 11 only
    assert touched - {11} <= {g for g, (a, b) in enumerate(spans) if b > footer_start - (64 << 10)}, (touched, gets)
    assert any(lo <= spans[11][0] and spans[11][1] <= hi for lo, hi in gets)


def test_fsspec_filesystem_argument(tmp_path: Path) -> None:
    fsspec = pytest.importorskip("fsspec")
    arr = _pixels("float32")
    mem = fsspec.filesystem("memory")
    mem.pipe("/bkt/x.ome.parquet", _record_file(tmp_path, arr).read_bytes())
    img = OMEArrow.scan("bkt/x.ome.parquet", filesystem=mem)
    np.testing.assert_array_equal(img.to_numpy(layout="TZCYX"), arr)


def test_missing_object_is_file_not_found(s3: tuple[pafs.S3FileSystem, str]) -> None:
    _, bucket = s3
    with pytest.raises(FileNotFoundError, match=f"s3://{bucket}/nope.ome.parquet"):
        OMEArrow.scan(f"s3://{bucket}/nope.ome.parquet")


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_remote_record_raises_ours(tmp_path: Path, s3: tuple[pafs.S3FileSystem, str], damage: str) -> None:
    fs, bucket = s3
    local = _record_file(tmp_path, _pixels("uint16"))
    data = bytearray(local.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:  # the middle of the planes' pixel pages: the plane checksums catch it
        group = pq.ParquetFile(local).metadata.row_group(0)
        col = next(
            group.column(c)
            for c in range(group.num_columns)
            if group.column(c).path_in_schema.startswith("ome_arrow.planes.list.element.pixels")
        )
        data[col.data_page_offset + col.total_compressed_size // 2] ^= 0x10
    key = f"{bucket}/damaged-{damage}.ome.parquet"
    with fs.open_output_stream(key) as out:
        out.write(bytes(data))
    with pytest.raises(DamagedFileError, match=f"s3://{key}"):
        OMEArrow(f"s3://{key}").to_numpy()


def test_remote_dataset_directory_opens_as_an_image(tmp_path: Path, s3: tuple[pafs.S3FileSystem, str]) -> None:
    fs, bucket = s3
    ds = tmp_path / "ds.ome.parquet"
    arr = _pixels("uint8")
    OMEArrow(arr).export("parquet", ds)
    for f in ds.iterdir():
        _upload(fs, f, f"{bucket}/ds.ome.parquet/{f.name}")
    np.testing.assert_array_equal(OMEArrow.scan(f"s3://{bucket}/ds.ome.parquet").to_numpy(), OMEArrow(arr).to_numpy())


def test_local_file_uri_is_the_local_reader(tmp_path: Path) -> None:
    arr = _pixels("int8")
    out = _record_file(tmp_path, arr)
    np.testing.assert_array_equal(OMEArrow(f"file://{out}").to_numpy(layout="TZCYX"), arr)
    assert OMEArrow(f"file://{out}").info()["path"] == str(out)


def test_a_local_only_reader_refuses_remote_targets(s3: tuple[pafs.S3FileSystem, str]) -> None:
    from ome_arrow_core import Reader, Registry, hookimpl

    class LocalOnly:
        @hookimpl
        def ome_arrow_readers(self) -> list[Reader]:
            return [Reader(name="localonly", suffixes=(".lonly",), open=lambda p, **_: None)]

    fs, bucket = s3
    with fs.open_output_stream(f"{bucket}/x.lonly") as out:
        out.write(b"x")
    reg = Registry(autoload=False)
    reg.register(LocalOnly(), name="localonly")
    with pytest.raises(ArgumentError, match="reader reads local files only"):
        OMEArrow(f"s3://{bucket}/x.lonly", registry=reg)
    assert not os.path.exists(f"s3:/{bucket}/x.lonly")  # no mangled local path was created or probed into being


def test_s3_write_round_trips_and_replaces(tmp_path: Path, s3: tuple[pafs.S3FileSystem, str]) -> None:
    fs, bucket = s3
    first, second = _pixels("float64", seed=1), _pixels("float64", seed=2)
    uri = f"s3://{bucket}/written/img.ome.parquet"
    OMEArrow(first, "TZCYX").export("parquet", uri, layout="record")
    np.testing.assert_array_equal(OMEArrow(uri).to_numpy(layout="TZCYX"), first)
    OMEArrow(second, "TZCYX").export("parquet", uri, layout="record")
    np.testing.assert_array_equal(OMEArrow(uri).to_numpy(layout="TZCYX"), second)
    keys = [i.path for i in fs.get_file_info(pafs.FileSelector(f"{bucket}/written"))]
    assert keys == [f"{bucket}/written/img.ome.parquet"]  # no temporary key left behind


def test_a_remote_dataset_export_is_written_and_http_write_refused(
    http_server: HTTPServer, s3: tuple[pafs.S3FileSystem, str]
) -> None:
    _, bucket = s3
    pixels = _pixels("uint8")
    img = OMEArrow(pixels)
    uri = f"s3://{bucket}/ds.ome.parquet"
    img.export(out=uri)  # a dataset directory, as write_dataset writes one there (refused before)
    np.testing.assert_array_equal(OMEArrow.scan(uri).to_numpy(), img.to_numpy())
    write_dataset([pixels, pixels, pixels], uri, mode="overwrite", progress=False)
    with pytest.raises(UnsafeOverwriteError, match="holds a dataset of 3 images and this export writes 1"):
        img.export("parquet", uri)  # a plate is not replaced by one image unasked
    assert len(OMEArrowDataset.scan(uri)) == 3
    with pytest.raises(ArgumentError, match="HTTP\\(S\\) locations are read-only"):
        img.export("parquet", f"{http_server.url}/x.ome.parquet", layout="record")


_WRITER = """
import os, sys, numpy as np
from ome_arrow_core import OMEArrow
os.environ["AWS_ENDPOINT_URL"] = sys.argv[1]
arr = np.full((1, 8, 1, 1024, 1024), 7, dtype=np.uint16)
print("start", flush=True)
OMEArrow(arr, "TZCYX").export("parquet", sys.argv[2], layout="record", compression="none")
"""


def _run_writer(endpoint: str, uri: str, kill_after: float | None, signum: int = 9) -> float:
    """Run the writer in a child; send ``signum`` ``kill_after`` seconds after it starts writing. Seconds it ran."""
    import subprocess
    import sys
    import time

    with subprocess.Popen([sys.executable, "-c", _WRITER, endpoint, uri], stdout=subprocess.PIPE) as child:
        assert child.stdout is not None and child.stdout.readline().strip() == b"start"
        began = time.monotonic()
        if kill_after is None:
            assert child.wait() == 0
        else:
            time.sleep(kill_after)
            child.send_signal(signum)
            if child.wait(60) is None:
                child.kill()
        return time.monotonic() - began


@pytest.mark.parametrize("signum", [2, 9], ids=["SIGINT", "SIGKILL"])
def test_killed_remote_write_leaves_the_old_object(
    s3_server: S3Server, s3: tuple[pafs.S3FileSystem, str], signum: int
) -> None:
    """SIGINT unwinds through the upload (a naive ``with`` would complete a partial object); SIGKILL does not."""
    _fs, bucket = s3
    old = _pixels("uint16", seed=5)
    full = _run_writer(s3_server.endpoint, f"s3://{bucket}/killed/timing.ome.parquet", None)
    for fraction in (0.4, 0.8):  # inside the local write, then the upload and move
        uri = f"s3://{bucket}/killed/img-{signum}-{fraction}.ome.parquet"
        OMEArrow(old, "TZCYX").export("parquet", uri, layout="record")
        _run_writer(s3_server.endpoint, uri, full * fraction, signum)
        got = OMEArrow(uri).to_numpy(layout="TZCYX")  # the old image or the whole new one, never a part
        assert np.array_equal(got, old) or (got.shape == (1, 8, 1, 1024, 1024) and bool((got == 7).all()))


@pytest.mark.parametrize("failing", ["upload", "move"])
def test_a_write_the_store_fails_leaves_the_old_object(
    s3_server: S3Server, s3: tuple[pafs.S3FileSystem, str], failing: str
) -> None:
    """The store refuses the upload of the temporary key, or the server-side copy onto the target."""
    from ome_arrow_core.errors import StorageError

    _fs, bucket = s3
    uri = f"s3://{bucket}/refused/{failing}.ome.parquet"
    old = _pixels("uint16", seed=8)
    OMEArrow(old, "TZCYX").export("parquet", uri, layout="record")
    key = f"/{bucket}/refused/{failing}.ome.parquet"
    s3_server.fail("PUT", f"^{key}\\.tmp-" if failing == "upload" else f"^{key}$")
    try:
        with pytest.raises(StorageError, match=uri):
            OMEArrow(_pixels("uint16", seed=9), "TZCYX").export("parquet", uri, layout="record")
    finally:
        s3_server.clear_faults()
    np.testing.assert_array_equal(OMEArrow(uri).to_numpy(layout="TZCYX"), old)
