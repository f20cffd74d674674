"""A box that is one whole chunk, read again, is read by the optional C kernel (typed_chunk/whole_native.py): taken
when the kernel is installed and on (so these tests cannot pass without it), and every damage refused with the
very error (type and message) the Python steps (``piece_block``) raise."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from damage import flip_byte
from test_box_native import error_both_ways
from test_box_plans import box, pixels, written

import ome_arrow_core.typed_chunk.box_native as box_native
import ome_arrow_core.typed_chunk.whole_native as whole_native
from ome_arrow_core.errors import ChecksumError
from ome_arrow_core.selection import Selection
from ome_arrow_core.typed_chunk import DatasetSource
from ome_arrow_core.typed_chunk.box_native import ENV
from ome_arrow_core.typed_chunk.box_plans import box_key
from ome_arrow_core.typed_chunk.whole_chunks import WholeChunk

pytest.importorskip("ome_arrow_kernels")


class Spy:
    """The real kernel module, the calls of its function ``counted`` counted."""

    def __init__(self, kern: ModuleType, counted: str = "read_chunks") -> None:
        self.kern, self.counted, self.calls = kern, counted, 0

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.kern, name)
        if name != self.counted:
            return real

        def call(*args: Any) -> Any:
            self.calls += 1
            return real(*args)

        return call


def setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, DatasetSource, Selection, np.ndarray, WholeChunk, Spy]:
    """A dataset of 32x32 chunks, the box of one of them read twice (audited, then planned), and a spy on the
    kernel that the plan's reads go through."""
    monkeypatch.delenv(ENV, raising=False)  # on, whatever the run says (its tests turn it off themselves)
    a = pixels((1, 2, 2, 64, 96), "<u2")
    out = written(tmp_path, a, (1, 32, 32))
    src = DatasetSource(out)
    sel = box(src, range(1), range(1, 2), range(1), range(32, 64), range(64, 96))
    want = sel.apply(a.transpose(0, 2, 1, 3, 4))
    for _ in range(2):
        np.testing.assert_array_equal(src.read(sel), want)
    plan = src._plans.get(box_key(sel))
    assert isinstance(plan, WholeChunk) and plan.native is not None
    kern = box_native.installed()
    assert kern is not None
    spy = Spy(kern)
    monkeypatch.setattr(whole_native, "kernels", lambda: None if os.environ.get(ENV) == "0" else spy)
    return out, src, sel, want, plan, spy


def test_a_whole_chunk_read_again_is_read_by_the_kernel_unless_it_is_turned_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, src, sel, want, _, spy = setup(tmp_path, monkeypatch)
    got = src.read(sel)
    np.testing.assert_array_equal(got, want)
    assert spy.calls == 1 and not got.flags.writeable and got.base is not None
    assert src.read(sel).ctypes.data != got.ctypes.data  # each read its own buffer: a kept result never changes
    monkeypatch.setenv(ENV, "0")
    np.testing.assert_array_equal(src.read(sel), want)
    assert spy.calls == 2


@pytest.mark.parametrize("damage", ["flipped", "truncated in its page", "truncated before its page", "lying length"])
def test_damage_is_refused_with_the_python_steps_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    out, src, sel, _, plan, spy = setup(tmp_path, monkeypatch)
    file = out / "chunks.parquet"
    offset, n = int(plan.native.fields[0, 0]), plan.native.nbytes + whole_native.USUAL_VALUE_AT
    if damage == "flipped":
        flip_byte(file, offset + n - 1)
    elif damage == "truncated in its page":
        os.truncate(file, offset + n // 2)
    elif damage == "truncated before its page":
        os.truncate(file, offset - 1)
    else:
        with open(file, "r+b") as f:
            f.seek(offset + 6)
            f.write((77).to_bytes(4, "little"))
    native, python = error_both_ways(src, sel, monkeypatch)
    assert spy.calls == 1 and native == python
    expected = {"flipped": "ChecksumError", "lying length": "DamagedFileError"}.get(damage, "truncated")
    assert expected in native


def test_an_unusual_head_is_read_by_the_python_steps_and_still_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, src, sel, want, plan, spy = setup(tmp_path, monkeypatch)
    offset = int(plan.native.fields[0, 0])
    with open(out / "chunks.parquet", "r+b") as f:  # levels: one RLE run of 2: still one value filling the page
        f.seek(offset + 4)
        f.write(b"\x04")
    np.testing.assert_array_equal(src.read(sel), want)
    assert spy.calls == 1  # the kernel refused the head, the Python steps read the value
    flip_byte(out / "chunks.parquet", offset + plan.native.nbytes)
    native, python = error_both_ways(src, sel, monkeypatch)
    assert native == python and "do not match their checksum" in native


def test_without_checks_a_flipped_byte_is_read_as_the_python_steps_read_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, src, sel, want, plan, spy = setup(tmp_path, monkeypatch)
    flip_byte(out / "chunks.parquet", int(plan.native.fields[0, 0]) + 40)
    with pytest.raises(ChecksumError):
        src.read(sel)
    monkeypatch.setenv("OME_ARROW_CORE_VERIFY", "0")
    native = src.read(sel)
    monkeypatch.setenv(ENV, "0")
    python = src.read(sel)
    np.testing.assert_array_equal(native, python)
    assert spy.calls == 2 and (native != want).sum() >= 1


def test_what_the_kernel_does_not_read_has_no_item(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = setup(tmp_path, monkeypatch)[4]
    frag, g = plan.piece
    nbytes = plan.native.nbytes
    assert whole_native.whole_item(frag, g, nbytes, np.dtype("<u2")) is not None
    assert whole_native.whole_item(frag, g, nbytes, np.dtype(">u2")) is None  # stored little-endian: swapped
    assert whole_native.whole_item(frag, g, nbytes - 2, np.dtype("<u2")) is None  # a page that does not fit
    monkeypatch.setitem(sys.modules, "ome_arrow_kernels", None)  # its import raises ImportError, as uninstalled
    monkeypatch.setattr(box_native, "_LOADED", [])
    assert whole_native.whole_item(frag, g, nbytes, np.dtype("<u2")) is None


def test_without_the_kernel_installed_a_whole_chunk_plan_reads_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setitem(sys.modules, "ome_arrow_kernels", None)
    monkeypatch.setattr(box_native, "_LOADED", [])
    a = pixels((1, 1, 1, 64, 64), "<u2")
    src = DatasetSource(written(tmp_path, a, (1, 32, 32)))
    sel = box(src, range(1), range(1), range(1), range(32), range(32))
    for _ in range(3):
        np.testing.assert_array_equal(src.read(sel), sel.apply(a.transpose(0, 2, 1, 3, 4)))
    plan = src._plans.get(box_key(sel))
    assert isinstance(plan, WholeChunk) and plan.native is None
