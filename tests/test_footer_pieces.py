"""Chunks files' footers checked in pieces (``footer_block``, ``footer_sums``): their head and tail checked at open,
each block of row group entries before an entry in it is parsed, the whole footer before it is parsed whole (and
by verify); lies, damage and records written without them refused or read as before."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from table_records import edit_groups, groups_of, read_lists, save_lists

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_core.errors import ChecksumError, DamagedFileError
from ome_arrow_core.typed_chunk import group_sums
from ome_arrow_core.typed_chunk.chunk_footers import PACKED_FOOTERS_KEY
from ome_arrow_core.typed_chunk.footer_pieces import FOOTER_BLOCK, piece_sums
from ome_arrow_core.typed_chunk.opening import clear_cache
from ome_arrow_core.typed_chunk.packed_ints import unpack_ints
from ome_arrow_core.verification import verify

MANIFEST = "_ome_arrow_dataset.json"
PER = 2  # images a row group of each table
N = 80  # 40 row groups: three blocks of entries
#: Datasets written without pixel locators: their one-chunk images are read through chunks.parquet's footer
#: records, whose pieces are tested here (see conftest).
pytestmark = pytest.mark.usefixtures("written_without_locators")


def _image(i: int) -> np.ndarray:
    return ((np.arange(64, dtype=np.int64) * 3 + 11 * i) % 4096).astype(np.uint16).reshape(1, 8, 8)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plate of small images, two to a row group of each table (its chunks packed: read through their footer)."""
    from ome_arrow_core.typed_chunk import packing

    old = packing.GROUP_IMAGES
    packing.GROUP_IMAGES = PER
    try:
        return write_dataset(
            (_image(i) for i in range(N)),
            tmp_path_factory.mktemp("pieces") / "plate",
            dim_order="CYX",
            metadata=[{"well": f"W{i % 4}"} for i in range(N)],
            images_per_group=PER,
            progress=False,
        )
    finally:
        packing.GROUP_IMAGES = old


@pytest.fixture
def plate(base: Path, tmp_path: Path) -> Path:
    out = tmp_path / "plate"
    shutil.copytree(base, out)
    _fresh()
    return out


def _fresh() -> None:
    """Forget what this process checked and opened (a fresh process's first open)."""
    clear_cache()
    group_sums._passed.clear()
    group_sums._heads.clear()


def _entries(root: Path) -> dict[str, Any]:
    lists = read_lists(root)[1]  # the manifest's, or its sidecar's (40 row groups a table: a sidecar)
    return {**groups_of(lists), **lists[PACKED_FOOTERS_KEY]}


def _spans(entry: dict[str, Any]) -> list[int]:
    if "footer_spans" in entry:
        return list(entry["footer_spans"])
    g = entry["groups"]
    return unpack_ints(entry["ints"], 3 * g + 4)[2 * g :].tolist()


def _edit(root: Path, name: str, edit: Any) -> None:
    manifest, lists = read_lists(root)
    if name in groups_of(lists):
        edit_groups(lists, lambda entries: edit(entries[name]))
    else:
        edit(lists[PACKED_FOOTERS_KEY][name])
    save_lists(root, manifest, lists)  # the sidecar's new digest recorded: a lie the manifest vouches for


def _flip(root: Path, name: str, at: int) -> None:
    data = bytearray((root / name).read_bytes())
    data[at] ^= 0x04
    (root / name).write_bytes(bytes(data))


def _all_read(root: Path) -> None:
    ds = OMEArrowDataset.scan(root)
    for i in range(N):
        np.testing.assert_array_equal(ds[i].to_numpy(layout="CYX"), _image(i))


