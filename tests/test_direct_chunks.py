"""The direct chunks-file writer (typed_chunk.direct_chunks) writes what pyarrow's writer writes, and is safe.

Same tables, same Arrow schema and metadata, same statistics, same page ranges (also as read back from the
file), valid page checksums; images round-trip through the public API; a flipped or cut byte anywhere in a
directly written dataset reads as the right pixels or raises; a write that fails midway leaves the old dataset.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import writes_support as ws
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrow, OMEArrowError, write_dataset
from ome_arrow_core.errors import SchemaError
from ome_arrow_core.registry import default_registry
from ome_arrow_core.typed_chunk import direct_chunks, fragments, write_threads
from ome_arrow_core.typed_chunk.chunk_groups import one_group_per_row, rows_are_groups
from ome_arrow_core.typed_chunk.parquet_pages import page_ranges
from ome_arrow_core.typed_chunk.spec import CHUNKS_SCHEMA

INTS = ["t", "c", "z", "y", "x", "shape_t", "shape_c", "shape_z", "shape_y", "shape_x"]
HYPO = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def chunk_tables(draw: st.DrawFn) -> tuple[list[pa.Table], bool]:
    """Chunk tables: one-row tables, or (``table_groups``) tables of several rows, with extreme values."""
    grouped = draw(st.booleans())
    tables = []
    for _ in range(draw(st.integers(1, 12))):
        marked = grouped and draw(st.booleans())  # a run of one-row groups in one table (as the packer sends them)
        n = draw(st.integers(1, 4)) if grouped else 1
        text = st.text(max_size=12)
        cols: dict[str, object] = {
            "image_id": draw(st.lists(text, min_size=n, max_size=n)),
            "chunk_id": draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n)),
            "dtype": draw(st.lists(text, min_size=n, max_size=n)),
            "pixel_bytes": draw(st.lists(st.binary(max_size=300), min_size=n, max_size=n)),
        }
        for name in INTS:
            cols[name] = draw(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=n, max_size=n))
        table = pa.table({f.name: pa.array(cols[f.name], f.type) for f in CHUNKS_SCHEMA})
        tables.append(one_group_per_row(table) if marked else table)
    return tables, grouped


def _unmarked(tables: list[pa.Table]) -> list[pa.Table]:
    """The same row groups, a table each: a marked table cut into its rows."""
    out = []
    for t in tables:
        out += [t.slice(i, 1).replace_schema_metadata(None) for i in range(t.num_rows)] if rows_are_groups(t) else [t]
    return out


def _pyarrow_file(tables: list[pa.Table], out: Path, grouped: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as m:
        m.setattr(fragments, "DIRECT", False)
        fragments.write_fragment(
            iter(tables),
            out,
            fragments.PARQUET,
            compression=None,
            compression_level=None,
            rows_per_group=1,
            registry=default_registry(),
            table_groups=grouped,
        )


@HYPO
@given(
    case=chunk_tables(),
    groups=st.integers(1, 8),
    nbytes=st.sampled_from([1, 200, 1 << 30]),
    threads=st.booleans(),
)
def test_same_file_as_pyarrow(
    case: tuple[list[pa.Table], bool],
    groups: int,
    nbytes: int,
    threads: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Also when the writer builds the file in several batches (of ``groups`` row groups or ``nbytes`` pixel
    bytes: each batch's offsets continue the last's), and with the page CRCs computed in parts by the write
    threads (``threads``: whatever the batch's size)."""
    tables, grouped = case
    ours, theirs = tmp_path / "direct.parquet", tmp_path / "pyarrow.parquet"
    with monkeypatch.context() as m:
        m.setattr(direct_chunks, "_BATCH_GROUPS", groups)
        m.setattr(direct_chunks, "_BATCH_BYTES", nbytes)
        m.setattr(write_threads, "MIN_BYTES", 0 if threads else 1 << 62)
        ranges = direct_chunks.write_chunks_direct(iter(tables), ours, grouped)
    _pyarrow_file(_unmarked(tables), theirs, grouped, monkeypatch)
    marked = tmp_path / "marked.parquet"  # pyarrow's writer reads the marks as the direct one does
    _pyarrow_file(tables, marked, grouped, monkeypatch)
    assert marked.read_bytes() == theirs.read_bytes()
    got, want = pq.read_table(ours), pq.read_table(theirs)
    assert got.equals(want)
    assert got.schema.metadata == want.schema.metadata  # ARROW:schema (large_binary) and ours
    pq.ParquetFile(ours, page_checksum_verification=True).read()  # every page's CRC checks
    a, b = pq.read_metadata(ours), pq.read_metadata(theirs)
    assert a.num_row_groups == b.num_row_groups and a.num_rows == b.num_rows
    for g in range(a.num_row_groups):
        assert a.row_group(g).num_rows == b.row_group(g).num_rows
        for c in range(a.num_columns):
            sa, sb = a.row_group(g).column(c).statistics, b.row_group(g).column(c).statistics
            if sb is None or not sb.has_min_max:
                assert sa is None or not sa.has_min_max
            else:
                assert sa is not None and (sa.min, sa.max, sa.null_count) == (sb.min, sb.max, sb.null_count)
    read_back = page_ranges(ours)
    assert (ranges is None) == (read_back is None) == (page_ranges(theirs) is None)
    if ranges is not None and read_back is not None:
        for f in ("offset", "compressed", "uncompressed", "group_offset"):
            assert np.array_equal(getattr(ranges, f), getattr(read_back, f)), f
        assert (ranges.codec, ranges.file_bytes) == (read_back.codec, read_back.file_bytes)


