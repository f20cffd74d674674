"""Tile streams (``iter_dlpack(tile_size=..., prefetch=...)``) over every plane: each tile equals numpy's slice of
the source, stays so after the stream moves on (no read buffer is reused under a tile a consumer keeps), and damage
(a flipped byte, a truncated file, a file replaced between streams) is refused at the tile it hits, never served."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from damage import chunk_page, flip_byte
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrow
from ome_arrow_core.errors import ChecksumError, DamagedFileError
from ome_arrow_core.iteration import GROUP_ITEMS
from ome_arrow_core.typed_chunk import DatasetSource

DTYPES = ["uint8", "int8", "uint16", "int16", "int32", "float32", "float64"]


def pixels(shape: tuple[int, ...], dtype: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return (rng.standard_normal(shape) * 1000).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


def written(tmp: Path, a: np.ndarray, chunk: tuple[int, int], **options: Any) -> Path:
    out = tmp / "s.ome.parquet"
    OMEArrow(a, "ZCYX").export("parquet", out, **{"chunk_shape": (1, *chunk), "compression": None, **options})
    return out


def tiles_of(plane: np.ndarray, h: int, w: int) -> list[np.ndarray]:
    ny, nx = plane.shape
    return [plane[y : y + h, x : x + w] for y in range(0, ny, h) for x in range(0, nx, w)]


def page_of_tile(out: Path, z: int, c: int, y: int, x: int) -> tuple[int, int]:
    """(offset, size) of the page of the chunk at plane (z, c), origin (y, x) in ``out``'s chunks file."""
    src = DatasetSource(out)
    at = np.flatnonzero((src._chunks.origin == [0, c, z, y, x]).all(axis=1))  # TCZYX
    row = int(src._index_rows[int(at[0])])
    return chunk_page(src, int(src._opened.columns["row_group_id"][row]))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    dtype=st.sampled_from(DTYPES),
    zc=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    yx=st.tuples(st.integers(5, 80), st.integers(5, 90)),
    chunk=st.tuples(st.integers(4, 40), st.integers(4, 40)),
    tile=st.one_of(st.none(), st.tuples(st.integers(3, 50), st.integers(3, 50))),
    prefetch=st.integers(0, 2),
    audited=st.booleans(),
    codec=st.sampled_from([None, "zstd"]),
)
def test_every_streamed_tile_is_numpys_slice_and_stays_so(
    tmp_path_factory: pytest.TempPathFactory,
    dtype: str,
    zc: tuple[int, int],
    yx: tuple[int, int],
    chunk: tuple[int, int],
    tile: tuple[int, int] | None,
    prefetch: int,
    audited: bool,
    codec: str | None,
) -> None:
    a = pixels((*zc, *yx), dtype, seed=sum(yx) + 7 * chunk[0])
    img = OMEArrow.scan(written(tmp_path_factory.mktemp("t"), a, chunk, compression=codec))
    if audited:
        img.to_numpy()  # later reads by page ranges: tiles that are whole chunks are read together
    h, w = tile or chunk  # tiles that are the chunks, or any other tiling
    kept: list[tuple[np.ndarray, np.ndarray]] = []
    for _ in range(2):  # a second pass reads into fresh memory again, under the tiles kept from the first
        for z in range(zc[0]):
            for c in range(zc[1]):
                want = tiles_of(a[z, c], h, w)
                got = [
                    np.from_dlpack(t)
                    for t in img.tensor_view(z=z, c=c, layout="YX").iter_dlpack(tile_size=(h, w), prefetch=prefetch)
                ]
                assert len(got) == len(want)
                for g, e in zip(got, want):
                    assert g.dtype == a.dtype and not g.flags.writeable
                    np.testing.assert_array_equal(g, e)
                    kept.append((g, e))
    for g, e in kept:  # every tile kept is still the file's pixels
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("prefetch", [0, 1, 2])
def test_tiles_kept_while_the_stream_goes_on_never_change(tmp_path: Path, prefetch: int) -> None:
    a = pixels((2, 1, 160, 160), "uint16", seed=1)
    img = OMEArrow.scan(written(tmp_path, a, (16, 16)))
    img.to_numpy()
    view = img.tensor_view(z=0, c=0, layout="YX")
    stream = view.iter_dlpack(tile_size=(16, 16), prefetch=prefetch)  # 100 tiles: more than one group
    assert GROUP_ITEMS + 3 < 100
    first = [np.from_dlpack(next(stream)) for _ in range(GROUP_ITEMS + 3)]
    copies = [t.copy() for t in first]
    rest = [np.from_dlpack(t) for t in stream]
    other = [np.from_dlpack(t) for t in img.tensor_view(z=1, c=0, layout="YX").iter_dlpack(tile_size=(16, 16))]
    for t, copy, want in zip(first, copies, tiles_of(a[0, 0], 16, 16)):
        np.testing.assert_array_equal(t, copy)
        np.testing.assert_array_equal(t, want)
    assert len(first) + len(rest) == 100 and len(other) == 100
    addresses = {t.__array_interface__["data"][0] for t in first + rest + other}
    assert len(addresses) == 200  # no two tiles share memory


