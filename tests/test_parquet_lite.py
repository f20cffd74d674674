"""parquet_lite: pyarrow's Parquet reader without importing pyarrow.parquet. It reads what pyarrow.parquet reads
(same tables, footers, schemas, column selections, row groups, batches), refuses what it refuses with the same
errors, hands URIs, filesystems and other options to pyarrow.parquet, and a damaged table of a dataset read through
it still raises the library's errors (checks on and off)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrow, parquet_lite
from ome_arrow_core.checksums import ENV
from ome_arrow_core.errors import OMEArrowError
from ome_arrow_core.typed_chunk.opening import clear_cache

COLUMNS = ("i", "f", "s", "d", "nest", "nest.a", "nest.b", "nest.b.c", "lst", "missing")


def _table(rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    words = np.array(["alpha", "beta", "gamma", ""], dtype=object)
    return pa.table(
        {
            "i": pa.array(rng.integers(-(2**40), 2**40, rows)),
            "f": pa.array(rng.random(rows), mask=rng.random(rows) < 0.2),
            "s": pa.array(words[rng.integers(0, 4, rows)].tolist()),
            "d": pa.array(words[rng.integers(0, 4, rows)].tolist()).dictionary_encode(),
            "nest": pa.StructArray.from_arrays(
                [
                    pa.array(rng.integers(0, 9, rows).astype(np.int16)),
                    pa.StructArray.from_arrays([pa.array(rng.random(rows) < 0.5)], ["c"]),
                ],
                ["a", "b"],
            ),
            "lst": pa.array([list(range(int(k))) for k in rng.integers(0, 4, rows)], pa.list_(pa.int32())),
        },
        metadata={b"note": b"kept"},
    )


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lite") / "t.parquet"
    pq.write_table(_table(257, 0), path, row_group_size=60)
    return path


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.integers(0, 200),
    group=st.integers(1, 128),
    seed=st.integers(0, 2**16),
    columns=st.none() | st.lists(st.sampled_from(COLUMNS), max_size=5),
    dictionary=st.sampled_from([None, ["s"], ["s", "d"]]),
    batch=st.integers(1, 200),
)
def test_reads_what_pyarrow_parquet_reads(
    tmp_path: Path,
    rows: int,
    group: int,
    seed: int,
    columns: list[str] | None,
    dictionary: list[str] | None,
    batch: int,
) -> None:
    path = tmp_path / f"{rows}-{group}-{seed}.parquet"
    pq.write_table(_table(rows, seed), path, row_group_size=group)
    ours, theirs = (
        parquet_lite.ParquetFile(path, read_dictionary=dictionary),
        pq.ParquetFile(path, read_dictionary=dictionary),
    )
    assert type(ours) is parquet_lite.ParquetFile
    assert ours.metadata.equals(theirs.metadata) and ours.schema.equals(theirs.schema)
    assert ours.schema_arrow.equals(theirs.schema_arrow, check_metadata=True)
    assert ours.num_row_groups == theirs.num_row_groups
    assert ours.read(columns).equals(theirs.read(columns), check_metadata=True)
    assert ours.read(columns, use_threads=False).equals(theirs.read(columns))
    groups = list(range(ours.num_row_groups))
    for g in groups:
        assert ours.read_row_group(g, columns).equals(theirs.read_row_group(g, columns), check_metadata=True)
    assert ours.read_row_groups(groups[::-2], columns).equals(theirs.read_row_groups(groups[::-2], columns))
    got = list(ours.iter_batches(batch, columns=columns))
    want = list(theirs.iter_batches(batch, columns=columns))
    assert len(got) == len(want) and all(a.equals(b) for a, b in zip(got, want, strict=True))
    local = parquet_lite.ParquetFile(path, read_dictionary=dictionary, **parquet_lite.LOCAL_READS)  # no pre-buffer
    for g in groups:
        assert local.read_row_group(g, columns, use_threads=False).equals(theirs.read_row_group(g, columns))
    again = parquet_lite.ParquetFile(path, metadata=ours.metadata, read_dictionary=dictionary)  # footer parsed once
    assert again.metadata.equals(theirs.metadata) and again.read(columns).equals(theirs.read(columns))
    assert parquet_lite.read_metadata(path).equals(pq.read_metadata(path))
    assert parquet_lite.read_schema(path).equals(pq.read_schema(path), check_metadata=True)


def test_open_files_and_buffers_are_read_and_left_open(written: Path) -> None:
    data = written.read_bytes()
    for source in (pa.BufferReader(data), io.BytesIO(data), pa.OSFile(str(written))):
        with parquet_lite.ParquetFile(source) as pf:
            assert pf.read().equals(pq.read_table(written))
        assert not source.closed  # the caller's file: closed by the caller
    assert parquet_lite.read_metadata(pa.BufferReader(data)).equals(pq.read_metadata(written))
    with parquet_lite.ParquetFile(written) as pf:
        assert not pf.closed
    assert pf.closed  # a path: the file it opened is closed with it


def test_uris_filesystems_and_other_options_go_to_pyarrow_parquet(written: Path) -> None:
    for source, options in (
        (written.as_uri(), {}),
        (str(written), {"filesystem": pafs.LocalFileSystem()}),
        (written, {"page_checksum_verification": True}),
        (written, {"coerce_int96_timestamp_unit": "ms"}),
    ):
        pf = parquet_lite.ParquetFile(source, **options)
        assert type(pf) is pq.ParquetFile and pf.read().equals(pq.read_table(written))
    assert parquet_lite.read_metadata(written.as_uri()).equals(pq.read_metadata(written))
    assert parquet_lite.read_schema(written, filesystem=pafs.LocalFileSystem()).equals(pq.read_schema(written))


def test_other_names_are_pyarrow_parquets() -> None:
    assert parquet_lite.write_table is pq.write_table and parquet_lite.ParquetWriter is pq.ParquetWriter
    assert parquet_lite.FileMetaData is pq.FileMetaData and parquet_lite.RowGroupMetaData is pq.RowGroupMetaData
    with pytest.raises(AttributeError):
        parquet_lite.not_a_name  # noqa: B018


def test_a_zero_batch_size_is_refused(written: Path) -> None:
    with pytest.raises(ValueError, match="batch_size must be greater than zero"):
        parquet_lite.ParquetFile(written).iter_batches(0)


def _damaged(written: Path, out: Path, how: str) -> Path:
    data = bytearray(written.read_bytes())
    size = int.from_bytes(data[-8:-4], "little")
    if how == "truncate":
        data = data[: len(data) // 2]
    elif how == "tail":
        data = data[:-3]
    elif how == "magic":
        data[-1] ^= 0xFF
    elif how == "long footer":  # the length says more bytes than the file has
        data[-8:-4] = (len(data) + 10).to_bytes(4, "little")
    elif how == "short footer":  # the length cuts the footer's Thrift off
        data[-8:-4] = (size // 3).to_bytes(4, "little")
    elif how == "footer bytes":
        for k in range(8, 8 + size, 7):
            data[-k] ^= 0x5A
    elif how == "empty":
        data = bytearray()
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize("how", ["truncate", "tail", "magic", "long footer", "short footer", "footer bytes", "empty"])
def test_damaged_files_are_refused_as_pyarrow_parquet_refuses_them(written: Path, tmp_path: Path, how: str) -> None:
    bad = _damaged(written, tmp_path / "bad.parquet", how)
    with pytest.raises(Exception) as theirs:  # whatever pyarrow raises, ours must raise the same
        pq.ParquetFile(bad).read()
    with pytest.raises(type(theirs.value)):
        parquet_lite.ParquetFile(bad).read()
    with pytest.raises(type(theirs.value)):
        parquet_lite.read_metadata(bad).row_group(0).column(0).statistics  # noqa: B018


def test_a_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        parquet_lite.ParquetFile(tmp_path / "absent.parquet")
    with pytest.raises(FileNotFoundError):
        parquet_lite.read_metadata(tmp_path / "absent.parquet")


def _dataset(tmp_path: Path) -> tuple[Path, np.ndarray]:
    a = (np.arange(2 * 3 * 40 * 48, dtype=np.uint32) * 7 % 4093).astype(np.uint16).reshape(2, 3, 40, 48)
    path = tmp_path / "img.ome.parquet"
    OMEArrow(a, "CZYX").export("parquet", path, chunk_shape=(16, 16))
    return path, a


@pytest.mark.parametrize("member", ["index.parquet", "images.parquet"])
@pytest.mark.parametrize("how", ["truncate", "magic", "long footer", "short footer", "footer bytes"])
@pytest.mark.parametrize("checks", ["1", "0"])
def test_a_damaged_table_of_an_image_raises_a_library_error_in_a_fresh_process(
    tmp_path: Path, member: str, how: str, checks: str
) -> None:
    """The first read of a fresh process (the one that opens the tables through parquet_lite): a library error,
    with the table checksums on or off, never pyarrow's own exception or wrong pixels."""
    path, _ = _dataset(tmp_path)
    _damaged(path / member, path / member, how)
    code = textwrap.dedent(f"""
        import json
        from ome_arrow_core import OMEArrow
        from ome_arrow_core.errors import OMEArrowError
        try:
            OMEArrow.scan({str(path)!r}).tensor_view(c=1, z=2, layout="YX").to_numpy()
        except OMEArrowError as exc:
            out = {{"raised": type(exc).__name__}}
        else:
            out = {{"raised": None}}
        print(json.dumps(out))
    """)
    env = {**os.environ, ENV: checks}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["raised"] is not None, got