def test_a_chunks_file_records_the_digests_of_its_footers_pieces(base: Path) -> None:
    entries = _entries(base)
    assert set(entries) == {"images.parquet", "index.parquet", "chunks.parquet"}
    assert "footer_sums" not in entries["images.parquet"] and "footer_sums" not in entries["index.parquet"]
    for name, entry in entries.items():
        if name != "chunks.parquet":  # tables: their footers are hashed whole at open (parsed whole in places)
            continue
        spans = _spans(entry)
        footer = (base / name).read_bytes()[spans[0] : spans[0] + spans[1]]
        assert entry["footer_block"] == FOOTER_BLOCK
        assert entry["footer_sums"] == piece_sums(footer, spans)
        assert len(entry["footer_sums"]) == 16 * (1 + -(-(len(spans) - 4) // FOOTER_BLOCK))


def test_every_image_reads_as_written_through_checked_pieces(plate: Path) -> None:
    _all_read(plate)
    assert verify(plate).ok


@pytest.mark.parametrize("name", ["chunks.parquet"])
def test_a_lie_in_the_head_digest_is_refused_before_anything_is_parsed(plate: Path, name: str) -> None:
    _edit(plate, name, lambda e: e.update(footer_sums="0123456789abcdef" + e["footer_sums"][16:]))
    with pytest.raises(ChecksumError, match="head and tail"):
        OMEArrowDataset.scan(plate)[0].to_numpy()


@pytest.mark.parametrize("name", ["chunks.parquet"])
def test_a_lie_in_a_block_digest_refuses_that_blocks_row_groups_only(plate: Path, name: str) -> None:
    _edit(
        plate, name, lambda e: e.update(footer_sums=e["footer_sums"][:32] + "0123456789abcdef" + e["footer_sums"][48:])
    )
    ds = OMEArrowDataset.scan(plate)
    np.testing.assert_array_equal(ds[0].to_numpy(layout="CYX"), _image(0))  # block 0
    with pytest.raises(ChecksumError, match=f"entries of row groups {FOOTER_BLOCK}\\.\\."):
        ds[PER * (FOOTER_BLOCK + 3)].to_numpy()  # block 1 (each table's row groups hold the same images)
    last = PER * 2 * FOOTER_BLOCK
    np.testing.assert_array_equal(ds[last].to_numpy(layout="CYX"), _image(last))


@pytest.mark.parametrize("name", ["chunks.parquet"])
def test_a_flipped_entry_byte_is_refused_before_its_entry_is_parsed_and_verify_finds_it(plate: Path, name: str) -> None:
    spans = _spans(_entries(plate)[name])
    _flip(plate, name, spans[0] + spans[4 + FOOTER_BLOCK + 2] + 5)  # inside row group 18's entry (block 1)
    ds = OMEArrowDataset.scan(plate)
    np.testing.assert_array_equal(ds[1].to_numpy(layout="CYX"), _image(1))
    with pytest.raises(ChecksumError, match="footer"):
        ds[PER * (FOOTER_BLOCK + 2)].to_numpy()
    _fresh()
    assert not verify(plate).ok


def test_bytes_no_piece_covers_are_checked_with_the_whole_footer(plate: Path) -> None:
    """The row group list's own header is used by no one-group footer: reads serve the right pixels; the whole
    footer's digest, checked before the footer is parsed whole and by verify, finds the damage."""
    spans = _spans(_entries(plate)["chunks.parquet"])
    header, first = spans[2], spans[4]
    assert header < first
    _flip(plate, "chunks.parquet", spans[0] + first - 1)
    _all_read(plate)
    _fresh()
    report = verify(plate)
    assert not report.ok and "chunks.parquet" in str(report.damage)


@pytest.mark.parametrize(
    "edit",
    [
        lambda e: e.update(footer_sums=e["footer_sums"][:-16]),  # a block's digest missing
        lambda e: e.update(footer_sums="z" * len(e["footer_sums"])),  # not hex
        lambda e: e.update(footer_block=0),
        lambda e: e.update(footer_block="16"),
        lambda e: e.update(footer_block=8),  # not the blocks its digests are of
        lambda e: e.pop("footer_block"),
    ],
    ids=["short", "not-hex", "block-0", "block-text", "other-block", "no-block"],
)
@pytest.mark.parametrize("name", ["chunks.parquet"])
def test_malformed_piece_records_are_a_damaged_manifest(plate: Path, name: str, edit: Any) -> None:
    _edit(plate, name, edit)
    with pytest.raises(DamagedFileError, match="footer_sums"):
        OMEArrowDataset.scan(plate)[0].to_numpy()


@pytest.mark.parametrize("name", ["chunks.parquet"])
def test_entries_written_without_pieces_check_the_footer_whole_as_before(plate: Path, name: str) -> None:
    _edit(plate, name, lambda e: (e.pop("footer_sums"), e.pop("footer_block")))
    _all_read(plate)
    spans = _spans(_entries(plate)[name])
    _flip(plate, name, spans[0] + spans[4 + FOOTER_BLOCK + 2] + 5)
    _fresh()
    with pytest.raises(ChecksumError, match="footer"):
        OMEArrowDataset.scan(plate)[0].to_numpy()  # the footer hashed whole at open, as before
