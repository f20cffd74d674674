"""Streams read their windows in groups (iteration.grouped, DatasetSource.read_many): each window equal to numpy's
slice and to its own read, each in its own buffer, a damaged or truncated chunk still refused, and the windows
before a damaged one still arriving in order."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrow
from ome_arrow_core.buffers import arrow_base
from ome_arrow_core.errors import ChecksumError, DamagedFileError
from ome_arrow_core.iteration import GROUP_BYTES, GROUP_ITEMS, Failed, flattened, grouped
from ome_arrow_core.selection import Selection
from ome_arrow_core.typed_chunk import DatasetSource
from tests.test_page_values import audited_source, image, page_of, written

ZCYX = (3, 2, 70, 90)


@given(st.integers(0, 100), st.integers(1, 3 * GROUP_BYTES))
def test_groups_keep_every_item_in_order_within_their_bounds(n: int, item_bytes: int) -> None:
    groups = grouped(list(range(n)), item_bytes)
    assert [i for g in groups for i in g] == list(range(n))
    for g in groups:
        assert 1 <= len(g) <= GROUP_ITEMS
        assert len(g) == 1 or len(g) * item_bytes <= GROUP_BYTES


def test_a_failed_item_raises_in_its_turn_and_closing_stops_the_groups() -> None:
    closed = []

    def groups() -> object:
        try:
            yield [1, 2]
            yield [3, Failed(ValueError("bad 4"))]
            yield [5]
        finally:
            closed.append(True)

    got = []
    with pytest.raises(ValueError, match="bad 4"):
        for item in flattened(groups()):  # type: ignore[arg-type]
            got.append(item)
    assert got == [1, 2, 3] and closed == [True]
    it = flattened(groups())  # type: ignore[arg-type]
    next(it)
    it.close()
    assert closed == [True, True]


def boxes(draw: st.DrawFn) -> Selection:
    z, c, ny, nx = ZCYX
    axes = []
    for n in (1, z, c, ny, nx):
        a = draw(st.integers(0, n - 1))
        axes.append(range(a, draw(st.integers(a + 1, n))))
    t, zz, cc, y, x = axes
    return Selection(t, zz, cc, y, x)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    chunk=st.tuples(st.integers(1, 3), st.integers(7, 70), st.integers(9, 90)),
    codec=st.sampled_from(["none", "zstd"]),
    sels=st.lists(st.composite(lambda draw: boxes(draw))(), min_size=1, max_size=5),
)
def test_read_many_equals_each_read_and_numpys_slice(
    tmp_path_factory: pytest.TempPathFactory, chunk: tuple[int, int, int], codec: str, sels: list[Selection]
) -> None:
    a = image(ZCYX)
    out = written(tmp_path_factory.mktemp("g"), a, chunk_shape=chunk, compression=codec)
    for src in (DatasetSource(out), audited_source(out)):  # first reads (audited) and page reads
        got = src.read_many(sels)
        assert len(got) == len(sels)
        buffers = set()
        for sel, px in zip(sels, got):
            np.testing.assert_array_equal(px, sel.apply(a[None]))
            np.testing.assert_array_equal(px, src.read(sel))
            assert not px.flags.writeable and px.flags.c_contiguous
            base = arrow_base(px)
            assert base is not None and base.address % 64 == 0
            buffers.add(base.address)
        assert len(buffers) == len(sels)  # each window its own memory: keeping one keeps no other alive


def test_read_many_refuses_a_flipped_byte_and_serves_it_only_unverified(tmp_path: Path) -> None:
    a = image(ZCYX)
    out = written(tmp_path, a, chunk_shape=(1, 35, 45), compression=None)
    src = audited_source(out)
    full = Selection.full(src.meta.sizes)
    off, size = page_of(src, 5)
    with open(out / "chunks.parquet", "r+b") as f:
        f.seek(off + size - 1)
        byte = f.read(1)
        f.seek(off + size - 1)
        f.write(bytes([byte[0] ^ 0x10]))
    halves = [full.select(y=range(0, 35)), full.select(y=range(35, 70))]
    with pytest.raises(ChecksumError):
        src.read_many(halves)
    unchecked = audited_source(out, verify=False)
    assert not np.array_equal(np.concatenate(unchecked.read_many(halves), axis=3), a[None])


def test_read_many_of_a_truncated_file_raises(tmp_path: Path) -> None:
    out = written(tmp_path, image(ZCYX), chunk_shape=(1, 35, 45), compression=None)
    src = audited_source(out)
    off, _ = page_of(src, 9)
    os.truncate(out / "chunks.parquet", off + 7)
    full = Selection.full(src.meta.sizes)
    with pytest.raises(DamagedFileError, match="truncated"):
        src.read_many([full.select(z=0), full.select(z=2)])


def test_a_tile_stream_over_a_damaged_chunk_yields_the_tiles_before_it(tmp_path: Path) -> None:
    a = image((1, 1, 64, 64))
    out = written(tmp_path, a, chunk_shape=(1, 16, 16), compression=None)
    src = audited_source(out)
    off, size = page_of(src, 6)  # row group 6: the tile at y 16, x 32 (tiles go row by row)
    with open(out / "chunks.parquet", "r+b") as f:
        f.seek(off + size - 1)
        byte = f.read(1)
        f.seek(off + size - 1)
        f.write(bytes([byte[0] ^ 0x01]))
    view = OMEArrow.scan(out).tensor_view(layout="YX")
    for prefetch in (0, 2):
        got = []
        with pytest.raises(ChecksumError):
            for cap in view.iter_dlpack(tile_size=(16, 16), prefetch=prefetch):
                got.append(np.from_dlpack(cap))
        assert len(got) == 6
        for k, tile in enumerate(got):
            y, x = divmod(k, 4)
            np.testing.assert_array_equal(tile, a[0, 0, 16 * y : 16 * y + 16, 16 * x : 16 * x + 16])
