"""Opt-in fsync (``OME_ARROW_CORE_FSYNC=1``, safe_write.durable): what is fsynced, and in which order.

Every os.fsync, commit rename and removal a write makes is logged (the real calls run); the log must show each
file of the new copy and its directory fsynced before the rename that commits it, the parent directory after
it and before the old copy is removed; and, by default, no fsync at all. Interrupted durable writes: see
``test_write_faults.test_durable_writes_interrupted_at_every_step``.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import writes_support as ws

from ome_arrow_core import compact_dataset
from ome_arrow_core.safe_write import atomic, durable, fsops

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads fd paths from /proc/self/fd")

Log = list[tuple[str, str]]


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch) -> Iterator[Log]:
    """(event, path) of each fsync, rename, exchange and removal, in order."""
    events: Log = []

    def spy(name: str, real: Callable[..., Any], path_of: Callable[..., str]) -> Callable[..., Any]:
        def call(*a: Any, **kw: Any) -> Any:
            events.append((name, path_of(*a)))
            return real(*a, **kw)

        return call

    monkeypatch.setattr(os, "fsync", spy("fsync", os.fsync, lambda fd: os.readlink(f"/proc/self/fd/{fd}")))
    for name in ("rename", "replace"):
        monkeypatch.setattr(os, name, spy(name, getattr(os, name), lambda a, b: f"{a} -> {b}"))
    monkeypatch.setattr(fsops, "exchange", spy("exchange", fsops.exchange, lambda a, b: f"{a} <-> {b}"))
    monkeypatch.setattr(fsops, "remove_tree", spy("remove", fsops.remove_tree, lambda p: str(p)))
    monkeypatch.setattr(shutil, "rmtree", spy("remove", shutil.rmtree, lambda p, *a: str(p)))
    yield events


def _first(log: Log, what: Callable[[str, str], bool]) -> int:
    return next(i for i, (e, p) in enumerate(log) if what(e, p))


def _synced_before(log: Log, k: int) -> set[str]:
    return {p for e, p in log[:k] if e == "fsync"}


@pytest.mark.parametrize("swap", ["exchange", "fallback"])
def test_an_overwrite_fsyncs_its_files_then_commits_then_syncs_the_parent(
    tmp_path: Path, log: Log, swap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "ds.ome.parquet"
    ws.write(target, 1)
    monkeypatch.setattr(atomic, "EXCHANGE", swap == "exchange")
    monkeypatch.setenv(durable.ENV, "1")
    log.clear()
    ws.write(target, 2, mode="overwrite", n=2)
    assert ws.same(ws.read(target), ws.images(2, 2))
    if swap == "exchange":
        commit = _first(log, lambda e, p: e == "exchange" and p.endswith(f"<-> {target}"))
    else:
        commit = _first(log, lambda e, p: e == "rename" and p.endswith(f"-> {target}") and "ome-arrow-tmp" in p)
    tmp = Path(log[commit][1].split(" ")[0])
    synced = _synced_before(log, commit)
    files = sorted(p.name for p in target.iterdir())
    assert files and all(str(tmp / n) in synced for n in files), (files, synced)
    assert str(tmp) in synced  # the new copy's entries
    parent = _first(log, lambda e, p: e == "fsync" and p == str(tmp_path))
    assert parent > commit
    removals = [i for i, (e, _) in enumerate(log) if e == "remove" and i > commit]
    assert removals and parent < removals[0]  # the rename is on disk before the old copy's removal


def test_a_create_fsyncs_before_its_rename(tmp_path: Path, log: Log, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(durable.ENV, "yes")
    target = tmp_path / "ds.ome.parquet"
    ws.write(target, 3)
    assert ws.same(ws.read(target), ws.images(3))
    synced = {p for e, p in log if e == "fsync"}
    assert {p.name for p in target.iterdir()} <= {Path(p).name for p in synced}
    assert str(tmp_path) in synced


def test_an_append_fsyncs_its_files_before_the_manifest(
    tmp_path: Path, log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "ds.ome.parquet"
    ws.write(target, 1)
    monkeypatch.setenv(durable.ENV, "1")
    log.clear()
    ws.write(target, 2, mode="append", n=1)
    assert ws.same(ws.read(target), ws.images(1) + ws.images(2, 1))
    commit = _first(log, lambda e, p: e == "replace" and p.endswith(f"-> {target / '_ome_arrow_dataset.json'}"))
    moved = [p.split(" -> ") for e, p in log[:commit] if e == "replace"]
    synced = _synced_before(log, commit)
    new = {Path(b).name for _, b in moved}
    assert {"images-00001.parquet", "index-00001.parquet", "chunks-00001.parquet"} <= new
    for a, b in moved:  # each new file synced before its rename, the dataset directory after it
        at = log.index(("replace", f"{a} -> {b}"))
        assert a in _synced_before(log, at)
        assert str(target) in {p for e, p in log[at:commit] if e == "fsync"}
    assert str(Path(log[commit][1].split(" -> ")[0])) in synced  # the manifest itself
    assert log[commit + 1 :].count(("fsync", str(target))) >= 1


def test_a_compaction_fsyncs_its_new_files_before_moving_them(
    tmp_path: Path, log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "ds.ome.parquet"
    ws.write(target, 1)
    ws.write(target, 2, mode="append", n=1)
    monkeypatch.setenv(durable.ENV, "on")
    log.clear()
    compact_dataset(target)
    assert ws.same(ws.read(target), ws.images(1) + ws.images(2, 1))
    moves = [(i, p.split(" -> ")) for i, (e, p) in enumerate(log) if e == "replace" and "backup" not in p]
    assert moves
    for i, (a, _) in moves:
        assert a in _synced_before(log, i), a


@pytest.mark.parametrize("value", [None, "0", "no", ""])
def test_by_default_nothing_is_fsynced(tmp_path: Path, log: Log, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    if value is None:
        monkeypatch.delenv(durable.ENV, raising=False)
    else:
        monkeypatch.setenv(durable.ENV, value)
    target = tmp_path / "ds.ome.parquet"
    ws.write(target, 1)
    ws.write(target, 2, mode="append", n=1)
    ws.write(target, 3, mode="overwrite", n=1)
    assert ws.same(ws.read(target), ws.images(3, 1))
    assert [p for e, p in log if e == "fsync"] == []
