"""Batch reads of a plate's small images (what the torch loaders ask for): the pieces of an aligned index read by
their page ranges, every chunk's checksum checked on every read, and a chunks file damaged between two reads
(bytes flipped, truncated, rewritten in place or replaced) refused on the next read."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from damage import flip_byte
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_core.errors import ChecksumError, DamagedFileError
from ome_arrow_core.typed_chunk.grouped_reads import GroupedPages, ranged_piece, ranged_pieces
from ome_arrow_core.typed_chunk.opening import open_dataset

N, BASE = 12, 8  # images; the first BASE in chunks.parquet, the others appended (chunks-00001.parquet)
ARRS = np.random.default_rng(7).integers(0, 65535, (N, 2, 16, 12), dtype=np.uint16)
FILES = ("chunks.parquet", "chunks-00001.parquet")


def _plate(root: Path, compression: str | None = None) -> Path:
    opts = {"dim_order": "CYX", "progress": False, "images_per_group": 3}  # aligned index: read piece by piece
    opts.update({"compression": compression} if compression else {})
    path = write_dataset(list(ARRS[:BASE]), root / "plate", **opts)  # type: ignore[arg-type]
    write_dataset(list(ARRS[BASE:]), path, mode="append", **opts)  # type: ignore[arg-type]
    return path


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _plate(tmp_path_factory.mktemp("loader"))


def _pages(path: Path) -> dict[str, list[tuple[int, int]]]:
    """(page offset, compressed size) of each chunk of each chunks file, in row group order."""
    out: dict[str, list[tuple[int, int]]] = {}
    for name in ("index.parquet", "index-00001.parquet"):
        t = pq.read_table(path / name).to_pydict()
        for f, g, o, n in zip(t["fragment_path"], t["row_group_id"], t["page_offset"], t["page_compressed_size"]):
            out.setdefault(f or "chunks.parquet", []).append((g, o, n))
    return {f: [(o, n) for _, o, n in sorted(v)] for f, v in out.items()}


def _images_of(name: str) -> list[int]:
    return list(range(BASE)) if name == FILES[0] else list(range(BASE, N))


def test_a_plates_batches_are_read_through_its_page_pieces(plate: Path) -> None:
    ds = OMEArrowDataset.scan(plate)
    np.testing.assert_array_equal(ds.read(range(N)), ARRS)  # first read: audited against the index
    opened = open_dataset(plate)
    for code in range(len(opened.fragment_names)):
        frag = opened.fragment(code)
        assert isinstance(frag, GroupedPages)
        piece = ranged_piece(frag, np.arange(2, dtype=np.int64))
        assert piece is not None and piece[1] == 0
        assert ranged_piece(frag, np.arange(8, dtype=np.int64)) is None  # images 0-2 and 3: two pieces
        pieces = ranged_pieces(frag, np.array([0, 0, 1, 6, 7], dtype=np.int64))
        assert pieces is not None and [(lo, a, b) for _, lo, a, b in pieces] == [(0, 0, 3), (6, 3, 5)]
        assert ranged_pieces(frag, np.array([0, 10**6], dtype=np.int64)) is None  # a group no piece holds
    np.testing.assert_array_equal(ds.read(range(N)), ARRS)  # later reads: by page ranges


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.integers(0, N - 1), min_size=1, max_size=2 * N),
    st.integers(0, 11),
    st.integers(0, 15),
)
def test_batches_in_any_order_and_crops_are_the_pixels(plate: Path, picked: list[int], x0: int, y0: int) -> None:
    ds = OMEArrowDataset.scan(plate)
    np.testing.assert_array_equal(ds.read(picked), ARRS[picked])
    w, h = 12 - x0, 16 - y0
    np.testing.assert_array_equal(ds.read(picked, roi=(x0, y0, w, h)), ARRS[picked][..., y0 : y0 + h, x0 : x0 + w])


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("compression", [None, "zstd"])
def test_bytes_flipped_between_two_reads_are_refused(name: str, compression: str | None, tmp_path: Path) -> None:
    path = _plate(tmp_path, compression)
    pages = _pages(path)[name]
    mine = _images_of(name)
    ds = OMEArrowDataset.scan(path)
    for _ in range(2):  # the second read takes the cached page pieces
        np.testing.assert_array_equal(ds.read(range(N)), ARRS)
    o, n = pages[3]  # chunk 3 of the file: image mine[1], channel 1
    for at, error in (
        (o + n - 1, ChecksumError if compression is None else DamagedFileError),
        (o + 5, DamagedFileError),
    ):
        flip_byte(path / name, at, 0x5A)
        with pytest.raises(error):
            ds.read(range(N))
        with pytest.raises(error):
            ds.read([mine[1]])
        np.testing.assert_array_equal(ds.read([i for i in range(N) if i != mine[1]]), np.delete(ARRS, mine[1], 0))
        flip_byte(path / name, at, 0x5A)  # restored: read as before
        np.testing.assert_array_equal(ds.read(range(N)), ARRS)


@pytest.mark.parametrize("name", FILES)
def test_a_file_truncated_between_two_reads_is_refused(name: str, tmp_path: Path) -> None:
    path = _plate(tmp_path)
    o, _ = _pages(path)[name][-1]  # the last chunk's page
    ds = OMEArrowDataset.scan(path)
    for _ in range(2):
        np.testing.assert_array_equal(ds.read(range(N)), ARRS)
    os.truncate(path / name, o + 20)
    with pytest.raises(DamagedFileError):
        ds.read(range(N))
    with pytest.raises(DamagedFileError):
        ds.read([_images_of(name)[-1]])


def _swapped(file: Path, a: tuple[int, int], b: tuple[int, int]) -> bytes:
    """The bytes of ``file`` with the page values of two equally long pages swapped (a valid file, wrong pixels)."""
    data = bytearray(file.read_bytes())
    (oa, n), (ob, m) = a, b
    assert n == m
    data[oa + 10 : oa + n], data[ob + 10 : ob + n] = data[ob + 10 : ob + n], data[oa + 10 : oa + n]
    return bytes(data)


@pytest.mark.parametrize("name", FILES)
def test_a_file_rewritten_in_place_between_two_reads_is_refused(name: str, tmp_path: Path) -> None:
    path = _plate(tmp_path)
    pages = _pages(path)[name]
    ds = OMEArrowDataset.scan(path)
    for _ in range(2):
        np.testing.assert_array_equal(ds.read(range(N)), ARRS)
    new = _swapped(path / name, pages[0], pages[2])  # image 0 of the file's channel 0 <-> image 1's
    with open(path / name, "r+b") as f:  # the same file (inode, size), other bytes
        f.write(new)
    with pytest.raises(ChecksumError):
        ds.read(range(N))
    mine = _images_of(name)
    np.testing.assert_array_equal(ds.read(mine[2:]), ARRS[mine[2:]])  # the other images still read


@pytest.mark.parametrize("name", FILES)
def test_a_file_replaced_between_two_reads_gives_its_pixels_or_is_refused(name: str, tmp_path: Path) -> None:
    path = _plate(tmp_path)
    pages = _pages(path)[name]
    ds = OMEArrowDataset.scan(path)
    for _ in range(2):
        np.testing.assert_array_equal(ds.read(range(N)), ARRS)
    (tmp_path / "new").write_bytes(_swapped(path / name, pages[0], pages[2]))
    os.replace(tmp_path / "new", path / name)
    mine = _images_of(name)
    # an open file may still be read (it holds the bytes the index describes); the new one never passes
    try:
        got = ds.read(range(N))
    except ChecksumError:
        pass
    else:
        np.testing.assert_array_equal(got, ARRS)
    with pytest.raises(ChecksumError):  # a fresh open reads the new file
        OMEArrowDataset.scan(shutil.copytree(path, tmp_path / "copy")).read(mine[:1])