@HYPO
@given(
    dtype=st.sampled_from(["uint8", "uint16", "int32", "float32", "float64"]),
    shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(1, 40), st.integers(1, 40)),
    chunk=st.tuples(st.integers(1, 3), st.integers(1, 32), st.integers(1, 32)),
    threads=st.booleans(),
)
def test_images_round_trip(
    dtype: str,
    shape: tuple[int, ...],
    chunk: tuple[int, ...],
    threads: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """TCZYX images of any dtype, shape and chunk shape read back exactly (written directly by default), their
    chunks checked against the checksums the packer computed (``threads``: in parts, by the write threads)."""
    rng = np.random.default_rng(sum(shape))
    arr = (rng.random(shape) * 200).astype(dtype)
    out = tmp_path / "img.ome.parquet"
    with monkeypatch.context() as m:
        m.setattr(write_threads, "MIN_BYTES", 0 if threads else 1 << 62)
        OMEArrow(arr, dim_order="TCZYX").export("parquet", out, chunk_shape=chunk)
    pq.ParquetFile(out / "chunks.parquet", page_checksum_verification=True).read()
    assert pq.read_metadata(out / "chunks.parquet").created_by == direct_chunks.CREATED_BY
    got = OMEArrow.scan(out).to_numpy(layout="TCZYX")
    assert got.dtype == arr.dtype and np.array_equal(got, arr)


def _pixels(root: Path) -> list[np.ndarray]:
    return ws.read(root)


def test_every_flipped_or_cut_byte_reads_right_or_raises(tmp_path: Path) -> None:
    """A byte flipped anywhere in a directly written chunks file (page headers, levels, values, footer), or the
    file cut anywhere: every read gives the written pixels or raises our error."""
    root = tmp_path / "ds.ome.parquet"
    ws.write(root, 1, n=2)
    want = _pixels(root)
    chunks = root / "chunks.parquet"
    assert pq.read_metadata(chunks).created_by == direct_chunks.CREATED_BY
    good = chunks.read_bytes()
    points = sorted({*range(0, len(good), max(1, len(good) // 150)), *range(len(good) - 64, len(good))})
    for at in points:
        for bad in (good[:at] + bytes([good[at] ^ 0x5A]) + good[at + 1 :], good[:at]):
            chunks.write_bytes(bad)
            try:
                got = _pixels(root)
            except OMEArrowError:
                continue
            assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True)), f"byte {at} read wrong pixels"
    chunks.write_bytes(good)
    assert all(np.array_equal(g, w) for g, w in zip(_pixels(root), want, strict=True))


class _Stop(Exception):
    pass


@pytest.mark.parametrize("after", [0, 1, 5])
def test_failed_write_leaves_the_old_dataset(tmp_path: Path, after: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """An image whose pixels fail after some chunks were written (an exception, as a signal's handler raises)
    leaves the old dataset reading as before, and the next write leaves no litter."""
    root = tmp_path / "ds.ome.parquet"
    ws.write(root, 1)
    old = _pixels(root)
    calls = 0
    big = np.zeros((2, 4, 300, 300), dtype=np.uint16)  # CZYX: bands of planes, several tables

    from ome_arrow_core.typed_chunk import packing

    real = packing.chunk_payload  # the step that packs each band

    def failing(pixels: np.ndarray, table: object) -> object:
        nonlocal calls
        calls += 1
        if calls > after:
            raise _Stop
        return real(pixels, table)  # type: ignore[arg-type]

    with monkeypatch.context() as m:
        m.setattr(packing, "BAND_BYTES", 1)
        m.setattr(packing, "chunk_payload", failing)
        with pytest.raises(_Stop):
            write_dataset([big], root, mode="overwrite", dim_order="CZYX", progress=False)
    assert calls == after + 1
    assert all(np.array_equal(g, w) for g, w in zip(_pixels(root), old, strict=True))
    ws.write(root, 2, mode="overwrite")
    assert sorted(os.listdir(tmp_path)) == ["ds.ome.parquet"]


def test_refuses_other_schemas_and_nulls(tmp_path: Path) -> None:
    row = {
        f.name: pa.array([None if f.name == "t" else 0 if pa.types.is_integer(f.type) else "a"], f.type)
        for f in CHUNKS_SCHEMA
        if f.name != "pixel_bytes"
    }
    row["pixel_bytes"] = pa.array([b"x"], pa.large_binary())
    with pytest.raises(SchemaError, match="nulls"):
        direct_chunks.write_chunks_direct(iter([pa.table(row)]), tmp_path / "a.parquet", False)
    with pytest.raises(SchemaError, match="schema"):
        direct_chunks.write_chunks_direct(iter([pa.table({"x": [1]})]), tmp_path / "b.parquet", False)


def test_a_marked_table_is_cut_into_bounded_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run of one-row groups in one table is built at most ``_BATCH_GROUPS`` groups at a time (the headers'
    memory), and reads back as those rows, a group each."""
    n = 7
    cols: dict[str, object] = {name: list(range(n)) for name in [*INTS, "chunk_id"]}
    cols.update(
        image_id=[f"i{k}" for k in range(n)], dtype=["uint8"] * n, pixel_bytes=[bytes([k]) * 40 for k in range(n)]
    )
    table = one_group_per_row(pa.table({f.name: pa.array(cols[f.name], f.type) for f in CHUNKS_SCHEMA}))
    sizes: list[int] = []
    real = direct_chunks.DirectChunkWriter._groups

    def spy(self: direct_chunks.DirectChunkWriter, batch: direct_chunks._Batch, views: list[memoryview]) -> None:
        sizes.append(batch.groups)
        real(self, batch, views)

    monkeypatch.setattr(direct_chunks, "_BATCH_GROUPS", 3)
    monkeypatch.setattr(direct_chunks.DirectChunkWriter, "_groups", spy)
    out = tmp_path / "chunks.parquet"
    direct_chunks.write_chunks_direct(iter([table]), out, True)
    assert sizes == [3, 3, 1]
    md = pq.read_metadata(out)
    assert [md.row_group(g).num_rows for g in range(md.num_row_groups)] == [1] * n
    assert pq.read_table(out).column("pixel_bytes").to_pylist() == cols["pixel_bytes"]
