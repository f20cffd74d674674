"""Chunks placed straight from their pages through a per-thread scratch buffer (typed_chunk/page_stream.py):
any selection equals numpy's slice of the original pixels, shared chunks are read and checked once, pages
larger than the scratch buffer, big-endian pixels and compressed files take the other path with the same
result, concurrent readers do not see each other's bytes, and damage is still refused on this path."""

from __future__ import annotations

import itertools
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from damage import audited, chunk_page, flip_byte, lie_in_length
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ome_arrow_core.typed_chunk.chunk_reads as chunk_reads
from ome_arrow_core import OMEArrow
from ome_arrow_core.buffers import SCRATCH_BYTES, scratch_buffer
from ome_arrow_core.errors import ChecksumError, DamagedFileError
from ome_arrow_core.selection import Selection
from ome_arrow_core.typed_chunk.chunk_reads import staged_cuts

ZCYX = (3, 2, 70, 90)


def image(shape: tuple[int, ...] = ZCYX, seed: int = 5, dtype: str = "<u2") -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4096, shape).astype(dtype)


def written(tmp: Path, a: np.ndarray, **options: Any) -> Path:
    out = tmp / "s.ome.parquet"
    OMEArrow(a, "ZCYX").export("parquet", out, **options)
    return out


class Streamed:
    """Counts the batches placed by page_stream.place_pages (the real function runs)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.batches = 0
        real = chunk_reads.place_pages

        def counting(*args: Any, **kwargs: Any) -> None:
            self.batches += 1
            real(*args, **kwargs)

        monkeypatch.setattr(chunk_reads, "place_pages", counting)


@st.composite
def boxes(draw: st.DrawFn) -> tuple[Any, Any, int, int, int, int]:
    z, c, ny, nx = ZCYX
    y0, x0 = draw(st.integers(0, ny - 1)), draw(st.integers(0, nx - 1))
    zs = draw(st.one_of(st.integers(0, z - 1), st.lists(st.integers(0, z - 1), min_size=1, max_size=3, unique=True)))
    cs = draw(st.one_of(st.integers(0, c - 1), st.lists(st.integers(0, c - 1), min_size=1, max_size=2, unique=True)))
    return zs, cs, x0, y0, draw(st.integers(1, nx - x0)), draw(st.integers(1, ny - y0))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    chunk=st.tuples(st.integers(1, 3), st.integers(5, 70), st.integers(7, 90)),
    picks=st.lists(boxes(), min_size=1, max_size=4),
)
def test_streamed_selections_equal_numpys_slice(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    chunk: tuple[int, int, int],
    picks: list[tuple[Any, Any, int, int, int, int]],
) -> None:
    a = image()
    img = OMEArrow.scan(written(tmp_path_factory.mktemp("s"), a, chunk_shape=chunk, compression=None))
    np.testing.assert_array_equal(img.to_numpy(layout="ZCYX"), a)
    streamed = Streamed(monkeypatch)
    for zs, cs, x, y, w, h in picks:
        zl = [zs] if isinstance(zs, int) else zs
        cl = [cs] if isinstance(cs, int) else cs
        got = img.tensor_view(z=zl, c=cl, roi=(x, y, w, h), layout="ZCYX").to_numpy()
        np.testing.assert_array_equal(got, a[zl][:, cl][:, :, y : y + h, x : x + w])
    many = img.tensor_view(layout="ZCYX").to_numpy()
    np.testing.assert_array_equal(many, a)
    assert streamed.batches >= 1  # the whole image (many chunks) went through the stream


def test_selections_sharing_chunks_read_together_equal_numpy_and_check_each_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = image()
    src = audited(written(tmp_path, a, chunk_shape=(1, 35, 45), compression=None))
    sums = src._opened.sums
    compared: list[int] = []
    real = type(sums).compare

    def counting(self: Any, row: int, *args: Any) -> Any:
        compared.append(row)
        return real(self, row, *args)

    monkeypatch.setattr(type(sums), "compare", counting)
    full = Selection.full(src.meta.sizes)
    sels = [full.select(y=range(10, 60), x=range(20, 80)), full.select(y=range(30, 70), x=range(0, 50)), full]
    streamed = Streamed(monkeypatch)
    outs = src.read_many(sels)
    t = a[None]  # ZCYX -> TZCYX
    for sel, got in zip(sels, outs):
        np.testing.assert_array_equal(got, sel.apply(t))
    assert streamed.batches == 1
    assert sorted(compared) == sorted(set(compared))  # a chunk shared by three selections: checked once
    assert len(compared) == len(src._index_rows)


def test_pages_larger_than_the_scratch_buffer_take_the_other_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = image((1, 1, 800, 800))  # one 1.2 MiB page: larger than the scratch buffer
    assert a.nbytes > SCRATCH_BYTES
    src = audited(written(tmp_path, a, chunk_shape=(1, 800, 800), compression=None))
    streamed = Streamed(monkeypatch)
    full = Selection.full(src.meta.sizes)
    sel = full.select(y=range(3, 796), x=range(5, 798))
    np.testing.assert_array_equal(src.read(sel), sel.apply(a[None]))
    assert streamed.batches == 0


def test_big_endian_pixels_stream_as_native_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = image(dtype=">u2")
    src = audited(written(tmp_path, a, chunk_shape=(1, 35, 45), compression=None))
    streamed = Streamed(monkeypatch)
    sel = Selection.full(src.meta.sizes).select(y=range(3, 66), x=range(5, 88))
    got = src.read(sel)
    np.testing.assert_array_equal(got, sel.apply(a[None]))
    assert got.dtype.isnative and streamed.batches == 1


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
def test_compressed_files_are_not_streamed_and_read_right(
    codec: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = image()
    src = audited(written(tmp_path, a, chunk_shape=(1, 35, 45), compression=codec))
    streamed = Streamed(monkeypatch)
    sel = Selection.full(src.meta.sizes).select(y=range(20, 50), x=range(30, 70))
    np.testing.assert_array_equal(src.read(sel), sel.apply(a[None]))
    assert streamed.batches == 0


def test_concurrent_readers_each_use_their_own_scratch_buffer(tmp_path: Path) -> None:
    a = image((4, 2, 120, 150))
    img = OMEArrow.scan(written(tmp_path, a, chunk_shape=(1, 32, 32), compression=None))
    img.to_numpy()
    failures: list[str] = []
    buffers: list[int] = []
    together = threading.Barrier(4)  # all four threads (and so their buffers) alive at once: addresses can't be reused

    def reader(k: int) -> None:
        buffers.append(scratch_buffer().address)
        together.wait(timeout=60)
        for i in range(30):
            z, y, x = (k + i) % 4, (7 * i + k) % 60, (11 * i + 3 * k) % 80
            got = img.tensor_view(z=z, c=k % 2, roi=(x, y, 70, 60), layout="YX").to_numpy()
            if not np.array_equal(got, a[z, k % 2, y : y + 60, x : x + 70]):
                failures.append(f"reader {k}, read {i}")

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert failures == []
    assert len(set(buffers)) == 4


def test_damage_in_the_middle_of_a_streamed_selection_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = image()
    out = written(tmp_path, a, chunk_shape=(1, 35, 45), compression=None)
    src = audited(out)
    sel = Selection.full(src.meta.sizes).select(y=range(10, 60), x=range(10, 80))
    streamed = Streamed(monkeypatch)
    off, size = chunk_page(src, 6)
    flip_byte(out / "chunks.parquet", off + size // 2)  # one pixel byte
    with pytest.raises(ChecksumError, match="do not match their checksum"):
        src.read(sel)
    assert streamed.batches == 1
    np.testing.assert_raises(
        AssertionError, np.testing.assert_array_equal, audited(out, verify=False).read(sel), sel.apply(a[None])
    )
    flip_byte(out / "chunks.parquet", off + size // 2)  # repaired
    np.testing.assert_array_equal(src.read(sel), sel.apply(a[None]))
    lie_in_length(out / "chunks.parquet", off)  # the value's length prefix lies
    with pytest.raises(DamagedFileError, match="one defined PLAIN value"):
        src.read(sel)


def test_a_file_truncated_under_a_streaming_reader_raises(tmp_path: Path) -> None:
    out = written(tmp_path, image(), chunk_shape=(1, 35, 45), compression=None)
    src = audited(out)
    off, _ = chunk_page(src, 9)
    os.truncate(out / "chunks.parquet", off + 11)
    with pytest.raises(DamagedFileError, match="the file is truncated"):
        src.read(Selection.full(src.meta.sizes).select(y=range(0, 70), x=range(5, 85)))


@given(st.lists(st.integers(0, 3 << 20), min_size=1, max_size=40), st.integers(1, 4 << 20))
def test_staged_cuts_cover_every_page_within_the_budget(sizes: list[int], budget: int) -> None:
    cuts = staged_cuts(np.array(sizes, dtype=np.int64), budget).tolist()
    assert cuts[0] == 0 and cuts[-1] == len(sizes)
    for lo, hi in itertools.pairwise(cuts):
        assert hi > lo
        assert hi - lo == 1 or sum(sizes[lo:hi]) + 64 * (hi - lo) <= budget


PEAK = r"""
import os, sys
from pathlib import Path
import numpy as np
import pyarrow as pa
from ome_arrow_core.buffers import scratch_buffer
from ome_arrow_core.selection import Selection
from ome_arrow_core.typed_chunk import DatasetSource
src = DatasetSource(Path(sys.argv[1]))
full = Selection.full(src.meta.sizes)
src.read(full)  # audited: the next read streams
scratch_buffer()  # this thread's, made before counting
pool = pa.proxy_memory_pool(pa.default_memory_pool())
pa.set_memory_pool(pool)
got = src.read(full.select(y=range(1, 511), x=range(2, 510)))
print(pool.max_memory(), got.nbytes, flush=True)
os._exit(0)  # buffers of the counting pool outlive it otherwise
"""


def test_a_streamed_selection_allocates_its_output_and_nothing_selection_sized(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = written(tmp_path, image((2, 2, 512, 512)), chunk_shape=(1, 64, 64), compression=None)
    run = subprocess.run([sys.executable, "-c", PEAK, str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    peak, size = map(int, run.stdout.split())
    assert size == 2 * 2 * 510 * 508 * 2
    assert peak <= size + (64 << 10)  # the output, a little Arrow bookkeeping; read buffers: none (scratch reused)
