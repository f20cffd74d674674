"""A first read of large uncompressed pages audits each chunk's row group from the bytes before its page alone
(:func:`~ome_arrow_core.typed_chunk.page_direct.audit_heads`), then reads the pixels straight into the outputs: the pixels are the file's
(in this process and in a forked worker), and a damaged head, a lying index or a truncated file is refused as the
one-pass audit refuses it."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from table_digests import without_table_digests

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_core.errors import ChecksumError, DamagedFileError
from ome_arrow_core.typed_chunk.opening import clear_cache
from ome_arrow_core.typed_chunk.page_direct import HEADS_ALONE_BYTES
from ome_arrow_core.typed_chunk.page_reads import PageFragment

SHAPE = (2, 96, 96)  # 18 KiB pages of uint16: read by their heads first


def _plate(root: Path, n: int = 12, seed: int = 0) -> tuple[Path, np.ndarray]:
    arrs = np.random.default_rng(seed).integers(0, 65535, (n, *SHAPE), dtype=np.uint16)
    return write_dataset(list(arrs), root, dim_order="CYX", progress=False), arrs


def _read_all(path: Path, batch: int = 5) -> np.ndarray:
    clear_cache()
    ds = OMEArrowDataset.scan(path)
    return np.concatenate([np.asarray(ds.read(range(i, min(len(ds), i + batch)))) for i in range(0, len(ds), batch)])


def test_pages_are_large_enough() -> None:
    assert SHAPE[1] * SHAPE[2] * 2 >= HEADS_ALONE_BYTES


def test_a_first_read_audits_heads_and_reads_pixels_direct(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, arrs = _plate(tmp_path / "p")
    calls: list[tuple[str, bool]] = []
    read, heads = PageFragment.read, PageFragment.heads

    def counted_read(self: PageFragment, groups: Any, audit: bool = False) -> pa.Table:
        calls.append(("read", audit))
        return read(self, groups, audit)

    def counted_heads(self: PageFragment, groups: Any) -> pa.Table:
        calls.append(("heads", True))
        return heads(self, groups)

    monkeypatch.setattr(PageFragment, "read", counted_read)
    monkeypatch.setattr(PageFragment, "heads", counted_heads)
    got = _read_all(path).reshape(arrs.shape)
    assert np.array_equal(got, arrs)
    assert ("heads", True) in calls and ("read", True) not in calls  # no one-pass audit: heads, then direct


def _forked_read(path: str, queue: Any) -> None:
    try:
        queue.put(np.asarray(OMEArrowDataset.scan(path).read(range(12))).tobytes())
    except Exception as exc:  # the parent reports it
        queue.put(repr(exc))


@pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")  # JAX, if imported, warns
def test_a_forked_worker_reads_what_this_process_reads(tmp_path: Path) -> None:
    path, arrs = _plate(tmp_path / "p")
    ds = OMEArrowDataset.scan(path)
    np.asarray(ds.read([0, 1]))  # the parent audited some row groups before forking
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_forked_read, args=(str(path), queue))
    proc.start()
    got = queue.get(timeout=120)
    proc.join(timeout=60)
    assert got == np.asarray(ds.read(range(12))).tobytes() == arrs.tobytes()


def _head_span(path: Path, g: int) -> tuple[int, int]:
    index = pq.read_table(path / "index.parquet").to_pydict()
    k = index["row_group_id"].index(g)
    return int(index["row_group_offset"][k]), int(index["page_offset"][k])


def _flip(file: Path, at: int, mask: int) -> None:
    with open(file, "r+b") as f:
        f.seek(at)
        b = f.read(1)[0]
        f.seek(at)
        f.write(bytes([b ^ mask]))


def test_every_damaged_head_byte_is_refused_or_reads_the_pixels(tmp_path: Path) -> None:
    """Each byte of a row group's head flipped: the first read raises, or returns the file's pixels."""
    path, arrs = _plate(tmp_path / "p", n=4)
    start, stop = _head_span(path, 3)
    file = path / "chunks.parquet"
    outcomes = set()
    for at in range(start, stop):
        for mask in (0x01 if at % 2 else 0x80,):
            _flip(file, at, mask)
            try:
                got = _read_all(path, batch=4).reshape(arrs.shape)
                assert np.array_equal(got, arrs), f"byte {at} ^ {mask:#x} read as other pixels"
                outcomes.add("read")
            except (DamagedFileError, ChecksumError):
                outcomes.add("refused")
            finally:
                _flip(file, at, mask)
    assert "refused" in outcomes  # ids, coordinates and sizes are compared with the index


@pytest.mark.parametrize(
    ("column", "match"), [("chunk_id", "holds chunk"), ("image_id", "someone-else|cover"), ("c", "lies at")]
)
@pytest.mark.parametrize("shaped", [False, True])
def test_a_lying_index_is_refused_by_the_heads_audit(tmp_path: Path, column: str, match: str, shaped: bool) -> None:
    """With ``shaped``, the heads' shape is remembered first (a good read): the heads are then read at once,
    column by column, as a process's later first reads read them."""
    path, _ = _plate(tmp_path / "p", n=4)
    if shaped:
        _read_all(path, batch=4)
    table = pq.read_table(path / "index.parquet")
    values = table.column(column).to_pylist()
    if column == "c":  # the two channels of image 1 swapped: they still cover it, each row group says otherwise
        values[2], values[3] = values[3], values[2]
    else:
        values[3] = {"chunk_id": 99, "image_id": "someone-else"}[column]
    at = table.schema.get_field_index(column)
    table = table.set_column(at, column, pa.array(values, table.schema.field(column).type))
    pq.write_table(table, path / "index.parquet")
    without_table_digests(path)  # a lie the table checksums would refuse first
    with pytest.raises(DamagedFileError, match=match):
        _read_all(path, batch=4)