@pytest.mark.parametrize("member", ["index.parquet", "images.parquet"])
@pytest.mark.parametrize("how", ["truncate", "magic", "long footer", "short footer", "footer bytes"])
def test_a_damaged_table_raises_a_library_error_without_checks(
    tmp_path: Path, member: str, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = _dataset(tmp_path)
    _damaged(path / member, path / member, how)
    monkeypatch.setenv(ENV, "0")
    clear_cache()
    with pytest.raises(OMEArrowError):
        OMEArrow.scan(path).tensor_view(c=1, z=2, layout="YX").to_numpy()


def test_a_fresh_first_plane_reads_its_tables_through_parquet_lite(tmp_path: Path) -> None:
    path, a = _dataset(tmp_path)
    code = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        from ome_arrow_core import OMEArrow, parquet_lite
        opened = []
        real = parquet_lite.ParquetFile.__init__
        def init(self, source, **options):
            opened.append(str(source).rsplit("/", 1)[-1])
            real(self, source, **options)
        parquet_lite.ParquetFile.__init__ = init
        p = OMEArrow.scan({str(path)!r}).tensor_view(c=1, z=2, layout="YX").to_numpy()
        print(json.dumps({{"sum": int(p.astype(np.int64).sum()), "opened": opened,
                           "pyarrow.parquet": "pyarrow.parquet" in sys.modules}}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["sum"] == int(a[1, 2].astype(np.int64).sum())
    assert "index.parquet" in got["opened"] and got["pyarrow.parquet"] is False
