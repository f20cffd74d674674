"""Checks passed on one version of a dataset's files, shared with the processes forked after it was made.

A process checks each image before its first read (its chunks cover it exactly once, its row groups hold its
declared bytes) and audits each chunk row group on its first read (the rows hold what the index says). Those
results are kept per process, so every process forked afresh (a DataLoader's workers, new every epoch unless
persistent) paid them again for every image it read. A :class:`Ledger` keeps one byte per image ("checked")
and per index row ("its chunk's row group audited") in anonymous shared memory: a process opening the same
version of the files (the same path, device, inode, size, mtime and ctime of the manifest, the tables and
every chunk file, and the same table verification) after the ledger was made, its own children included, finds
the ledger in :data:`_ledgers` (inherited through ``fork``) and skips what any of them marked.

A changed file makes another key, hence a fresh ledger: nothing marked on one version is trusted on another.
Only structural checks are shared; every chunk's checksum is still compared on every read.
"""

from __future__ import annotations

import mmap
import os
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import Final

import numpy as np

from ..fork_locks import fork_safe_lock
from .file_version import file_version

__all__ = ["Ledger", "ledger_for", "chunk_versions", "forget_ledgers", "LEDGERS"]

#: How many ledgers a process keeps (the least recently opened is dropped first; a dropped one is made again,
#: empty, by the next open).
LEDGERS: Final[int] = 32


class Ledger:
    """One byte per image and per index row of one version of a dataset, in memory that forked processes share."""

    def __init__(self, images: int, rows: int, versions: tuple[tuple[int, ...] | None, ...] = ()) -> None:
        self.images = int(images)
        self.rows = int(rows)
        #: The versions of the chunk files it was made for (see :func:`chunk_versions`).
        self.versions = versions
        self._memory = mmap.mmap(-1, max(1, self.images + self.rows))  # anonymous, shared with forked children
        self._bytes = np.frombuffer(self._memory, dtype=np.uint8)

    def checked(self, positions: Sequence[int]) -> np.ndarray:
        """Whether each image row of ``positions`` was checked (coverage and bound) by a process of this ledger."""
        at = np.asarray(positions, dtype=np.int64)
        if not len(at) or int(at.min()) < 0 or int(at.max()) >= self.images:
            return np.zeros(len(at), dtype=bool)
        marked: np.ndarray = self._bytes[at] != 0
        return marked

    def mark_checked(self, positions: Sequence[int]) -> None:
        """Record that image rows ``positions`` passed their checks (coverage and bound)."""
        at = np.asarray(positions, dtype=np.int64)
        if len(at) and int(at.min()) >= 0 and int(at.max()) < self.images:
            self._bytes[at] = 1

    def audited(self, rows: np.ndarray) -> bool:
        """Whether the row group of every index row of ``rows`` was audited whole by a process of this ledger."""
        at = np.asarray(rows, dtype=np.int64)
        if not len(at) or int(at.min()) < 0 or int(at.max()) >= self.rows:
            return False
        return bool(self._bytes[self.images + at].all())

    def mark_audited(self, rows: np.ndarray) -> None:
        """Record that the row groups of index rows ``rows`` were audited whole."""
        at = np.asarray(rows, dtype=np.int64)
        if len(at) and int(at.min()) >= 0 and int(at.max()) < self.rows:
            self._bytes[self.images + at] = 1


_ledgers: OrderedDict[Hashable, Ledger] = OrderedDict()
_lock = fork_safe_lock(globals(), "_lock")


def chunk_versions(root: str, files: Sequence[str]) -> tuple[tuple[int, ...] | None, ...]:
    """The version (device, inode, size, mtime, ctime) of each chunk file ``files`` (names under ``root``) now; None
    for one that cannot be read."""
    versions: list[tuple[int, ...] | None] = []
    for name in files:
        try:
            versions.append(file_version(f"{root}{os.sep}{name}")[1:])
        except OSError:
            versions.append(None)
    return tuple(versions)


def ledger_for(key: tuple[Hashable, ...], root: str, files: Sequence[str], images: int, rows: int) -> Ledger:
    """The ledger of ``key`` (the version of a dataset's tables, without the process) and the versions of its chunk
    ``files`` (names under ``root``), made now when no process before this one (or its parent) made it."""
    versions = chunk_versions(root, files)
    full = (*key, versions, images, rows)
    with _lock:
        hit = _ledgers.get(full)
        if hit is None:
            hit = _ledgers[full] = Ledger(images, rows, versions)
            while len(_ledgers) > LEDGERS:
                _ledgers.popitem(last=False)
        _ledgers.move_to_end(full)
        return hit


def forget_ledgers() -> None:
    """Forget every ledger of this process (processes forked later start with none)."""
    with _lock:
        _ledgers.clear()