@pytest.mark.parametrize("prefetch", [0, 1, 2])
@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_a_flipped_byte_raises_at_its_tile_after_the_tiles_before_it(tmp_path: Path, prefetch: int, dtype: str) -> None:
    a = pixels((1, 1, 160, 160), dtype, seed=2)
    out = written(tmp_path, a, (16, 16))
    img = OMEArrow.scan(out)
    img.to_numpy()  # audited: the stream reads the whole chunks together
    off, size = page_of_tile(out, 0, 0, 112, 32)  # tile 7 * 10 + 2 = 72: in the second group
    assert GROUP_ITEMS <= 72 < 2 * GROUP_ITEMS
    flip_byte(out / "chunks.parquet", off + size - 3)
    got = []
    with pytest.raises(ChecksumError, match="do not match their checksum"):
        for t in img.tensor_view(layout="YX").iter_dlpack(tile_size=(16, 16), prefetch=prefetch):
            got.append(np.from_dlpack(t))
    assert len(got) == 72
    for g, e in zip(got, tiles_of(a[0, 0], 16, 16)):
        np.testing.assert_array_equal(g, e)
    unchecked = OMEArrow.scan(out, verify=False).tensor_view(layout="YX").iter_dlpack(tile_size=(16, 16))
    served = [np.from_dlpack(t) for t in unchecked]
    assert not np.array_equal(served[72], tiles_of(a[0, 0], 16, 16)[72])  # the flip is in the pixels


@pytest.mark.parametrize("verify", [True, False])
def test_a_truncated_file_raises_at_the_first_tile_it_cuts(tmp_path: Path, verify: bool) -> None:
    a = pixels((1, 1, 160, 160), "int8", seed=3)
    out = written(tmp_path, a, (16, 16))
    img = OMEArrow.scan(out, verify=verify)
    img.to_numpy()
    off, _ = page_of_tile(out, 0, 0, 144, 144)  # tile 99: the last of the second group
    assert GROUP_ITEMS <= 99 < 2 * GROUP_ITEMS
    os.truncate(out / "chunks.parquet", off + 40)
    got = []
    with pytest.raises(DamagedFileError, match="the file is truncated"):
        for t in img.tensor_view(layout="YX").iter_dlpack(tile_size=(16, 16), prefetch=2):
            got.append(np.from_dlpack(t))
    assert len(got) == 99  # every tile before the cut
    for g, e in zip(got, tiles_of(a[0, 0], 16, 16)):
        np.testing.assert_array_equal(g, e)


def swapped_pages(out: Path) -> bytes:
    """``out``'s chunks file with the pages of tiles 1 and 2 of its first plane swapped (same sizes)."""
    (p0, n0), (p1, n1) = page_of_tile(out, 0, 0, 0, 16), page_of_tile(out, 0, 0, 0, 32)
    data = bytearray((out / "chunks.parquet").read_bytes())
    data[p0 : p0 + n0], data[p1 : p1 + n1] = data[p1 : p1 + n1], data[p0 : p0 + n0]
    return bytes(data)