@pytest.mark.parametrize("column", ["page_compressed_size", "page_uncompressed_size"])
def test_a_lying_page_size_is_refused_by_the_heads_audit(tmp_path: Path, column: str) -> None:
    """One row's page size in the index differs from its pixel page's header (the other heads all of one shape, read
    at once): the first read refuses it (the page ranges' check against the file says so before the heads do)."""
    path, _ = _plate(tmp_path / "p", n=4)
    table = pq.read_table(path / "index.parquet")
    values = table.column(column).to_pylist()
    values[5] += 2
    at = table.schema.get_field_index(column)
    table = table.set_column(at, column, pa.array(values, table.schema.field(column).type))
    pq.write_table(table, path / "index.parquet")
    without_table_digests(path)
    with pytest.raises(DamagedFileError, match="index.parquet places the page of row group 5"):
        _read_all(path, batch=4)


def test_a_truncated_chunks_file_is_refused(tmp_path: Path) -> None:
    path, _ = _plate(tmp_path / "p", n=4)
    start, _stop = _head_span(path, 3)
    file = path / "chunks.parquet"
    data = file.read_bytes()
    os.truncate(file, start + 40)  # inside the last row group's head
    with pytest.raises(DamagedFileError):
        _read_all(path, batch=4)
    file.write_bytes(data)
    assert _read_all(path, batch=4).size


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (b"uint16", r"holds None pixels, but the images table says its image is uint16"),  # "uint17"
        (b"image-00001", r"chunk of image 'image-00001' is row 0 of row group 3 .* holds chunk of image 'image-00000'"),
    ],
)
def test_a_damaged_value_in_a_head_is_refused(tmp_path: Path, value: bytes, match: str) -> None:
    """Row group 3's dtype says uint17, or its image id another image's (its head still of the others' shape, read at
    once with them, the shape remembered by a good read): refused by that value's comparison with the images table
    or the index, on the first read."""
    path, arrs = _plate(tmp_path / "p", n=4)
    assert np.array_equal(_read_all(path, batch=4).reshape(arrs.shape), arrs)  # the heads' shape remembered
    start, stop = _head_span(path, 3)
    file = path / "chunks.parquet"
    at = start + file.read_bytes()[start:stop].rindex(value)
    _flip(file, at + len(value) - 1, 0x01)  # the last digit, one up or down
    with pytest.raises(DamagedFileError, match=match):
        _read_all(path, batch=4)


@pytest.mark.parametrize(("side", "named"), [(96, 0), (256, 3)])
def test_a_file_cut_after_opening_is_refused_at_the_heads(tmp_path: Path, side: int, named: int) -> None:
    """The chunks file cut inside row group 3's head after its page ranges were checked against it (opened): reading
    the heads refuses it naming the bytes and the first row group of the read cut short (18 KiB pages: all heads in
    one read; 128 KiB pages: each head its own read), and reads them all once the file is whole again."""
    arrs = np.random.default_rng(1).integers(0, 65535, (4, 2, side, side), dtype=np.uint16)
    path = write_dataset(list(arrs), tmp_path / "p", dim_order="CYX", progress=False)
    index = pq.read_table(path / "index.parquet").sort_by("row_group_id").to_pydict()
    cols = [np.asarray(index[c], dtype=np.int64) for c in (*(f"page_{k}" for k in _SIZES), "row_group_offset")]
    file = path / "chunks.parquet"
    frag = PageFragment(file, None, *cols)
    groups = np.arange(8, dtype=np.int64)
    assert np.array_equal(frag.heads(groups)["chunk_id"], index["chunk_id"])  # ids as the index says
    data = file.read_bytes()
    cut = int(cols[3][3]) + 40
    os.truncate(file, cut)
    begin = int(cols[3][named])
    with pytest.raises(DamagedFileError, match=rf"bytes {begin}\.\.\d+ hold row group {named}, but .* ends at {cut};"):
        frag.heads(groups)
    file.write_bytes(data)
    assert np.array_equal(frag.heads(groups)["chunk_id"], index["chunk_id"])


_SIZES = ("offset", "compressed_size", "uncompressed_size")


def test_a_lying_value_length_is_refused_on_a_first_read(tmp_path: Path) -> None:
    """Row group 3's pixel page says its value is 2 bytes shorter (the page's head, not the index): its first read
    (heads audited at once, then the pages) refuses it."""
    path, _ = _plate(tmp_path / "p", n=4)
    _start, page = _head_span(path, 3)
    file = path / "chunks.parquet"
    raw = file.read_bytes()
    size = SHAPE[1] * SHAPE[2] * 2
    at = raw.index(size.to_bytes(4, "little"), page)  # the value's length, after the page's header
    with open(file, "r+b") as f:
        f.seek(at)
        f.write((size - 2).to_bytes(4, "little"))
    with pytest.raises(DamagedFileError, match=r"the page of row group 3 \(chunk 3 .* is not one defined PLAIN value"):
        _read_all(path, batch=4)
