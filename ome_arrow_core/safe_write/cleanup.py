"""Removing what killed writes left: stale temporaries, an old copy moved aside, (by the format's rule) unlisted files.

Only our own names are touched (:mod:`.ownership`), and only when their writer is gone: a
temporary is stale when no process holds its ``flock`` and the process that made it (its
name records the pid) no longer runs on this host. Inside a dataset, files an interrupted
append left (``chunks-``/``images-``/``index-NNNNN`` files the manifest does not list) and
earlier versions' temporaries (``.NAME.XXXXXXXX.tmp``) are removed only while no writer holds the dataset's lock, and only when they cannot hold
images the dataset lacks: those of an append that never wrote its images table, and those of
an append whose ``.append-NNNNN.pending`` marker is still there (an append killed before its
commit, or one a compaction merged). An unlisted images table without a marker is kept (and
reported): a manifest that lost its entries would otherwise lose those images for good.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import fsops
from .ownership import OLD, is_dataset, is_legacy_temp, parse_temp

__all__ = ["Cleanup", "recover", "remove_stale", "clean_up", "list_entries", "remove_entry"]


@dataclass
class Cleanup:
    """What :func:`cleanup_dataset` did: paths removed, copies restored, and what it kept, and why."""

    removed: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def _stale(path: Path, pid: int) -> bool:
    """True when nobody holds ``path``'s lock and its writer is gone: process ``pid`` no longer runs,
    or it is this process (whose live writers hold their temporaries' locks)."""
    if pid != os.getpid() and fsops.pid_alive(pid):
        return False
    fd = fsops.try_lock(path)
    if fd is None:
        return False
    os.close(fd)
    return True


def remove_entry(path: Path) -> None:
    """Remove file or directory ``path`` (a leftover of ours)."""
    fsops.remove_tree(path)


def list_entries(directory: Path) -> list[os.DirEntry[str]]:
    """The entries of ``directory``, listed before any is acted on; the scandir handle is closed even when
    the caller stops early (an interrupt in the middle of a cleanup)."""
    with os.scandir(directory) as it:
        return list(it)


def recover(target: Path, report: Cleanup | None = None) -> None:
    """If ``target`` is missing and a killed overwrite moved its old copy aside, move that copy back."""
    if os.path.lexists(target) or not target.parent.is_dir():
        return
    olds = []
    for entry in list_entries(target.parent):
        tn = parse_temp(entry.name)
        if tn and tn.kind == OLD and tn.name == target.name and _stale(Path(entry.path), tn.pid):
            olds.append((entry.stat(follow_symlinks=False).st_mtime, Path(entry.path)))
    if olds:
        old = max(olds)[1]
        try:
            os.rename(old, target)
        except OSError:
            return
        if report is not None:
            report.restored.append(str(target))


def remove_stale(target: Path, report: Cleanup | None = None) -> None:
    """Remove the stale temporaries of writes to ``target`` (beside it); the target must exist or be absent
    with no old copy (run :func:`recover` first)."""
    if not target.parent.is_dir():
        return
    for entry in list_entries(target.parent):
        tn = parse_temp(entry.name)
        if tn is None or tn.name != target.name:
            continue
        if tn.kind == OLD and not os.path.lexists(target):
            continue  # the only copy left: recover() moves it back
        if _stale(Path(entry.path), tn.pid):
            remove_entry(Path(entry.path))
            if report is not None:
                report.removed.append(entry.path)


def clean_up(path: str | os.PathLike[str], unlisted: Callable[[Path, Cleanup], None]) -> Cleanup:
    """Remove what killed writes left at ``path`` (a dataset directory or an output file): put back an old
    copy a killed overwrite moved aside, remove stale temporaries beside and inside it, and, inside a
    dataset while no writer holds it, what ``unlisted(root, report)`` judges an interrupted append left
    (the format's rule: :func:`ome_arrow_core.typed_chunk.cleanup_dataset`). Never touches a live writer's
    files or a name that is not ours."""
    root = Path(path)
    report = Cleanup()
    recover(root, report)
    remove_stale(root, report)
    if not is_dataset(root):
        return report
    fd = fsops.try_lock(root)
    if fd is None:
        report.kept.append(f"{root}: a writer holds the dataset; run cleanup again when it is done")
        return report
    try:
        for entry in list_entries(root):
            tn = parse_temp(entry.name)
            # earlier versions' temporaries inside a dataset were an append's or a compaction's, which
            # held the dataset's lock: now that it is ours, their writers are gone
            if (tn is not None and _stale(Path(entry.path), tn.pid)) or is_legacy_temp(entry.name):
                remove_entry(Path(entry.path))
                report.removed.append(entry.path)
        unlisted(root, report)
    finally:
        os.close(fd)
    return report
