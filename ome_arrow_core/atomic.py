"""Atomic writes: write beside the target, then rename; nothing half-written on failure."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["atomic_path", "replace_all"]


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success it replaces ``target``.

    On any exception the temporary file (or directory) is removed and ``target`` is left
    untouched. ``directory=True`` yields a fresh directory instead of a file path.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    path = tmp if directory else tmp / target.name
    try:
        yield path
        if directory:
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(tmp, target)
        else:
            os.replace(path, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _move(src: Path, dst: Path) -> None:
    os.replace(src, dst)


def replace_all(moves: Sequence[tuple[Path, Path]], backups: Path) -> None:
    """Move each ``(new, target)`` pair's file over its target, in order; all or none.

    Each target is first kept in directory ``backups`` (a hard link, or a copy where links are
    not supported); if a move fails, the targets already replaced are put back. The caller
    removes ``backups``. Each move is one rename, so a reader sees every file whole.
    """
    done: list[tuple[Path, Path | None]] = []
    try:
        for k, (new, target) in enumerate(moves):
            kept: Path | None = None
            if target.exists():
                kept = backups / f"{k}-{target.name}"
                try:
                    os.link(target, kept)
                except OSError:
                    shutil.copy2(target, kept)
            _move(new, target)
            done.append((target, kept))
    except BaseException:
        for target, kept in reversed(done):
            if kept is None:
                target.unlink(missing_ok=True)
            else:
                os.replace(kept, target)
        raise
