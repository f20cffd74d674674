"""The hot read path of ranged chunks files (typed_chunk/page_values.py): once a chunk's row was audited, later
reads take its value straight from positioned reads of its page. Equal to numpy's slice for any selection and
chunking, checksums still checked, and a file damaged or truncated under an open handle still refused."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from damage import lie_in_length
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrow
from ome_arrow_core.errors import ChecksumError, DamagedFileError
from ome_arrow_core.selection import Selection
from ome_arrow_core.typed_chunk import DatasetSource
from ome_arrow_core.typed_chunk.page_reads import GAP_BYTES, PageFragment
from ome_arrow_core.typed_chunk.page_values import MAX_IOVECS, page_values, page_values_apart

ZCYX = (3, 2, 70, 90)


def image(shape: tuple[int, ...] = ZCYX, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4096, shape, dtype=np.uint16)


def written(tmp_path: Path, a: np.ndarray, **options: Any) -> Path:
    out = tmp_path / "p.ome.parquet"
    OMEArrow(a, "ZCYX").export("parquet", out, **options)
    return out


def audited_source(out: Path, **options: Any) -> DatasetSource:
    """A source of ``out`` whose every chunk row was read once (audited): later reads take the page path."""
    src = DatasetSource(out, **options)
    src.read(src_selection(src))
    frag = src._opened.fragment(0)
    assert isinstance(frag, PageFragment)
    assert not src._opened.read_check(0).unaudited(np.arange(len(frag.offset)))
    return src


def src_selection(src: DatasetSource) -> Selection:
    return Selection.full(src.meta.sizes)


def tzcyx(a: np.ndarray) -> np.ndarray:
    return a[None]  # ZCYX -> TZCYX


def page_of(src: DatasetSource, group: int) -> tuple[int, int]:
    frag = src._opened.fragment(0)
    assert isinstance(frag, PageFragment)
    return int(frag.offset[group]), int(frag.compressed[group])


def index_slice(draw: st.DrawFn, n: int) -> slice | list[int] | int:
    kind = draw(st.sampled_from(["int", "slice", "step", "list"]))
    if kind == "int":
        return draw(st.integers(0, n - 1))
    if kind == "list":
        return draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=4, unique=True))
    a = draw(st.integers(0, n - 1))
    b = draw(st.integers(a + 1, n))
    return slice(a, b, draw(st.integers(2, 5)) if kind == "step" else 1)


@st.composite
def crops(draw: st.DrawFn) -> dict[str, Any]:
    z, c, ny, nx = ZCYX
    y0, x0 = draw(st.integers(0, ny - 1)), draw(st.integers(0, nx - 1))
    return {
        "z": index_slice(draw, z),
        "c": index_slice(draw, c),
        "roi": (x0, y0, draw(st.integers(1, nx - x0)), draw(st.integers(1, ny - y0))),
    }


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    chunk=st.tuples(st.integers(1, 3), st.integers(7, 70), st.integers(9, 90)),
    codec=st.sampled_from(["none", "lz4", "zstd"]),
    picks=st.lists(crops(), min_size=1, max_size=4),
)
def test_page_reads_equal_numpys_slice(
    tmp_path_factory: pytest.TempPathFactory, chunk: tuple[int, int, int], codec: str, picks: list[dict[str, Any]]
) -> None:
    a = image()
    out = written(tmp_path_factory.mktemp("p"), a, chunk_shape=chunk, compression=codec)
    img = OMEArrow.scan(out)
    img.to_numpy()  # the first read audits every row; the crops below take the page path
    assert not img.source._opened.read_check(0).unaudited(np.arange(len(img.source._opened.fragment(0).offset)))
    for pick in picks:
        z, c, (x, y, w, h) = pick["z"], pick["c"], pick["roi"]
        zs = [z] if isinstance(z, int) else z
        cs = [c] if isinstance(c, int) else c
        want = a[zs][:, cs][:, :, y : y + h, x : x + w]  # ZCYX
        got = img.tensor_view(z=zs, c=cs, roi=(x, y, w, h), layout="ZCYX").to_numpy()
        np.testing.assert_array_equal(got, want)


def test_page_values_are_the_parquet_values_across_gaps_and_iovec_limits(tmp_path: Path) -> None:
    """Runs of neighbouring pages share a read, pages farther than GAP_BYTES apart get their own, and a run never
    scatters into more than MAX_IOVECS buffers; every value is what pyarrow reads."""
    big = written(tmp_path / "big", image((2, 1, 400, 400)), chunk_shape=(1, 200, 200), compression=None)
    many = written(
        tmp_path / "many", image((1, 1, 4 * (MAX_IOVECS // 4 + 30), 64)), chunk_shape=(1, 4, 32), compression=None
    )
    for out, groups in ((big, [0, 2, 3, 5, 7]), (many, list(range(MAX_IOVECS // 2 + 50)))):
        frag = DatasetSource(out)._opened.fragment(0)
        assert isinstance(frag, PageFragment)
        if out == big:
            assert int(frag.offset[2]) - int(frag.offset[0] + frag.compressed[0]) > GAP_BYTES
        want = pq.ParquetFile(out / "chunks.parquet").read(columns=["pixel_bytes"]).column(0).to_pylist()
        got = page_values(frag, np.array(groups, dtype=np.int64))
        for k, g in enumerate(groups):
            value = memoryview(got.buffers[k])[got.start[k] : got.start[k] + got.length[k]]
            assert bytes(value) == want[g]
            assert got.buffers[k].address % 64 == 0


@pytest.mark.parametrize("lie", ["length", "levels", "truncated"])
def test_page_values_apart_are_page_values_each_in_a_buffer_of_its_own_and_refuse_the_same_pages(
    tmp_path: Path, lie: str
) -> None:
    """Values read apart (the whole-chunk tiles' path: the usual page head checked inline) are page_values' values,
    each in a buffer of its own; a lying length prefix, level bytes or a truncated file is refused alike."""
    out = written(tmp_path, image((2, 1, 400, 400)), chunk_shape=(1, 100, 100), compression=None)
    frag = DatasetSource(out)._opened.fragment(0)
    assert isinstance(frag, PageFragment)
    groups = np.arange(len(frag.offset), dtype=np.int64)
    want = page_values(frag, groups)
    got = page_values_apart(frag, groups)
    assert len({id(b) for b in got.buffers}) == len(groups)
    for k in range(len(groups)):
        assert bytes(memoryview(got.buffers[k])[got.start[k] : got.start[k] + got.length[k]]) == bytes(
            memoryview(want.buffers[k])[want.start[k] : want.start[k] + want.length[k]]
        )
    off, size = int(frag.offset[7]), int(frag.compressed[7])
    if lie == "length":
        lie_in_length(out / "chunks.parquet", off, size - 11)  # one byte short of filling the page
    elif lie == "levels":
        with open(out / "chunks.parquet", "r+b") as f:  # the level run holds 2, not the defined level 1
            f.seek(off + 5)
            f.write(b"\x02")
    else:
        os.truncate(out / "chunks.parquet", off + size - 1)
    for read in (page_values, page_values_apart):
        with pytest.raises(DamagedFileError, match="truncated" if lie == "truncated" else "one defined PLAIN value"):
            read(frag, groups)


@pytest.mark.parametrize("codec", ["none", "lz4"])
def test_a_byte_flipped_under_an_open_handle_fails_its_checksum(codec: str, tmp_path: Path) -> None:
    a = image()
    out = written(tmp_path, a, chunk_shape=(1, 35, 45), compression=codec)
    src = audited_source(out)
    sel = src_selection(src)
    np.testing.assert_array_equal(src.read(sel), tzcyx(a))
    off, size = page_of(src, 5)
    with open(out / "chunks.parquet", "r+b") as f:  # the last byte of the page: pixels (or their compressed form)
        f.seek(off + size - 1)
        byte = f.read(1)
        f.seek(off + size - 1)
        f.write(bytes([byte[0] ^ 0x10]))
    with pytest.raises((ChecksumError, DamagedFileError)) as err:
        src.read(sel)
    if codec == "none":
        assert err.type is ChecksumError
        unchecked = audited_source(out, verify=False)  # verify=False serves the damaged pixels: only the sum tells
        assert not np.array_equal(unchecked.read(sel), tzcyx(a))


def test_a_page_not_holding_one_value_is_refused(tmp_path: Path) -> None:
    out = written(tmp_path, image(), chunk_shape=(1, 35, 45), compression=None)
    src = audited_source(out)
    off, _ = page_of(src, 3)
    lie_in_length(out / "chunks.parquet", off, 12345)  # the value's length prefix lies
    with pytest.raises(DamagedFileError, match="one defined PLAIN value"):
        src.read(src_selection(src))


@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_coalesced_reads_of_a_file_truncated_under_an_open_handle_raise(codec: str, tmp_path: Path) -> None:
    out = written(tmp_path, image(), chunk_shape=(1, 35, 45), compression=codec)
    src = audited_source(out)
    off, _ = page_of(src, 9)
    os.truncate(out / "chunks.parquet", off + 7)
    with pytest.raises(DamagedFileError, match="the file is truncated"):
        src.read(src_selection(src))


def test_a_whole_chunk_read_is_an_aligned_view_of_the_page(tmp_path: Path) -> None:
    a = image()
    out = written(tmp_path, a, chunk_shape=(1, 35, 45), compression=None)
    img = OMEArrow.scan(out)
    img.to_numpy()
    got = img.tensor_view(z=1, c=0, roi=(45, 35, 45, 35), layout="YX").to_numpy()
    np.testing.assert_array_equal(got, a[1, 0, 35:70, 45:90])
    assert not got.flags.writeable and got.ctypes.data % 64 == 0 and got.base is not None


def whole_chunk(src: DatasetSource, group: int) -> Selection:
    """The selection of exactly the chunk in row group ``group`` (read by one positioned read of its page)."""
    row = int(np.nonzero(src._opened.columns["row_group_id"][src._index_rows] == group)[0][0])
    o, n = src._chunks.origin[row].tolist(), src._chunks.shape[row].tolist()
    t, c, z, y, x = (range(a, a + k) for a, k in zip(o, n))
    return Selection(t, z, c, y, x)


@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_one_whole_chunk_read_checks_its_checksum_and_size(codec: str, tmp_path: Path) -> None:
    a = image()
    out = written(tmp_path, a, chunk_shape=(1, 35, 45), compression=codec)
    src = audited_source(out)
    sel = whole_chunk(src, 5)
    np.testing.assert_array_equal(src.read(sel), sel.apply(tzcyx(a)))
    off, size = page_of(src, 5)
    with open(out / "chunks.parquet", "r+b") as f:
        f.seek(off + size - 1)
        byte = f.read(1)
        f.seek(off + size - 1)
        f.write(bytes([byte[0] ^ 0x10]))
    with pytest.raises((ChecksumError, DamagedFileError)) as err:
        src.read(sel)
    if codec == "none":
        assert err.type is ChecksumError
        assert not np.array_equal(audited_source(out, verify=False).read(sel), sel.apply(tzcyx(a)))
    os.truncate(out / "chunks.parquet", off + 3)
    with pytest.raises(DamagedFileError, match="the file is truncated"):
        src.read(sel)
