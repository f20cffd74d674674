"""Cleaning up after killed writes: stale temporaries of ours removed (never a live writer's or a user's), a
dataset moved aside put back, a killed append's files removed where nothing may be data (test_write_safety.py:
what writes replace)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import writes_support as ws

from ome_arrow_core import OMEArrow, OMEArrowDataset, cleanup_dataset
from ome_arrow_core.cli import main
from ome_arrow_core.safe_write import fsops, make_temp


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_cleanup_removes_only_stale_temporaries_of_ours(tmp_path: Path) -> None:
    target = tmp_path / "ds"
    ws.write(target, 1)
    dead = _dead_pid()
    stale = tmp_path / f".ds.ome-arrow-tmp.{dead}.0123abcd"
    stale.mkdir()
    (stale / "chunks.parquet").write_bytes(b"x" * 100)
    stale_inside = target / f".index-00001.parquet.ome-arrow-tmp.{dead}.89abcdef"
    stale_inside.mkdir()
    legacy = target / ".index-00001.parquet.k3j_x9ab.tmp"  # an earlier version's, inside the dataset
    legacy.mkdir()
    (legacy / "index-00001.parquet").write_bytes(b"x")
    live, fd = make_temp(tmp_path, "ds")  # a writer of this process at work
    other = subprocess.Popen([sys.executable, "-c", "import sys, time; sys.stdin.read()"], stdin=subprocess.PIPE)
    alive = tmp_path / f".ds.ome-arrow-tmp.{other.pid}.00000000"  # a live process's, unlocked for a moment
    alive.mkdir()
    foreign = [tmp_path / ".ds.backup.tmp", tmp_path / f".ds.ome-arrow-tmp.{dead}.not-hex", tmp_path / "ds.old"]
    for f in foreign:
        f.write_text("user's")
    try:
        report = cleanup_dataset(target)
        assert sorted(report.removed) == sorted([str(stale), str(stale_inside), str(legacy)])
        assert live.is_dir() and alive.is_dir() and all(f.read_text() == "user's" for f in foreign)
    finally:
        os.close(fd)
        other.communicate(b"")
    report = cleanup_dataset(target)  # the writer of this process let go of its temporary; the other process ended
    assert sorted(report.removed) == sorted([str(live), str(alive)])
    assert ws.same(ws.read(target), ws.images(1))


def test_the_next_write_removes_stale_temporaries_of_its_target(tmp_path: Path) -> None:
    dead = _dead_pid()
    names = [
        f".ds.ome-arrow-tmp.{dead}.0123abcd",
        f".ds.ome-arrow-old.{dead}.0123abce",
        f".other.ome-arrow-tmp.{dead}.0123abcf",
    ]
    ws.write(tmp_path / "ds", 1)
    for n in names:
        (tmp_path / n).mkdir()
    ws.write(tmp_path / "ds", 2, mode="overwrite")
    assert sorted(os.listdir(tmp_path)) == sorted(["ds", names[2]])  # another target's are left to it


def test_a_killed_overwrite_moved_aside_is_put_back(tmp_path: Path) -> None:
    ws.write(tmp_path / "ds", 1)
    aside = tmp_path / f".ds.ome-arrow-old.{_dead_pid()}.0123abcd"
    os.rename(tmp_path / "ds", aside)
    half = tmp_path / f".ds.ome-arrow-tmp.{_dead_pid()}.0123abce"
    half.mkdir()
    report = cleanup_dataset(tmp_path / "ds")
    assert report.restored == [str(tmp_path / "ds")] and report.removed == [str(half)]
    assert ws.same(ws.read(tmp_path / "ds"), ws.images(1))
    os.rename(tmp_path / "ds", aside)
    ws.write(tmp_path / "ds", 2, mode="append", n=1)  # the next write puts it back first, then appends
    assert ws.same(ws.read(tmp_path / "ds"), ws.images(1) + ws.images(2, 1))
    assert os.listdir(tmp_path) == ["ds"]
    os.rename(tmp_path / "ds", aside)
    assert len(OMEArrowDataset.scan(tmp_path / "ds")) == 4  # so does the next read
    os.rename(tmp_path / "ds", aside)
    assert OMEArrow.scan(tmp_path / "ds").meta.id == "image-00000"
    assert os.listdir(tmp_path) == ["ds"]


def _killed_append(root: Path, k: int, with_images: bool, marker: bool) -> list[str]:
    """Files append ``k`` leaves when killed before its manifest commit (a real append, its commit undone)."""
    manifest = (root / "_ome_arrow_dataset.json").read_bytes()
    ws.write(root, 40 + k, mode="append", n=1)
    (root / "_ome_arrow_dataset.json").write_bytes(manifest)
    names = [f"chunks-{k:05d}.parquet", f"index-{k:05d}.parquet", f"images-{k:05d}.parquet"]
    assert all((root / n).is_file() for n in names)
    if not with_images:
        (root / names.pop()).unlink()
    if marker:
        (root / f".append-{k:05d}.pending").touch()
        names.append(f".append-{k:05d}.pending")
    return names


def test_cleanup_removes_what_a_killed_append_left_and_keeps_what_may_be_data(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    ws.write(root, 1)
    ws.write(root, 2, mode="append", n=1)  # images-00001...: listed
    partial = _killed_append(root, 2, with_images=False, marker=False)  # no images table: never committed
    marked = _killed_append(root, 3, with_images=True, marker=True)  # its marker says it was killed
    unknown = _killed_append(root, 4, with_images=True, marker=False)  # a lost manifest entry? keep it
    want = ws.images(1) + ws.images(2, 1)
    report = cleanup_dataset(root)
    assert sorted(report.removed) == sorted(str(root / n) for n in partial + marked)
    assert len(report.kept) == 1 and "images-00004.parquet" in report.kept[0]
    assert all((root / n).exists() for n in unknown)
    for n in unknown:  # (a reader may refuse a dataset whose manifest lost an append: set it aside)
        (root / n).unlink()
    assert ws.same(ws.read(root), want)


def test_cleanup_leaves_a_dataset_a_writer_holds(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    ws.write(root, 1)
    partial = _killed_append(root, 1, with_images=False, marker=False)
    held = threading.Event()
    release = threading.Event()

    def writer() -> None:
        with fsops.lock(root):
            held.set()
            release.wait()

    t = threading.Thread(target=writer)
    t.start()
    held.wait()
    try:
        report = cleanup_dataset(root)
        assert report.removed == [] and "a writer holds" in report.kept[0]
        assert all((root / n).exists() for n in partial)
    finally:
        release.set()
        t.join()
    assert sorted(cleanup_dataset(root).removed) == sorted(str(root / n) for n in partial)


def test_cli_cleanup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws.write(tmp_path / "ds", 1)
    stale = tmp_path / f".ds.ome-arrow-tmp.{_dead_pid()}.0123abcd"
    stale.mkdir()
    assert main(["cleanup", str(tmp_path / "ds")]) == 0
    assert capsys.readouterr().out == f"removed {stale}\n"
    assert main(["cleanup", str(tmp_path / "ds")]) == 0
    assert "nothing to clean up" in capsys.readouterr().out
