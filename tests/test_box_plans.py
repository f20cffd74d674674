"""Box reads by their remembered plans (typed_chunk/box_plans.py): a box read again equals numpy's slice of the
original pixels for any shape, dtype and chunk grid, one or two threads; the plan remembers where chunks lie,
never their pixels, so every read checks the file again: damage, truncation and a file rewritten or replaced
between two reads are refused (or, for a replaced file still open, give the pixels the index describes)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from damage import chunk_page, flip_byte, lie_in_length
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ome_arrow_core.typed_chunk.box_plans as box_plans
import ome_arrow_core.typed_chunk.box_threads as box_threads
from ome_arrow_core import OMEArrow
from ome_arrow_core.errors import ChecksumError, DamagedFileError
from ome_arrow_core.selection import Selection
from ome_arrow_core.typed_chunk import DatasetSource
from ome_arrow_core.typed_chunk.opening import clear_cache
from ome_arrow_core.typed_chunk.whole_chunks import WholeChunk

#: Datasets written without pixel locators (as before them): reads here go through the index (see conftest).
pytestmark = pytest.mark.usefixtures("written_without_locators")


DTYPES = ["<f4", "<f8", "|i1", "<u2"]


def pixels(shape: tuple[int, ...], dtype: str, seed: int = 3) -> np.ndarray:
    """Random TCZYX pixels of ``dtype`` (floats include negative and fractional values)."""
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return (rng.standard_normal(shape) * 1000).astype(dtype)
    info = np.iinfo(np.dtype(dtype))
    return rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)


def written(tmp: Path, a: np.ndarray, chunk: tuple[int, ...], name: str = "b.ome.parquet") -> Path:
    out = tmp / name
    OMEArrow(a, "TCZYX").export("parquet", out, chunk_shape=chunk)
    return out


def box(src: DatasetSource, t: range, c: range, z: range, y: range, x: range) -> Selection:
    return Selection.full(src.meta.sizes).select(t=t, c=c, z=z, y=y, x=x)


def planned(src: DatasetSource, sel: Selection) -> np.ndarray:
    """``sel`` read four times (the first audits its chunks, the second plans the box and reads by the plan, the
    third and fourth use it again), every result the same; the last."""
    first = src.read(sel)
    for _ in range(2):
        np.testing.assert_array_equal(src.read(sel), first)
    return src.read(sel)


@st.composite
def ranges(draw: st.DrawFn, n: int) -> range:
    lo = draw(st.integers(0, n - 1))
    return range(lo, draw(st.integers(lo + 1, n)))


@st.composite
def cases(draw: st.DrawFn) -> tuple[tuple[int, ...], str, tuple[int, int, int], list[tuple[range, ...]]]:
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 3)))
    shape += (draw(st.integers(1, 60)), draw(st.integers(1, 60)))
    chunk = (draw(st.integers(1, shape[2])), draw(st.integers(1, shape[3])), draw(st.integers(1, shape[4])))
    boxes = draw(st.lists(st.tuples(*(ranges(n) for n in shape)), min_size=1, max_size=3))
    return shape, draw(st.sampled_from(DTYPES)), chunk, boxes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases(), threads=st.booleans())
def test_planned_boxes_equal_numpys_slice(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    case: tuple[tuple[int, ...], str, tuple[int, int, int], list[tuple[range, ...]]],
    threads: bool,
) -> None:
    shape, dtype, chunk, boxes = case
    if threads:  # every box of two chunks or more read by two threads, whatever the machine
        monkeypatch.setattr(box_plans, "THREADED_BYTES", 0)
        monkeypatch.setattr(box_plans, "spare_core", lambda: True)
    a = pixels(shape, dtype)
    src = DatasetSource(written(tmp_path_factory.mktemp("b"), a, chunk))
    tzcyx = a.transpose(0, 2, 1, 3, 4)
    for t, c, z, y, x in boxes:
        sel = box(src, t, c, z, y, x)
        np.testing.assert_array_equal(planned(src, sel), sel.apply(tzcyx))
        assert box_plans.box_key(sel) in src._plans
        clear_cache()  # the files opened anew: plans of their own (one opening's sources share theirs)
        once = DatasetSource(src.path)
        np.testing.assert_array_equal(once.read(sel), sel.apply(tzcyx))
        assert not once._plans  # a box read once is not planned
        out = np.full(sel.shape, 7, dtype=a.dtype)
        src.read_into(sel, out)
        np.testing.assert_array_equal(out, sel.apply(tzcyx))
        big = np.full((*sel.shape[:-1], 2 * sel.shape[-1]), 7, dtype=a.dtype)  # a strided output: x every other
        src.read_into(sel, big[..., ::2])
        np.testing.assert_array_equal(big[..., ::2], sel.apply(tzcyx))
        assert (big[..., 1::2] == 7).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_planes_and_the_whole_image_through_the_public_views(tmp_path: Path, dtype: str) -> None:
    a = pixels((1, 2, 3, 90, 110), dtype)
    img = OMEArrow.scan(written(tmp_path, a, (1, 32, 48)))
    for _ in range(3):
        for c in range(2):
            for z in range(3):
                np.testing.assert_array_equal(img.tensor_view(t=0, c=c, z=z, layout="YX").to_numpy(), a[0, c, z])
        np.testing.assert_array_equal(img.to_numpy(layout="TCZYX"), a)
    assert len(img._source._plans) == 7  # six planes and the whole image


def test_a_large_box_is_read_by_two_threads_right(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(box_plans, "spare_core", lambda: True)
    a = pixels((1, 1, 2, 1100, 1000), "<u2")  # 4.2 MiB: over THREADED_BYTES
    assert a.nbytes >= box_plans.THREADED_BYTES
    src = DatasetSource(written(tmp_path, a, (1, 256, 256)))
    sel = Selection.full(src.meta.sizes)
    helper_ran = threading.Event()
    real = box_plans.BoxPlan._run

    def run(self: Any, *args: Any) -> None:
        if threading.current_thread().name.startswith("ome-arrow-box-read"):
            helper_ran.set()
        elif not helper_ran.is_set():  # the caller's first block waits for the helper (however late it starts)
            assert helper_ran.wait(timeout=120), "the helper thread never read a block"
        real(self, *args)

    monkeypatch.setattr(box_plans.BoxPlan, "_run", run)
    np.testing.assert_array_equal(planned(src, sel), a.transpose(0, 2, 1, 3, 4))
    assert helper_ran.is_set()


def damaged_setup(tmp_path: Path, verify: bool | None = None) -> tuple[Path, DatasetSource, Selection, np.ndarray]:
    a = pixels((1, 2, 2, 70, 90), "<u2")
    out = written(tmp_path, a, (1, 32, 32))
    src = DatasetSource(out, verify=verify)
    sel = box(src, range(1), range(2), range(2), range(3, 66), range(5, 88))
    want = sel.apply(a.transpose(0, 2, 1, 3, 4))
    np.testing.assert_array_equal(planned(src, sel), want)
    assert box_plans.box_key(sel) in src._plans
    return out, src, sel, want


@pytest.mark.parametrize("threads", [False, True])
def test_a_flipped_pixel_byte_is_refused_on_the_planned_path_and_reads_again_once_repaired(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: bool
) -> None:
    if threads:
        monkeypatch.setattr(box_plans, "THREADED_BYTES", 0)
        monkeypatch.setattr(box_plans, "spare_core", lambda: True)
    out, src, sel, want = damaged_setup(tmp_path)
    groups = len(src._index_rows)
    for group in (1, groups - 2):  # a chunk of the first block of the plan, one of the last
        off, size = chunk_page(src, group)
        flip_byte(out / "chunks.parquet", off + size // 2)
        with pytest.raises(ChecksumError, match="do not match their checksum"):
            src.read(sel)
        flip_byte(out / "chunks.parquet", off + size // 2)  # repaired: nothing stale is served, not even an error
        np.testing.assert_array_equal(src.read(sel), want)


@pytest.mark.parametrize("threads", [False, True])
def test_the_second_read_of_a_box_is_read_by_the_plan_it_makes_and_checked_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: bool
) -> None:
    if threads:
        monkeypatch.setattr(box_plans, "THREADED_BYTES", 0)
        monkeypatch.setattr(box_plans, "spare_core", lambda: True)
    a = pixels((1, 2, 2, 70, 90), "<u2")
    out = written(tmp_path, a, (1, 32, 32))
    src = DatasetSource(out)
    sel = box(src, range(1), range(2), range(2), range(3, 66), range(5, 88))
    want = sel.apply(a.transpose(0, 2, 1, 3, 4))
    np.testing.assert_array_equal(src.read(sel), want)  # the first read: the general path, which audits
    assert not src._plans
    runs = []
    real = box_plans.BoxPlan._run
    monkeypatch.setattr(box_plans.BoxPlan, "_run", lambda self, *args: runs.append(1) or real(self, *args))
    off, size = chunk_page(src, 5)
    flip_byte(out / "chunks.parquet", off + size // 2)
    with pytest.raises(ChecksumError, match="do not match their checksum"):
        src.read(sel)  # the second: planned, and refused by the plan's own read
    assert runs and box_plans.box_key(sel) in src._plans
    flip_byte(out / "chunks.parquet", off + size // 2)
    runs.clear()
    np.testing.assert_array_equal(src.read(sel), want)
    assert runs
    fresh = DatasetSource(out)
    np.testing.assert_array_equal(fresh.read(sel), want)
    np.testing.assert_array_equal(fresh.read(sel), want)  # a fresh source's second read, by its new plan
    assert box_plans.box_key(sel) in fresh._plans


def test_a_whole_chunk_box_is_read_again_and_checked_on_every_read(tmp_path: Path) -> None:
    out, src, _, _ = damaged_setup(tmp_path)
    sel = box(src, range(1), range(1), range(1), range(32, 64), range(0, 32))  # chunk row 3 of c0 z0: one page
    a = planned(src, sel)
    assert isinstance(src._plans[box_plans.box_key(sel)], WholeChunk)
    off, size = chunk_page(src, 3)
    flip_byte(out / "chunks.parquet", off + size - 3)
    with pytest.raises(ChecksumError, match="do not match their checksum"):
        src.read(sel)
    flip_byte(out / "chunks.parquet", off + size - 3)
    np.testing.assert_array_equal(src.read(sel), a)
    os.truncate(out / "chunks.parquet", off + 100)
    with pytest.raises(DamagedFileError, match="truncated"):
        src.read(sel)


def test_a_lying_page_head_is_refused_on_the_planned_path(tmp_path: Path) -> None:
    out, src, sel, _ = damaged_setup(tmp_path)
    off, _ = chunk_page(src, 3)
    lie_in_length(out / "chunks.parquet", off)  # the value's length prefix lies
    with pytest.raises(DamagedFileError, match="one defined PLAIN value"):
        src.read(sel)


def test_a_file_truncated_after_planning_is_refused(tmp_path: Path) -> None:
    out, src, sel, _ = damaged_setup(tmp_path)
    off, _ = chunk_page(src, 5)
    os.truncate(out / "chunks.parquet", off + 200)
    with pytest.raises(DamagedFileError, match="the file is truncated"):
        src.read(sel)


def test_a_file_rewritten_in_place_is_read_again_never_served_from_the_plan(tmp_path: Path) -> None:
    out, src, sel, want = damaged_setup(tmp_path, verify=False)
    checked = DatasetSource(out)
    planned(checked, sel)
    (o0, n0), (o1, n1) = chunk_page(src, 0), chunk_page(src, 1)
    assert n0 == n1
    data = (out / "chunks.parquet").read_bytes()
    with open(out / "chunks.parquet", "r+b") as f:  # the same file (inode, size), two chunks' pages swapped
        f.seek(o0)
        f.write(data[o1 : o1 + n1])
        f.seek(o1)
        f.write(data[o0 : o0 + n0])
    with pytest.raises(ChecksumError):
        checked.read(sel)
    now = DatasetSource(out, verify=False).read(sel)  # a fresh source: no plan
    assert not np.array_equal(now, want)
    for _ in range(2):  # unchecked planned reads give the bytes on disk now: the plan keeps no pixels
        np.testing.assert_array_equal(src.read(sel), now)


def test_a_file_replaced_between_two_reads_gives_the_indexed_pixels_or_is_refused(tmp_path: Path) -> None:
    out, src, sel, want = damaged_setup(tmp_path)
    other = written(tmp_path, pixels((1, 2, 2, 70, 90), "<u2", seed=99), (1, 32, 32), "other.ome.parquet")
    (tmp_path / "new").write_bytes((other / "chunks.parquet").read_bytes())
    os.replace(tmp_path / "new", out / "chunks.parquet")
    for _ in range(2):
        try:  # an open file may still be read: it holds the bytes the index describes; the new one never passes
            got = src.read(sel)
        except ChecksumError:
            continue
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ChecksumError):  # a fresh open reads the new file, against the old index
        planned(DatasetSource(out), sel)


def test_a_helper_thread_is_wanted_only_with_two_cores_and_one_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    # the machine's load cannot be set for a test: the counts are given
    monkeypatch.setattr(box_threads, "RECHECK_NS", 0)  # every call looks at the machine again
    monkeypatch.setattr(box_threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(box_threads, "running", lambda: 1)  # only the caller runs: the load average may say 1.9
    monkeypatch.setattr(os, "getloadavg", lambda: (1.9, 1.5, 1.5))
    assert box_threads.spare_core()
    monkeypatch.setattr(box_threads, "running", lambda: 2)  # the caller and one other thread
    monkeypatch.setattr(os, "getloadavg", lambda: (0.5, 0.5, 0.5))
    assert not box_threads.spare_core()
    monkeypatch.setattr(box_threads, "usable_cores", lambda: 4)
    monkeypatch.setattr(box_threads, "running", lambda: 3)
    assert box_threads.spare_core()
    monkeypatch.setattr(box_threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(box_threads, "running", lambda: None)  # no /proc/loadavg: the load average, the caller in it
    assert box_threads.spare_core()
    monkeypatch.setattr(os, "getloadavg", lambda: (1.5, 0.5, 0.5))
    assert not box_threads.spare_core()
    monkeypatch.setattr(box_threads, "usable_cores", lambda: 1)
    monkeypatch.setattr(box_threads, "running", lambda: 1)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert not box_threads.spare_core()


@pytest.mark.skipif(not os.path.exists("/proc/loadavg"), reason="no /proc/loadavg here")
def test_running_counts_the_calling_thread() -> None:
    assert all((n := box_threads.running()) is not None and n >= 1 for _ in range(3))


def test_the_machines_answer_is_reused_for_recheck_ns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(box_threads, "usable_cores", lambda: 4)
    monkeypatch.setattr(box_threads, "RECHECK_NS", 0)
    monkeypatch.setattr(box_threads, "running", lambda: 1)
    assert box_threads.spare_core()  # looked: idle
    monkeypatch.setattr(box_threads, "RECHECK_NS", 1 << 62)
    monkeypatch.setattr(box_threads, "running", lambda: 9)
    assert box_threads.spare_core()  # the idle answer, reused
    monkeypatch.setattr(box_threads, "usable_cores", lambda: 1)
    assert not box_threads.spare_core()  # one usable core is never reused past
    monkeypatch.setattr(box_threads, "usable_cores", lambda: 4)
    monkeypatch.setattr(box_threads, "RECHECK_NS", 0)
    assert not box_threads.spare_core()  # looked again: busy


class _SpareCoreInWorker:
    """A map-style dataset of one item: whether its DataLoader worker would start a helper thread."""

    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int) -> bool:
        return box_threads.spare_core()


@pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")  # JAX, if imported, warns
def test_a_dataloader_worker_stays_on_one_thread_on_an_idle_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    data = pytest.importorskip("torch.utils.data")
    monkeypatch.setattr(box_threads, "usable_cores", lambda: 8)  # an idle 8-core machine, in the forked worker too
    monkeypatch.setattr(box_threads, "RECHECK_NS", 0)
    monkeypatch.setattr(box_threads, "running", lambda: 1)
    assert box_threads.spare_core() and not box_threads.loader_worker()
    loader = data.DataLoader(_SpareCoreInWorker(), batch_size=None, num_workers=1, multiprocessing_context="fork")
    assert list(loader) == [False]
    assert list(data.DataLoader(_SpareCoreInWorker(), batch_size=None)) == [True]  # no worker: the main process


def test_a_read_by_two_threads_is_cut_into_at_most_blocks_of_at_least_step_chunks(tmp_path: Path) -> None:
    a = pixels((1, 1, 2, 256, 320), "<u2")
    src = DatasetSource(written(tmp_path, a, (1, 32, 32)))  # 8x10 chunks a plane
    for sel in (box(src, range(1), range(1), range(1), range(64), range(320)), Selection.full(src.meta.sizes)):
        planned(src, sel)
        plan = src._plans[box_plans.box_key(sel)]
        chunks = [sum(len(u.checks) for u in plan.units[a:b]) for a, b in zip(plan.blocks, plan.blocks[1:])]
        assert sum(chunks) == len(plan.items) and len(chunks) <= box_plans.BLOCKS
        assert min(chunks[:-1], default=box_plans.STEP) >= max(box_plans.STEP, -(-len(plan.items) // box_plans.BLOCKS))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases(), data=st.data())
def test_a_plan_of_chunks_listed_in_any_order_reads_them_in_file_order_and_right(
    tmp_path_factory: pytest.TempPathFactory,
    case: tuple[tuple[int, ...], str, tuple[int, int, int], list[tuple[range, ...]]],
    data: st.DataObject,
) -> None:
    """plan_box sorts the chunks it is given by row group (``groups[order] = ordered``): given them in any order
    (a file whose row groups are not in chunk-table order), its items follow the file and every pixel lands where
    its projection says; a flipped byte in any of its pages is still refused."""
    shape, dtype, chunk, boxes = case
    a = pixels(shape, dtype)
    out = written(tmp_path_factory.mktemp("p"), a, chunk)
    src = DatasetSource(out)
    tzcyx = a.transpose(0, 2, 1, 3, 4)
    src.read(Selection.full(src.meta.sizes))  # audited
    t, c, z, y, x = boxes[0]
    sel = box(src, t, c, z, y, x)
    projections = src._chunks.projections(sel)
    perm = data.draw(st.permutations(range(len(projections))))
    listed = [projections[k] for k in perm]
    rows = [int(src._index_rows[p.row]) for p in listed]
    plan = box_plans.plan_box(src._opened, rows, listed, sel.shape, src.meta.dtype)
    assert plan is not None
    offsets = [it[0] for it in plan.items]
    assert offsets == sorted(offsets) and sorted(it[2] for it in plan.items) == sorted(rows)
    np.testing.assert_array_equal(plan.read(True), sel.apply(tzcyx))
    k = data.draw(st.integers(0, len(plan.items) - 1))
    o, n = plan.items[k][:2]
    flip_byte(out / "chunks.parquet", o + n - 1)  # the last pixel byte of one page
    with pytest.raises(ChecksumError, match="do not match their checksum"):
        plan.read(True)
