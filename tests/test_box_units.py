"""Units of box plans (typed_chunk/box_units.py): chunks side by side along x, neighbours in the file, are read by
one preadv and copied by one assignment; the units of a plane are its chunk rows (split evenly to fit the scratch
buffer), and damage to any page of a unit (a flipped byte, a truncated file, a head that lies or is unusual, pages
swapped in place) is refused or read right exactly as a chunk read on its own is."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from damage import audited, flip_byte, lie_in_length
from test_box_plans import box, pixels, planned, written

import ome_arrow_core.typed_chunk.box_plans as box_plans
from ome_arrow_core.errors import ChecksumError, DamagedFileError
from ome_arrow_core.selection import Selection
from ome_arrow_core.typed_chunk import DatasetSource


def plan_of(src: DatasetSource, sel: Selection) -> box_plans.BoxPlan:
    got = src._plans[box_plans.box_key(sel)]
    assert isinstance(got, box_plans.BoxPlan)
    return got


def sizes(plan: box_plans.BoxPlan) -> list[int]:
    return [len(u.checks) for u in plan.units]


@pytest.mark.parametrize(
    ("shape", "dtype", "chunk", "want"),
    [
        ((1, 1, 2, 64, 128), "<u2", (1, 32, 32), [4, 4]),  # a plane of 2x4 chunks: its two chunk rows
        ((1, 1, 1, 256, 2048), "<u2", (1, 256, 256), [4, 4]),  # 8 pages of 128 KiB: 7 fit, split evenly
        ((1, 1, 1, 256, 768), "<f8", (1, 256, 256), [1, 1, 1]),  # 512 KiB pages: one a unit
        ((1, 1, 1, 64, 100), "|i1", (1, 32, 32), [3, 1, 3, 1]),  # the last chunk of a row is narrower
    ],
)
def test_the_units_of_a_plane_are_its_chunk_rows(
    tmp_path: Path, shape: tuple[int, ...], dtype: str, chunk: tuple[int, int, int], want: list[int]
) -> None:
    a = pixels(shape, dtype)
    src = DatasetSource(written(tmp_path, a, chunk))
    sel = box(src, range(1), range(1), range(shape[2] - 1, shape[2]), range(shape[3]), range(shape[4]))
    np.testing.assert_array_equal(planned(src, sel), sel.apply(a.transpose(0, 2, 1, 3, 4)))
    assert sizes(plan_of(src, sel)) == want


def test_a_crop_groups_its_whole_chunks_only(tmp_path: Path) -> None:
    a = pixels((1, 1, 1, 64, 160), "<u2")
    src = DatasetSource(written(tmp_path, a, (1, 32, 32)))
    sel = box(src, range(1), range(1), range(1), range(5, 60), range(7, 150))  # x cut in the first and last chunk
    np.testing.assert_array_equal(planned(src, sel), sel.apply(a.transpose(0, 2, 1, 3, 4)))
    assert sizes(plan_of(src, sel)) == [1, 3, 1, 1, 3, 1]


def test_read_into_a_strided_output(tmp_path: Path) -> None:
    a = pixels((1, 2, 2, 64, 128), "<f4")
    src = DatasetSource(written(tmp_path, a, (1, 32, 32)))
    sel = Selection.full(src.meta.sizes)
    planned(src, sel)
    assert max(sizes(plan_of(src, sel))) == 4
    big = np.full((*sel.shape[:-1], 2 * sel.shape[-1]), 7, dtype=a.dtype)
    src.read_into(sel, big[..., ::2])
    np.testing.assert_array_equal(big[..., ::2], a.transpose(0, 2, 1, 3, 4))
    assert (big[..., 1::2] == 7).all()  # nothing written between the output's pixels


def unit_setup(tmp_path: Path, verify: bool | None = None) -> tuple[Path, DatasetSource, Selection, np.ndarray]:
    """A plane of 2x4 chunks of 32x32 u2, planned: two units of four pages."""
    a = pixels((1, 1, 2, 64, 128), "<u2")
    out = written(tmp_path, a, (1, 32, 32))
    src = DatasetSource(out, verify=verify)
    sel = box(src, range(1), range(1), range(1, 2), range(64), range(128))
    want = sel.apply(a.transpose(0, 2, 1, 3, 4))
    np.testing.assert_array_equal(planned(src, sel), want)
    assert sizes(plan_of(src, sel)) == [4, 4]
    return out, src, sel, want


def page(src: DatasetSource, sel: Selection, k: int) -> tuple[int, int]:
    """(offset, bytes) of the page of item ``k`` of the plan of ``sel``."""
    o, n, *_ = plan_of(src, sel).items[k]
    return o, n


@pytest.mark.parametrize("threads", [False, True])
@pytest.mark.parametrize("k", [0, 2, 3, 5])
def test_a_flipped_byte_in_any_page_of_a_unit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: bool, k: int
) -> None:
    if threads:
        monkeypatch.setattr(box_plans, "THREADED_BYTES", 0)
        monkeypatch.setattr(box_plans, "STEP", 1)
        monkeypatch.setattr(box_plans, "spare_core", lambda: True)
    out, src, sel, want = unit_setup(tmp_path)
    o, n = page(src, sel, k)
    row = plan_of(src, sel).items[k][2]
    for at in (o + 10, o + n - 1):  # the first and the last pixel byte
        flip_byte(out / "chunks.parquet", at)
        with pytest.raises(ChecksumError, match=rf"\(index row {row}\) do not match their checksum"):
            src.read(sel)
        flip_byte(out / "chunks.parquet", at)
        np.testing.assert_array_equal(src.read(sel), want)


@pytest.mark.parametrize("where", ["in a gap", "in a page", "at a page's end"])
def test_a_file_truncated_inside_a_unit_is_refused(tmp_path: Path, where: str) -> None:
    out, src, sel, _ = unit_setup(tmp_path)
    o, n = page(src, sel, 1)
    at = {"in a gap": o + n + 3, "in a page": o + n // 2, "at a page's end": o + n - 1}[where]
    os.truncate(out / "chunks.parquet", at)
    if where == "in a gap":  # page 1 is whole: page 2 is the first one cut
        o, n = page(src, sel, 2)
    with pytest.raises(DamagedFileError, match=f"bytes {o}..{o + n} hold .* the file ends at {at};"):
        src.read(sel)


def test_an_unusual_head_in_a_unit_is_read_through_the_page_and_still_checked(tmp_path: Path) -> None:
    out, src, sel, want = unit_setup(tmp_path)
    o, n = page(src, sel, 2)
    with open(out / "chunks.parquet", "r+b") as f:  # levels: one RLE run of 2 (not the usual run of 1): still one
        f.seek(o + 4)  # value that fills the page, found by value_in_page
        assert f.read(1) == b"\x02"
        f.seek(o + 4)
        f.write(b"\x04")
    for _ in range(2):
        np.testing.assert_array_equal(src.read(sel), want)
    flip_byte(out / "chunks.parquet", o + n - 2)  # its pixels are checked on that path too
    with pytest.raises(ChecksumError, match="do not match their checksum"):
        src.read(sel)


@pytest.mark.parametrize("k", [0, 5, 6, 7])
def test_a_lying_length_prefix_in_a_unit_is_refused(tmp_path: Path, k: int) -> None:
    out, src, sel, want = unit_setup(tmp_path)
    o, n = page(src, sel, k)
    lie_in_length(out / "chunks.parquet", o)  # the value's length prefix lies
    with pytest.raises(DamagedFileError, match="one defined PLAIN value"):
        src.read(sel)
    lie_in_length(out / "chunks.parquet", o, n - 10)  # the true length again
    np.testing.assert_array_equal(src.read(sel), want)


def test_two_pages_of_a_unit_swapped_in_place_are_refused_or_read_as_they_are(tmp_path: Path) -> None:
    out, unchecked, sel, want = unit_setup(tmp_path, verify=False)
    checked = DatasetSource(out)
    planned(checked, sel)
    (o0, n0), (o1, n1) = page(unchecked, sel, 0), page(unchecked, sel, 3)
    assert n0 == n1
    data = (out / "chunks.parquet").read_bytes()
    with open(out / "chunks.parquet", "r+b") as f:
        f.seek(o0)
        f.write(data[o1 : o1 + n1])
        f.seek(o1)
        f.write(data[o0 : o0 + n0])
    with pytest.raises(ChecksumError):
        checked.read(sel)
    swapped = want.copy()
    swapped[..., :32, :32], swapped[..., :32, 96:] = want[..., :32, 96:], want[..., :32, :32]  # chunks 0 and 3
    for _ in range(2):  # unchecked: the bytes on disk now, never the pixels read before
        np.testing.assert_array_equal(unchecked.read(sel), swapped)


def straight_setup(tmp_path: Path) -> tuple[Path, DatasetSource, Selection, np.ndarray]:
    """A Z column of four whole chunks (each a run of the output), planned: read straight into the output."""
    a = pixels((1, 2, 4, 64, 96), "<u2")
    out = written(tmp_path, a, (1, 32, 32))
    src = DatasetSource(out)
    sel = box(src, range(1), range(1, 2), range(4), range(32, 64), range(32, 64))
    want = sel.apply(a.transpose(0, 2, 1, 3, 4))
    np.testing.assert_array_equal(planned(src, sel), want)
    assert [u.into for u in plan_of(src, sel).units] == [k * 32 * 32 * 2 for k in range(4)]
    return out, src, sel, want


@pytest.mark.parametrize(
    ("shape", "chunk", "straight"),
    [
        ((1, 2, 3, 40, 56), (1, 40, 56), 6),  # whole planes: each a run of the output
        ((1, 1, 4, 40, 56), (2, 40, 56), 2),  # two planes of one channel
        ((1, 2, 4, 40, 56), (2, 40, 56), 0),  # two planes, the output's channels between them
        ((1, 2, 3, 40, 56), (1, 20, 56), 12),  # half planes, full rows
        ((1, 2, 3, 40, 56), (1, 40, 28), 0),  # half rows
        ((1, 1, 2, 3, 56), (1, 1, 28), 12),  # chunks of one half row: each a run of the output
        ((1, 1, 2, 3, 56), (2, 1, 28), 0),  # two planes of one half row each: not runs
    ],
)
def test_chunks_that_are_runs_of_the_output_are_read_straight_into_it(
    tmp_path: Path, shape: tuple[int, ...], chunk: tuple[int, int, int], straight: int
) -> None:
    a = pixels(shape, "<f4")
    src = DatasetSource(written(tmp_path, a, chunk))
    sel = Selection.full(src.meta.sizes)
    tzcyx = a.transpose(0, 2, 1, 3, 4)
    np.testing.assert_array_equal(planned(src, sel), tzcyx)
    assert sum(u.into >= 0 for u in plan_of(src, sel).units) == straight
    big = np.full((*sel.shape[:-1], 2 * sel.shape[-1]), 7, dtype=a.dtype)  # not contiguous: read as usual
    src.read_into(sel, big[..., ::2])
    np.testing.assert_array_equal(big[..., ::2], tzcyx)


@pytest.mark.parametrize("k", [0, 3])
def test_a_flipped_byte_read_straight_into_the_output_is_refused(tmp_path: Path, k: int) -> None:
    out, src, sel, want = straight_setup(tmp_path)
    o, n = page(src, sel, k)
    for at in (o + 10, o + n - 1):
        flip_byte(out / "chunks.parquet", at)
        with pytest.raises(ChecksumError, match="do not match their checksum"):
            src.read(sel)
        into = np.zeros(sel.shape, "<u2")
        with pytest.raises(ChecksumError):
            src.read_into(sel, into)
        flip_byte(out / "chunks.parquet", at)
        np.testing.assert_array_equal(src.read(sel), want)


@pytest.mark.parametrize("cut", [3, 9, 500])  # in the head, in the pixels, at the end of the page
def test_a_file_truncated_in_a_page_read_straight_is_refused(tmp_path: Path, cut: int) -> None:
    out, src, sel, _ = straight_setup(tmp_path)
    o, n = page(src, sel, 2)
    at = min(o + cut, o + n - 1)
    os.truncate(out / "chunks.parquet", at)
    with pytest.raises(DamagedFileError, match=f"bytes {o}..{o + n} hold .* the file ends at {at};"):
        src.read(sel)


def test_an_unusual_head_read_straight_is_read_as_usual_and_still_checked(tmp_path: Path) -> None:
    out, src, sel, want = straight_setup(tmp_path)
    o, _ = page(src, sel, 1)
    with open(out / "chunks.parquet", "r+b") as f:  # levels: one RLE run of 2 (still one value filling the page)
        f.seek(o + 4)
        f.write(b"\x04")
    for _ in range(2):
        np.testing.assert_array_equal(src.read(sel), want)
    flip_byte(out / "chunks.parquet", o + 20)
    with pytest.raises(ChecksumError, match="do not match their checksum"):
        src.read(sel)
    lie_in_length(out / "chunks.parquet", o)  # the value's length prefix lies
    with pytest.raises(DamagedFileError, match="one defined PLAIN value"):
        src.read(sel)


@pytest.mark.parametrize("dtype", ["<f8", ">u2", "<i4"])
def test_read_into_an_output_of_another_dtype_casts_as_numpy_does(tmp_path: Path, dtype: str) -> None:
    _, src, sel, want = straight_setup(tmp_path)  # straight reads only where the output holds the file's dtype
    into = np.zeros(sel.shape, dtype)
    src.read_into(sel, into)
    np.testing.assert_array_equal(into, want.astype(dtype))


def regions_are_checked_or_untouched(into: np.ndarray, want: np.ndarray, edge: int, before: int) -> None:
    """Each ``edge``-sided chunk region (of the last two axes, per leading index) of ``into`` holds the checked
    pixels ``want``, zeros, or ``before`` (what ``into`` held): never bytes that failed their check."""
    for lead in np.ndindex(*into.shape[:-2]):
        for y in range(0, into.shape[-2], edge):
            for x in range(0, into.shape[-1], edge):
                got, right = into[lead][y : y + edge, x : x + edge], want[lead][y : y + edge, x : x + edge]
                assert (got == right).all() or (got == 0).all() or (got == before).all(), (lead, y, x)


@pytest.mark.parametrize("threads", [False, True])
@pytest.mark.parametrize("damage", ["flipped", "unusual head and flipped", "truncated"])
@pytest.mark.parametrize("setup", [straight_setup, unit_setup])
@pytest.mark.parametrize("planned_box", [True, False])
def test_a_failed_read_into_leaves_no_unchecked_byte_in_the_callers_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: bool, damage: str, setup: Any, planned_box: bool
) -> None:
    """Planned (box_plans) or not (a source that never read the box: page_direct, page_stream), a read into the
    caller's array that is refused leaves each chunk's region checked, zeroed or as it was."""
    if threads:
        monkeypatch.setattr(box_plans, "THREADED_BYTES", 0)
        monkeypatch.setattr(box_plans, "STEP", 1)
        monkeypatch.setattr(box_plans, "spare_core", lambda: True)
    out, planning, sel, want = setup(tmp_path)
    file = out / "chunks.parquet"
    pages = [page(planning, sel, k) for k in range(len(plan_of(planning, sel).items))]
    src = planning if planned_box else audited(out)
    for o, n in pages:
        if damage == "truncated":
            saved = file.read_bytes()
            os.truncate(file, o + n // 2)
        else:
            if damage == "unusual head and flipped":  # levels: one RLE run of 2 (read straight, then as usual)
                with open(file, "r+b") as f:
                    f.seek(o + 4)
                    f.write(b"\x04")
            flip_byte(file, o + n // 2)
        into = np.full(sel.shape, 7, "<u2")
        with pytest.raises(DamagedFileError):  # ChecksumError is one
            src.read_into(sel, into)
        regions_are_checked_or_untouched(into, want, 32, 7)
        if damage == "truncated":
            file.write_bytes(saved)
        else:
            flip_byte(file, o + n // 2)
            if damage == "unusual head and flipped":
                with open(file, "r+b") as f:
                    f.seek(o + 4)
                    f.write(b"\x02")
        into = np.full(sel.shape, 7, "<u2")
        src.read_into(sel, into)
        np.testing.assert_array_equal(into, want)


@pytest.mark.parametrize("damage", ["flipped", "lying length", "truncated"])
def test_a_damaged_page_in_any_block_of_a_read_by_two_threads_is_refused_and_leaves_no_unchecked_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    """Blocks of more than STEP chunks (BLOCKS caps their count): a damaged page in the first, a middle or the last
    block is refused; the caller's array holds each chunk's checked pixels, zeros or what it held."""
    monkeypatch.setattr(box_plans, "THREADED_BYTES", 0)
    monkeypatch.setattr(box_plans, "spare_core", lambda: True)
    a = pixels((1, 1, 2, 256, 320), "<u2")
    out = written(tmp_path, a, (1, 32, 32))
    src = DatasetSource(out)
    sel = Selection.full(src.meta.sizes)
    want = sel.apply(a.transpose(0, 2, 1, 3, 4))
    np.testing.assert_array_equal(planned(src, sel), want)
    plan = plan_of(src, sel)
    assert len(plan.items) == 160 and len(plan.blocks) - 1 == box_plans.BLOCKS  # blocks of 10 chunks
    file = out / "chunks.parquet"
    for k in (3, 77, 159):
        o, n = page(src, sel, k)
        saved = file.read_bytes()
        if damage == "flipped":
            flip_byte(file, o + n // 2)
        elif damage == "lying length":
            with open(file, "r+b") as f:  # the value's length prefix (after the 6 level bytes) says 77 bytes
                f.seek(o + 6)
                f.write((77).to_bytes(4, "little"))
        else:
            os.truncate(file, o + n // 2)
        into = np.full(sel.shape, 7, "<u2")
        with pytest.raises(DamagedFileError):  # ChecksumError is one
            src.read_into(sel, into)
        regions_are_checked_or_untouched(into, want, 32, 7)
        file.write_bytes(saved)
        into = np.full(sel.shape, 7, "<u2")
        src.read_into(sel, into)
        np.testing.assert_array_equal(into, want)