def streamed_twice(out: Path) -> tuple[Any, list[np.ndarray]]:
    """A YX view of ``out``'s one plane, streamed twice (through the footer, then by page ranges), and its tiles."""
    view = OMEArrow.scan(out).tensor_view(layout="YX")
    want = tiles_of(OMEArrow.scan(out).to_numpy()[0, 0, 0], 16, 16)
    for _ in range(2):
        for g, e in zip([np.from_dlpack(t) for t in view.iter_dlpack(tile_size=(16, 16), prefetch=2)], want):
            np.testing.assert_array_equal(g, e)
    return view, want


def test_a_chunks_file_replaced_between_streams_serves_no_stale_pixels(tmp_path: Path) -> None:
    out = written(tmp_path, pixels((1, 1, 64, 64), "uint16", seed=4), (16, 16))
    view, want = streamed_twice(out)
    (tmp_path / "swapped.parquet").write_bytes(swapped_pages(out))
    os.replace(tmp_path / "swapped.parquet", out / "chunks.parquet")
    try:  # the open file may still be read (it holds the bytes the index describes); the new one never passes
        got = [np.from_dlpack(t) for t in view.iter_dlpack(tile_size=(16, 16), prefetch=2)]
    except ChecksumError:
        pass
    else:
        for g, e in zip(got, want):
            np.testing.assert_array_equal(g, e)
    fresh = OMEArrow.scan(shutil.copytree(out, tmp_path / "copy")).tensor_view(layout="YX")
    with pytest.raises(ChecksumError):  # a fresh open reads the new file
        list(fresh.iter_dlpack(tile_size=(16, 16), prefetch=2))


@pytest.mark.parametrize("prefetch", [0, 2])
def test_a_chunks_file_rewritten_in_place_between_streams_is_refused_at_its_first_changed_tile(
    tmp_path: Path, prefetch: int
) -> None:
    out = written(tmp_path, pixels((1, 1, 64, 64), "uint16", seed=5), (16, 16))
    view, want = streamed_twice(out)
    data = swapped_pages(out)
    with open(out / "chunks.parquet", "r+b") as f:  # the same file (inode, size), other bytes
        f.write(data)
    got = []
    with pytest.raises(ChecksumError):
        for t in view.iter_dlpack(tile_size=(16, 16), prefetch=prefetch):
            got.append(np.from_dlpack(t))
    assert len(got) == 1
    np.testing.assert_array_equal(got[0], want[0])


@pytest.mark.parametrize("prefetch", [0, 2])
def test_tiles_of_a_cast_view_dropping_channels_are_numpys_slices(tmp_path: Path, prefetch: int) -> None:
    a = pixels((2, 3, 48, 40), "uint16", seed=6)
    img = OMEArrow.scan(written(tmp_path, a, (16, 16)))
    img.to_numpy()
    view = img.tensor_view(z=1, layout="YX", dtype="float64", channel_policy="first")  # channel 0, cast
    before = view.source.chunks_read  # type: ignore[attr-defined]
    got = [np.from_dlpack(t) for t in view.iter_dlpack(tile_size=(16, 16), prefetch=prefetch)]
    assert view.source.chunks_read - before == 9  # type: ignore[attr-defined]  # channel 0's chunks only
    want = tiles_of(a[1, 0].astype("float64"), 16, 16)
    assert len(got) == len(want) == 9
    for g, e in zip(got, want):
        assert g.dtype == np.float64
        np.testing.assert_array_equal(g, e)
    zyx = img.tensor_view(layout="ZYX", channel_policy="first").iter_dlpack(tile_size=(16, 16), prefetch=prefetch)
    got = [np.from_dlpack(t) for t in zyx]
    assert len(got) == 9
    for g, e in zip(
        [np.from_dlpack(t) for t in zyx], [a[:, 0, y : y + 16, x : x + 16] for y in (0, 16, 32) for x in (0, 16, 32)]
    ):
        np.testing.assert_array_equal(g, e)
