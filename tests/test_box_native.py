"""Box plans read by the optional C kernel (typed_chunk/box_native.py): taken for boxes of whole chunks (so the
kernel's tests cannot pass without it), not for crops nor with ``OME_ARROW_KERNELS=0``, and every damage refused
with the very error (type and message) the Python steps raise."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from damage import flip_byte
from test_box_plans import box, pixels, planned, written

import ome_arrow_core.typed_chunk.box_native as box_native
import ome_arrow_core.typed_chunk.box_plans as box_plans
from ome_arrow_core.errors import DamagedFileError
from ome_arrow_core.selection import Selection
from ome_arrow_core.typed_chunk import DatasetSource
from ome_arrow_core.typed_chunk.box_native import ENV

pytest.importorskip("ome_arrow_kernels")


def setup(tmp_path: Path) -> tuple[Path, DatasetSource, Selection, np.ndarray, box_plans.BoxPlan]:
    a = pixels((1, 2, 2, 64, 96), "<u2")
    out = written(tmp_path, a, (1, 32, 32))
    src = DatasetSource(out)
    sel = box(src, range(1), range(2), range(2), range(64), range(96))
    want = sel.apply(a.transpose(0, 2, 1, 3, 4))
    np.testing.assert_array_equal(planned(src, sel), want)
    plan = src._plans[box_plans.box_key(sel)]
    assert isinstance(plan, box_plans.BoxPlan) and plan.native is not None
    return out, src, sel, want, plan


def test_a_box_of_whole_chunks_is_read_by_the_kernel_unless_it_is_turned_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, src, sel, want, plan = setup(tmp_path)
    monkeypatch.delenv(ENV, raising=False)
    calls = plan.native.calls
    np.testing.assert_array_equal(src.read(sel), want)
    assert plan.native.calls > calls
    monkeypatch.setenv(ENV, "0")
    calls = plan.native.calls
    np.testing.assert_array_equal(src.read(sel), want)
    assert plan.native.calls == calls


def test_without_the_kernel_installed_a_plan_builds_no_items_and_reads_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = pixels((1, 2, 2, 64, 96), "<u2")
    src = DatasetSource(written(tmp_path, a, (1, 32, 32)))
    sel = box(src, range(1), range(2), range(2), range(64), range(96))
    monkeypatch.setitem(sys.modules, "ome_arrow_kernels", None)  # its import raises ImportError, as uninstalled
    monkeypatch.setattr(box_native, "_LOADED", [])
    np.testing.assert_array_equal(planned(src, sel), sel.apply(a.transpose(0, 2, 1, 3, 4)))
    plan = src._plans[box_plans.box_key(sel)]
    assert isinstance(plan, box_plans.BoxPlan) and plan.native is None
    assert box_native.kernels() is None


def test_a_crop_is_not_read_by_the_kernel(tmp_path: Path) -> None:
    a = pixels((1, 1, 1, 64, 96), "<u2")
    src = DatasetSource(written(tmp_path, a, (1, 32, 32)))
    sel = box(src, range(1), range(1), range(1), range(3, 60), range(5, 90))
    np.testing.assert_array_equal(planned(src, sel), sel.apply(a.transpose(0, 2, 1, 3, 4)))
    assert src._plans[box_plans.box_key(sel)].native is None


def error_both_ways(src: DatasetSource, sel: Selection, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """The error of reading ``sel`` with the kernel, and without it (type name and message)."""
    got = []
    for value in ("1", "0"):
        monkeypatch.setenv(ENV, value)
        with pytest.raises(DamagedFileError) as err:
            src.read(sel)
        got.append(f"{type(err.value).__name__}: {err.value}")
    return got[0], got[1]


@pytest.mark.parametrize("threads", [False, True])
@pytest.mark.parametrize("damage", ["flipped", "truncated in a page", "truncated before a unit", "lying length"])
@pytest.mark.parametrize("k", [0, 5, 23])
def test_damage_is_refused_with_the_python_steps_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: bool, damage: str, k: int
) -> None:
    if threads:
        monkeypatch.setattr(box_plans, "THREADED_BYTES", 0)
        monkeypatch.setattr(box_plans, "STEP", 1)
        monkeypatch.setattr(box_plans, "spare_core", lambda: True)
    out, src, sel, _, plan = setup(tmp_path)
    file = out / "chunks.parquet"
    o, n = plan.items[k][:2]
    if damage == "flipped":
        flip_byte(file, o + n - 1)
    elif damage == "truncated in a page":
        os.truncate(file, o + n // 2)
    elif damage == "truncated before a unit":
        os.truncate(file, o - 1 if k else o)
    else:
        with open(file, "r+b") as f:
            f.seek(o + 6)
            f.write((77).to_bytes(4, "little"))
    calls = plan.native.calls
    native, python = error_both_ways(src, sel, monkeypatch)
    assert plan.native.calls > calls
    if threads and damage.startswith("truncated"):  # every chunk after the cut is short: either thread may say so
        assert "the file is truncated" in native and "the file is truncated" in python
    else:
        assert native == python


def test_an_unusual_head_is_read_by_the_python_steps_and_still_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, src, sel, want, plan = setup(tmp_path)
    o, n = plan.items[3][:2]
    with open(out / "chunks.parquet", "r+b") as f:  # levels: one RLE run of 2: still one value filling the page
        f.seek(o + 4)
        f.write(b"\x04")
    monkeypatch.delenv(ENV, raising=False)
    calls = plan.native.calls
    np.testing.assert_array_equal(src.read(sel), want)
    assert plan.native.calls >= calls + 2  # the kernel stopped at the page and went on after it
    flip_byte(out / "chunks.parquet", o + n - 2)
    native, python = error_both_ways(src, sel, monkeypatch)
    assert native == python and "do not match their checksum" in native
