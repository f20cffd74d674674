"""Batches of whole images read straight into their outputs (typed_chunk/page_direct.py): one scattered read per run
of pages, each page's head checked and each chunk's checksum computed over the output it landed in; chunks that are
not whole, or whose pixels do not fill one stretch of the output, and pages that are not the usual one, are read
through the scratch buffer as before. Damage between two reads is refused, never read as stale or wrong pixels."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from damage import flip_byte
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_core.chunks import box_projections
from ome_arrow_core.errors import ChecksumError, DamagedFileError
from ome_arrow_core.typed_chunk import chunk_reads, page_direct
from ome_arrow_core.typed_chunk.chunk_reads import Placement
from ome_arrow_core.typed_chunk.page_direct import direct_target

N, BASE = 6, 2
APPENDED = "chunks-00001.parquet"
#: CZYX images: 2 channels, 2 planes of 8x12; stored uncompressed (the direct path reads local raw pages).
SRC = np.random.default_rng(11).integers(0, 65535, (N, 2, 2, 8, 12), dtype=np.uint16)
#: What a read of images gives: TCZYX each.
ARRS = SRC[:, None]


def _plate(root: Path, chunk_shape: tuple[int, ...] | None = None) -> Path:
    """Images 0..BASE-1 in chunks.parquet, the others appended (chunks-00001.parquet: a file no open stamps, so
    damage to it after a read is met by the page-range path, not by a fresh open)."""
    opts: dict[str, Any] = {"dim_order": "CZYX", "progress": False, "compression": None}
    if chunk_shape is not None:
        opts["chunk_shape"] = chunk_shape
    path = Path(write_dataset(list(SRC[:BASE]), root / "plate", **opts))  # type: ignore[arg-type]
    write_dataset(list(SRC[BASE:]), path, mode="append", **opts)  # type: ignore[arg-type]
    return path


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _plate(tmp_path_factory.mktemp("direct"))


def _pages(path: Path, name: str = APPENDED) -> list[tuple[int, int]]:
    """(page offset, compressed size) of each chunk of chunks file ``name``, in row group order."""
    out = []
    for table in ("index.parquet", "index-00001.parquet"):
        t = pq.read_table(path / table).to_pydict()
        for f, g, o, n in zip(t["fragment_path"], t["row_group_id"], t["page_offset"], t["page_compressed_size"]):
            if (f or "chunks.parquet") == name:
                out.append((g, o, n))
    return [(o, n) for _, o, n in sorted(out)]


@pytest.fixture
def staged(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Chunks read through the scratch buffer (place_pages), counted; the real function still reads them."""
    seen: list[int] = []
    real = chunk_reads.place_pages

    def counted(opened: Any, frag: Any, todo: Any, *args: Any) -> None:
        seen.append(len(todo))
        real(opened, frag, todo, *args)

    monkeypatch.setattr(chunk_reads, "place_pages", counted)
    yield seen


def test_whole_images_are_read_straight_into_the_batch(plate: Path, staged: list[int]) -> None:
    ds = OMEArrowDataset.scan(plate)
    np.testing.assert_array_equal(ds.read(range(N)), ARRS)  # first read: audited (not by page ranges)
    staged.clear()
    np.testing.assert_array_equal(ds.read([3, 1, 1, 5]), ARRS[[3, 1, 1, 5]])
    assert staged == []  # every chunk went straight into its image's output
    np.testing.assert_array_equal(ds.read([2, 4], roi=(1, 2, 5, 3)), ARRS[[2, 4]][..., 2:5, 1:6])
    assert sum(staged) == 2 * 2 * 2  # crops: each chunk staged (2 images x 2 channels x 2 planes)


#: Chunk shapes (CZYX): one plane of one channel, both planes of one channel, one plane of both channels, both of
#: both (C and Z reorder: staged), part of a plane's rows (one stretch of the output), part of its columns (staged).
CHUNKINGS = [None, (1, 1, 8, 12), (1, 2, 8, 12), (2, 1, 8, 12), (2, 2, 8, 12), (1, 1, 4, 12), (1, 1, 8, 6)]


