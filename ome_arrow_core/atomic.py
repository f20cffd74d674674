"""Atomic writes: write beside the target, then rename; nothing half-written on failure."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path"]


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
