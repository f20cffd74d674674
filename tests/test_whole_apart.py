"""The tiles of a stream that are whole chunks, read together by the optional C kernel's ``read_each``
(typed_chunk/whole_native.py ``read_apart``): taken when the kernel is installed and on (so these tests cannot pass
without it), each tile in a buffer of its own, and every damage refused with the very error (type and message) the
Python steps (``page_values_apart``) raise."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from damage import chunk_page, flip_byte, lie_in_length
from test_box_plans import pixels, written
from test_whole_native import Spy

import ome_arrow_core.typed_chunk.whole_native as whole_native
from ome_arrow_core import OMEArrow
from ome_arrow_core.errors import ChecksumError, DamagedFileError
from ome_arrow_core.typed_chunk import DatasetSource
from ome_arrow_core.typed_chunk.box_native import ENV, installed
from ome_arrow_core.typed_chunk.page_values import USUAL_VALUE_AT

pytest.importorskip("ome_arrow_kernels")

#: 1x2x1x64x96 uint16 in 32x32 chunks: six tiles a plane, read together (one group).
SHAPE, CHUNK, TILE = (1, 2, 1, 64, 96), (1, 32, 32), 32


def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, OMEArrow, np.ndarray, Spy]:
    """The dataset, opened and audited (a first whole read), the pixels, and a spy on the kernel ``read_apart``
    reads through."""
    monkeypatch.delenv(ENV, raising=False)  # on, whatever the run says (its tests turn it off themselves)
    a = pixels(SHAPE, "<u2")
    out = written(tmp_path, a, CHUNK)
    img = OMEArrow.scan(out)
    np.testing.assert_array_equal(img.to_numpy(layout="TCZYX"), a)
    kern = installed()
    assert kern is not None
    spy = Spy(kern, "read_each")
    monkeypatch.setattr(whole_native, "kernels", lambda: None if os.environ.get(ENV) == "0" else spy)
    return out, img, a, spy


def tiles(img: OMEArrow, c: int) -> list[np.ndarray]:
    return [np.from_dlpack(t) for t in img.tensor_view(t=0, z=0, c=c, layout="YX").iter_dlpack(tile_size=TILE)]


def expected(a: np.ndarray, c: int) -> list[np.ndarray]:
    return [a[0, c, 0, y : y + TILE, x : x + TILE] for y in range(0, SHAPE[3], TILE) for x in range(0, SHAPE[4], TILE)]


def page(out: Path, k: int) -> tuple[int, int]:
    """(offset, size) of chunk ``k``'s page (row group ``k``: the writer's chunk order, channel 0's first)."""
    return chunk_page(DatasetSource(out), k)


def error_both_ways(img: OMEArrow, c: int, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """The error of streaming channel ``c``'s tiles with the kernel, and without it (type name and message)."""
    got = []
    for value in ("1", "0"):
        monkeypatch.setenv(ENV, value)
        with pytest.raises(DamagedFileError) as err:
            tiles(img, c)
        got.append(f"{type(err.value).__name__}: {err.value}")
    return got[0], got[1]


def test_tiles_are_read_by_the_kernel_each_into_its_own_buffer_unless_it_is_turned_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, img, a, spy = setup(tmp_path, monkeypatch)
    for c in range(2):
        got = tiles(img, c)
        for g, e in zip(got, expected(a, c), strict=True):
            np.testing.assert_array_equal(g, e)
            assert not g.flags.writeable
        assert len({g.ctypes.data for g in got}) == len(got)
    assert spy.calls == 2  # one call a plane
    again = tiles(img, 0)
    assert not {g.ctypes.data for g in again} & {g.ctypes.data for g in got}  # fresh buffers: kept tiles never change
    monkeypatch.setenv(ENV, "0")
    for g, e in zip(tiles(img, 1), expected(a, 1), strict=True):
        np.testing.assert_array_equal(g, e)
    assert spy.calls == 3


@pytest.mark.parametrize("k", [0, 2, 5])
@pytest.mark.parametrize("damage", ["flipped", "truncated in its page", "truncated before its page", "lying length"])
def test_damage_is_refused_with_the_python_steps_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str, k: int
) -> None:
    out, img, _, spy = setup(tmp_path, monkeypatch)
    file = out / "chunks.parquet"
    offset, n = page(out, k)
    if damage == "flipped":
        flip_byte(file, offset + n - 1)
    elif damage == "truncated in its page":
        os.truncate(file, offset + n // 2)
    elif damage == "truncated before its page":
        os.truncate(file, offset - 1)
    else:
        lie_in_length(file, offset)
    native, python = error_both_ways(img, 0, monkeypatch)
    assert native == python
    assert spy.calls == 1  # (a lying length is a head the kernel does not know: the Python steps refuse it)
    expected_error = {"flipped": "ChecksumError", "lying length": "DamagedFileError"}.get(damage, "truncated")
    assert expected_error in native


def test_an_unusual_head_is_read_by_the_python_steps_and_still_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, img, a, spy = setup(tmp_path, monkeypatch)
    offset, n = page(out, 3)
    with open(out / "chunks.parquet", "r+b") as f:  # levels: one RLE run of 2: still one value filling the page
        f.seek(offset + 4)
        f.write(b"\x04")
    for g, e in zip(tiles(img, 0), expected(a, 0), strict=True):
        np.testing.assert_array_equal(g, e)
    assert spy.calls == 1  # the kernel refused the head, the Python steps read the plane's tiles
    flip_byte(out / "chunks.parquet", offset + n - 1)
    native, python = error_both_ways(img, 0, monkeypatch)
    assert native == python and "do not match their checksum" in native


def test_without_checks_a_flipped_byte_is_read_as_the_python_steps_read_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, img, a, spy = setup(tmp_path, monkeypatch)
    offset, _ = page(out, 1)
    flip_byte(out / "chunks.parquet", offset + USUAL_VALUE_AT + 40)
    with pytest.raises(ChecksumError):
        tiles(img, 0)
    monkeypatch.setenv("OME_ARROW_CORE_VERIFY", "0")
    native = tiles(img, 0)
    monkeypatch.setenv(ENV, "0")
    python = tiles(img, 0)
    for n_, p_ in zip(native, python, strict=True):
        np.testing.assert_array_equal(n_, p_)
    assert spy.calls == 2 and sum(int((g != e).sum()) for g, e in zip(native, expected(a, 0))) == 1