@pytest.mark.parametrize("chunk", CHUNKINGS)
def test_batches_of_any_chunking_are_the_pixels(tmp_path_factory: pytest.TempPathFactory, chunk: Any) -> None:
    path = _plate(tmp_path_factory.mktemp("chunking"), None if chunk is None else (1, *chunk))

    @settings(max_examples=15, deadline=None)
    @given(picked=st.lists(st.integers(0, N - 1), min_size=1, max_size=2 * N), fill=st.integers(0, 65535))
    def check(picked: list[int], fill: int) -> None:
        ds = OMEArrowDataset.scan(path)
        for _ in range(2):  # the second read takes the audited page ranges
            np.testing.assert_array_equal(ds.read(picked), ARRS[picked])
        out = np.full(ARRS[picked].shape, fill, dtype=np.uint16)
        np.testing.assert_array_equal(ds.read(picked, out=out), ARRS[picked])

    check()


@pytest.mark.parametrize(
    ("chunk", "straight"),
    [
        ((1, 1, 4, 12), True),  # full-width rows of a plane
        ((1, 1, 1, 6), True),  # half a row
        ((1, 2, 1, 12), False),  # a full-width row of two planes: two stretches of the output, examined
        ((1, 1, 4, 6), None),  # tiles of a plane: never one stretch, not examined
        ((1, 2, 1, 6), None),
    ],
)
def test_chunks_narrower_than_the_output_are_not_examined_for_a_straight_read(
    tmp_path: Path, staged: list[int], monkeypatch: pytest.MonkeyPatch, chunk: tuple[int, ...], straight: bool | None
) -> None:
    """Full-width chunks and chunks of one row are read straight into their outputs where they fill one stretch of
    it; a batch of chunks narrower than the output and longer than one row (tiles of a plane) is handed to
    place_pages before any output view is made for them (no direct_target call)."""
    path = _plate(tmp_path, (1, *chunk))
    ds = OMEArrowDataset.scan(path)
    np.testing.assert_array_equal(ds.read(range(N)), ARRS)  # first read: audited (not by page ranges)
    staged.clear()
    examined: list[bool] = []
    real = page_direct.direct_target

    def counted(p: Placement) -> memoryview | None:
        target = real(p)
        examined.append(target is not None)
        return target

    monkeypatch.setattr(page_direct, "direct_target", counted)
    np.testing.assert_array_equal(ds.read([4, 0, 2]), ARRS[[4, 0, 2]])
    chunks = 3 * (2 * 2 * 8 * 12) // int(np.prod(chunk))
    if straight:
        assert staged == [] and examined == [True] * chunks
    else:
        assert sum(staged) == chunks and examined == ([] if straight is None else [False] * chunks)


def _read_twice(path: Path) -> OMEArrowDataset:
    ds = OMEArrowDataset.scan(path)
    for _ in range(2):
        np.testing.assert_array_equal(ds.read(range(N)), ARRS)
    return ds


FILES = ("chunks.parquet", APPENDED)


def _first(name: str) -> int:
    """The first image whose chunks file ``name`` is (4 chunks an image: 2 channels x 2 planes)."""
    return 0 if name == FILES[0] else BASE


def _others(image: int) -> list[int]:
    return [i for i in range(N) if i != image]


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("where", ["value", "level", "length"])
def test_a_page_damaged_in_a_run_is_refused(name: str, where: str, tmp_path: Path) -> None:
    path = _plate(tmp_path)
    ds = _read_twice(path)
    o, n = _pages(path, name)[5]  # the second image's channel 0, plane 1: inside the batch's run of pages
    image = _first(name) + 1
    at = {"value": o + n - 7, "level": o + 5, "length": o + 7}[where]
    flip_byte(path / name, at, 0x21)
    with pytest.raises(ChecksumError if where == "value" else DamagedFileError):
        ds.read(range(N))
    with pytest.raises(ChecksumError if where == "value" else DamagedFileError):
        ds.read([image])
    np.testing.assert_array_equal(ds.read(_others(image)), ARRS[_others(image)])  # the others still read
    flip_byte(path / name, at, 0x21)
    np.testing.assert_array_equal(ds.read(range(N)), ARRS)


