"""Writes killed (SIGKILL in a child, KeyboardInterrupt in process) at every file-system step they make.

Each writer's steps (os.rename, os.replace, os.unlink, os.rmdir, shutil.rmtree, renameat2) are
counted by a first run; then the write is killed just before step k (in process: for every k; with SIGKILL:
for each rename and the first cleanup of each kind either side of the commit, every k with
OME_ARROW_LONG_TESTS=1). After each:
the target reads as exactly the old data or the new (same pixels), the user's file beside it is
untouched, and the next write, or ``cleanup_dataset``, leaves no litter. Directory swaps run
both ways: one ``renameat2(RENAME_EXCHANGE)`` and the rename-aside fallback.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import writes_support as ws

from ome_arrow_core import OMEArrow, cleanup_dataset, compact_dataset
from ome_arrow_core.safe_write import SENTINEL, atomic, fsops

SWAPS = ["exchange", "fallback"]
#: The SIGKILL sweeps of create, record export and compaction take minutes: run them with OME_ARROW_LONG_TESTS=1.
LONG = os.environ.get("OME_ARROW_LONG_TESTS") == "1"
#: Number of kill points each writer was found to have (a change here is worth a look, not a failure).
STEPS: dict[str, int] = {}


def _setup(parent: Path, op: str) -> tuple[Path, list[np.ndarray], list[np.ndarray], list[set[str]]]:
    """The target for ``op`` with its old data written, the old and new pixels, the names allowed inside."""
    parent.mkdir(parents=True, exist_ok=True)
    (parent / ws.KEEP).write_text(ws.KEEP_TEXT)
    base = {"_ome_arrow_dataset.json", "images.parquet", "index.parquet", "chunks.parquet", SENTINEL}
    appended = base | {"images-00001.parquet", "index-00001.parquet", "chunks-00001.parquet"}
    if op == "record":
        target = parent / "img.parquet"
        OMEArrow(ws.images(1, 1)[0], dim_order="CYX").export("parquet", target, layout="record")
        return target, ws.images(1, 1), ws.images(2, 1), []
    target = parent / "ds.ome.parquet"
    if op == "overwrite":
        ws.write(target, 1)
        return target, ws.images(1), ws.images(2, 2), [base]
    if op == "create":
        return target, [], ws.images(2, 2), [base]
    if op == "append":
        ws.write(target, 1)
        return target, ws.images(1), ws.images(1) + ws.images(2, 2), [base, appended]
    assert op == "compact"
    ws.write(target, 1)
    ws.write(target, 3, mode="append", n=2)
    both = ws.images(1) + ws.images(3, 2)
    return target, both, both, [appended, base]


def _reads(target: Path, op: str) -> list[np.ndarray]:
    if op == "record":
        return [OMEArrow.scan(target).to_numpy()[0, :, 0]]
    return ws.read(target) if op != "create" or target.exists() else []  # a read puts a moved copy back


def _check_state(target: Path, op: str, old: list[np.ndarray], new: list[np.ndarray], swap: str, k: int) -> None:
    parent = target.parent
    assert (parent / ws.KEEP).read_text() == ws.KEEP_TEXT
    if not os.path.lexists(target) and op != "create":
        assert swap == "fallback", f"step {k}: the target is missing after a kill with a one-step swap"
        # the read below puts the old copy back (as the next write or cleanup would)
    got = _reads(target, op)
    assert ws.same(got, old) or ws.same(got, new), f"step {k}: the target reads as neither the old nor the new data"


def _next_write(target: Path, op: str) -> list[np.ndarray]:
    """Write again to ``target`` (what a user does next); returns what it must then read as."""
    if op == "record":
        OMEArrow(ws.images(5, 1)[0], dim_order="CYX").export("parquet", target, layout="record")
        return ws.images(5, 1)
    before = _reads(target, op)
    if op == "append":
        ws.write(target, 5, mode="append", n=1)
        return before + ws.images(5, 1)
    ws.write(target, 5, mode="overwrite", n=1)
    return ws.images(5, 1)


def _after(
    target: Path, op: str, old: list[np.ndarray], new: list[np.ndarray], allowed: list[set[str]], k: int
) -> None:
    """From a copy of the state: cleanup leaves no litter and the same data; the next write leaves no litter."""
    parent = target.parent
    copy = parent.with_name(parent.name + "-next")
    shutil.copytree(parent, copy, symlinks=True)
    try:
        report = cleanup_dataset(target)
        if report.kept:  # only an append killed between its images table and its commit, and only unmarked
            assert op == "append" and not _append_marks(parent.parent) and len(report.kept) == 1, report.kept
            assert "images-00001.parquet" in report.kept[0]
            KEPT.append(k)
        got = _reads(target, op)
        assert ws.same(got, old) or ws.same(got, new)
        assert ws.litter(parent, target, allowed) == [], f"step {k}: litter after cleanup ({report})"
        twin = copy / target.name
        want = _next_write(twin, op)
        assert ws.same(_reads(twin, op), want)
        extra = ({n.replace("00001", "00002") for n in s} | s for s in allowed)  # the next append's files
        stale = ws.litter(copy, twin, allowed if op != "append" else [*allowed, *extra])
        if op == "append":  # an append leaves a killed append's files to cleanup: the dataset may be in use
            stale = [n for n in stale if "/" not in n]
        assert stale == [], f"step {k}: litter after the next write"
    finally:
        shutil.rmtree(copy)


#: Kill points after which cleanup kept an unlisted append (appends without an in-progress marker).
KEPT: list[int] = []
_MARKS: list[bool] = []


def _append_marks(tmp: Path) -> bool:
    """Whether an append marks itself in progress (``.append-NNNNN.pending``) while it writes its files.

    Without the marker, cleanup cannot tell an append killed after writing its images table
    from one whose manifest entry was lost, so it keeps it (and says so).
    """
    if not _MARKS:
        ds = tmp / "marks-probe"
        ws.write(ds, 1)
        seen: list[bool] = []
        real = os.replace

        def spy(*a: Any, **kw: Any) -> Any:
            seen.append(any(n.endswith(".pending") for n in os.listdir(ds)))
            return real(*a, **kw)

        os.replace = spy
        try:
            ws.write(ds, 2, mode="append", n=1)
        finally:
            os.replace = real
        shutil.rmtree(ds)
        _MARKS.append(any(seen))
    return _MARKS[0]


def _needs_exchange(tmp: Path, swap: str) -> None:
    """Skip the one-step variant where this file system cannot swap two directories (the fallback runs)."""
    if swap != "exchange":
        return
    a, b = tmp / "probe-a", tmp / "probe-b"
    a.mkdir()
    b.mkdir()
    works = fsops.exchange(a, b)
    a.rmdir()
    b.rmdir()
    if not works:
        pytest.skip("renameat2(RENAME_EXCHANGE) is not supported here; the fallback variant covers this system")


def _steps(tmp: Path, op: str, swap: str) -> list[str]:
    """The names of the file-system steps ``op`` makes, in order."""
    target, *_ = _setup(tmp / "count", op)
    proc = ws.run_child(op, target, 0, swap)
    assert proc.returncode == 0, proc.stderr
    steps = ws.steps_of(proc)
    assert len(steps) == int(proc.stdout.split()[-1])
    return steps


OPS = ["overwrite", "create", "append", "record", "compact"]
CASES = [(op, swap) for op in OPS for swap in (SWAPS if op in ("overwrite", "create") else ["exchange"])]


@pytest.mark.parametrize(("op", "swap"), CASES)
def test_sigkill_at_every_step(tmp_path: Path, op: str, swap: str) -> None:
    if (op, swap) not in (("overwrite", "exchange"), ("append", "exchange")) and not LONG:
        pytest.skip(
            "a sweep of minutes: run with OME_ARROW_LONG_TESTS=1 (overwrite and append always run; "
            "the in-process KeyboardInterrupt sweep covers the rest)"
        )
    _needs_exchange(tmp_path, swap)
    steps = _steps(tmp_path, op, swap)
    n = len(steps)
    assert n >= 1  # at least the commit (a rename); a create makes no other step
    STEPS[f"{op}/{swap}"] = n
    # Each rename, and the first cleanup of each kind on either side of the commit: the cleanups repeat once per
    # file, and a kill at a repeat leaves the same kind of state (the in-process sweep below stops at every step;
    # OME_ARROW_LONG_TESTS=1 kills at every step here too).
    points = list(range(1, n + 1)) if LONG else ws.kill_points(steps)
    print(f"SIGKILL sweep {op}/{swap}: {len(points)} of {n} kill points")
    for k in points:
        parent = tmp_path / f"k{k}"
        target, old, new, allowed = _setup(parent, op)
        proc = ws.run_child(op, target, k, swap)
        assert proc.returncode == -9, f"step {k} of {n}: the child was not killed ({proc.returncode}): {proc.stderr}"
        _check_state(target, op, old, new, swap, k)
        _after(target, op, old, new, allowed, k)
        shutil.rmtree(parent)


class _Interrupt:
    """Raise KeyboardInterrupt just before (or just after) the k-th file-system step of this process."""

    def __init__(self, k: int, after: bool) -> None:
        self.k, self.after, self.count, self.fired = k, after, 0, False
        self.saved: list[tuple[Any, str, Callable[..., Any]]] = []

    def __enter__(self) -> _Interrupt:
        for mod, name in [
            (os, "rename"),
            (os, "replace"),
            (os, "unlink"),
            (os, "rmdir"),
            (shutil, "rmtree"),
            (fsops, "renameat2"),
        ]:
            real = getattr(mod, name)
            self.saved.append((mod, name, real))
            setattr(mod, name, self._wrap(real))
        return self

    def _wrap(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def step(*a: Any, **kw: Any) -> Any:
            self.count += 1
            hit = self.count == self.k
            if hit and not self.after:
                self.fired = True
                raise KeyboardInterrupt
            try:
                return real(*a, **kw)
            finally:
                if hit:  # whether the step succeeded or raised, the interrupt comes just after it
                    self.fired = True
                    raise KeyboardInterrupt

        return step

    def __exit__(self, *exc: object) -> None:
        for mod, name, real in self.saved:
            setattr(mod, name, real)


def _write_in_process(op: str, target: Path) -> None:
    if op == "compact":
        compact_dataset(target)
    elif op == "record":
        OMEArrow(ws.images(2, 1)[0], dim_order="CYX").export("parquet", target, layout="record")
    else:
        ws.write(target, 2, mode=op, n=2)


@pytest.mark.parametrize("after", [False, True], ids=["before-step", "after-step"])
@pytest.mark.parametrize(("op", "swap"), CASES)
def test_keyboard_interrupt_at_every_step(
    tmp_path: Path, op: str, swap: str, after: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    _needs_exchange(tmp_path, swap)
    monkeypatch.setattr(atomic, "EXCHANGE", swap == "exchange")
    k = 0
    while True:
        k += 1
        parent = tmp_path / f"k{k}"
        target, old, new, allowed = _setup(parent, op)
        with _Interrupt(k, after) as hook:
            try:
                _write_in_process(op, target)
            except KeyboardInterrupt:
                assert hook.fired
        if not hook.fired:
            assert k > 1  # every writer has at least its commit (a rename); a create, nothing else
            STEPS[f"{op}/{swap}/interrupt-{'after' if after else 'before'}"] = k - 1
            print(f"KeyboardInterrupt sweep {op}/{swap}/{'after' if after else 'before'}: {k - 1} steps")
            break
        _check_state(target, op, old, new, swap, k)
        _after(target, op, old, new, allowed, k)
        shutil.rmtree(parent)


@pytest.mark.parametrize("swap", SWAPS)
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_during_the_swap_arrives_after_it(tmp_path: Path, sig: str, swap: str) -> None:
    """SIGINT / SIGTERM sent just before the step that swaps the new dataset in (a real signal, not a
    patched exception) is held back: the swap completes, then the process stops."""
    _needs_exchange(tmp_path, swap)
    target, _, new, allowed = _setup(tmp_path / "count", "overwrite")
    proc = ws.run_child("overwrite", target, 0, swap)
    lines = [line.split() for line in proc.stderr.splitlines() if line.startswith("STEP ")]
    if swap == "exchange":  # renameat2(tmp, target, RENAME_EXCHANGE)
        k = next(int(w[1]) for w in lines if w[2] == "renameat2" and w[4:] == [target.name, "2"])
    else:  # os.rename(target, old): the first of the two renames
        k = next(int(w[1]) for w in lines if w[2] == "rename" and w[3] == target.name)
    parent = tmp_path / "run"
    target, _old, new, allowed = _setup(parent, "overwrite")
    proc = ws.run_child("overwrite", target, k, swap, sig)
    assert proc.returncode != 0, "the signal did not stop the writer"
    if sig == "SIGINT":
        assert "KeyboardInterrupt" in proc.stderr
    assert ws.same(ws.read(target), new), "the signal arrived before the swap completed"
    cleanup_dataset(target)
    assert ws.litter(parent, target, allowed) == []


@pytest.mark.parametrize("op", ["overwrite", "append"])
def test_durable_writes_interrupted_at_every_step(tmp_path: Path, op: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same sweep with fsync on (``OME_ARROW_CORE_FSYNC=1``): the fsyncs move no step out of order."""
    from ome_arrow_core.safe_write import durable

    monkeypatch.setenv(durable.ENV, "1")
    test_keyboard_interrupt_at_every_step(tmp_path, op, "exchange", False, monkeypatch)