@pytest.mark.parametrize("name", FILES)
def test_bytes_between_pages_are_not_pixels(name: str, tmp_path: Path) -> None:
    # the gap before a page (the next row group's other columns: read and dropped) damaged after the audit: the
    # pixels read are still the file's, each compared with its checksum (a fresh open audits and refuses it)
    path = _plate(tmp_path)
    ds = _read_twice(path)
    (o, n), (o2, _) = _pages(path, name)[4:6]
    flip_byte(path / name, (o + n + o2) // 2, 0xFF)
    try:
        got = ds.read(range(N))
    except DamagedFileError:
        assert name == FILES[0]  # chunks.parquet changed: opened afresh, its rows audited again (may be refused)
    else:
        np.testing.assert_array_equal(got, ARRS)


@pytest.mark.parametrize("name", FILES)
def test_a_file_truncated_inside_a_run_is_refused(name: str, tmp_path: Path) -> None:
    path = _plate(tmp_path)
    ds = _read_twice(path)
    o, n = _pages(path, name)[-3]  # the last image's channel 1, plane 0
    os.truncate(path / name, o + n // 2)
    # (into an output that holds no pixels of the last read: recycled memory would hide a missing tail)
    out = np.full(ARRS.shape, 7, dtype=ARRS.dtype)
    with pytest.raises(
        DamagedFileError, match="the file is truncated" if name == APPENDED else "the file is truncated|footer"
    ):
        ds.read(range(N), out=out)  # (chunks.parquet changed: opened afresh, its footer is gone)
    before = list(range(_first(name) + 1))  # the file's first image: its pages lie before the cut
    if name == APPENDED:
        np.testing.assert_array_equal(ds.read(before), ARRS[before])
    else:
        with pytest.raises(DamagedFileError):  # chunks.parquet changed: opened afresh, its footer is gone
            ds.read(before)


@pytest.mark.parametrize("name", FILES)
def test_a_file_rewritten_in_place_is_refused(name: str, tmp_path: Path) -> None:
    path = _plate(tmp_path)
    ds = _read_twice(path)
    pages = _pages(path, name)
    data = bytearray((path / name).read_bytes())
    (oa, n), (ob, _) = pages[0], pages[4]  # the first two images' first planes swapped: valid pages, wrong places
    data[oa + 10 : oa + n], data[ob + 10 : ob + n] = data[ob + 10 : ob + n], data[oa + 10 : oa + n]
    with open(path / name, "r+b") as f:  # the same inode and size, other bytes
        f.write(data)
    with pytest.raises(ChecksumError):
        ds.read(range(N))
    for image in (_first(name), _first(name) + 1):
        with pytest.raises(ChecksumError):
            ds.read([image])
    rest = [i for i in range(N) if i not in (_first(name), _first(name) + 1)]
    np.testing.assert_array_equal(ds.read(rest), ARRS[rest])


@pytest.mark.parametrize(
    ("chunk", "whole"), [((1, 2, 2, 8, 12), False), ((1, 1, 2, 8, 12), True), ((1, 2, 1, 8, 6), False)]
)
def test_only_chunks_that_fill_one_stretch_in_their_own_order_are_read_straight(
    chunk: tuple[int, ...], whole: bool
) -> None:
    # a TZCYX output (as reads place pixels): a chunk of several channels and planes is stored TCZYX, another order
    image = np.array([[1, *chunk[1:3], 8, 12]], dtype=np.int64)
    (proj,) = box_projections(np.zeros((1, 5), np.int64), np.array([chunk], np.int64), np.zeros(5, np.int64), image[0])
    out = np.zeros((1, chunk[2], chunk[1], 8, 12), dtype=np.uint16)
    target = direct_target(Placement(0, proj, out, np.dtype(np.uint16)))
    assert (target is not None) == whole
    if target is not None:
        assert len(target) == out.nbytes
        target[:2] = b"\x01\x02"
        assert out.reshape(-1)[0] == 0x0201  # the output's own memory


@settings(max_examples=200, deadline=None)
@given(
    image=st.tuples(*[st.integers(1, 3)] * 3, st.integers(1, 6), st.integers(1, 6)),
    data=st.data(),
)
def test_the_up_front_test_never_passes_over_a_chunk_that_fills_one_stretch(
    image: tuple[int, ...], data: st.DataObject
) -> None:
    """Every whole chunk (any shape, anywhere in a box of any size) whose output region is one contiguous stretch
    passes page_direct's up-front test: it only skips chunks that could never be read straight."""
    chunk = tuple(data.draw(st.integers(1, n)) for n in image)
    at = tuple(data.draw(st.integers(0, n - c)) for n, c in zip(image, chunk))
    (proj,) = box_projections(
        np.array([at], np.int64), np.array([chunk], np.int64), np.zeros((1, 5), np.int64), np.array([image], np.int64)
    )
    t, c, z, y, x = image
    p = Placement(0, proj, np.zeros((t, z, c, y, x), np.uint16), np.dtype(np.uint16))
    if p.out[proj.out_selection].flags.c_contiguous:
        assert page_direct._may_fill(p)
    if not page_direct._may_fill(p):
        assert direct_target(p) is None
