"""The version of a file on disk: the stamp that tells a parsed footer or a passed checksum still stands.

One definition for every per-process cache of a dataset's tables (footers, whole-table digests, row-group
digests): a file is the same version while its path, device, inode, size, mtime and ctime are. A file replaced
(an append's manifest, a compaction's swap) or rewritten in place changes at least one of them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePath
from typing import TypeAlias

from ..boundary import require_member

__all__ = ["FileVersion", "file_version", "member_stamps", "member_version"]

#: (path, device, inode, size, mtime in ns, ctime in ns).
FileVersion: TypeAlias = tuple[str, int, int, int, int, int]


def file_version(file: str | os.PathLike[str]) -> FileVersion:
    """The version of ``file`` (OSError when it cannot be stat'ed)."""
    st = os.stat(file)
    return (os.fspath(file), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def member_stamps(root: str, names: tuple[str, ...]) -> list[tuple[int, int, int, int, int] | None]:
    """:func:`file_version` of each of ``names`` in directory ``root``, without the path (None: missing); one loop
    for the stale-file stamp every scan takes (see ``opening._stamp``)."""
    out: list[tuple[int, int, int, int, int] | None] = []
    for name in names:
        try:
            st = os.stat(f"{root}{os.sep}{name}")
        except FileNotFoundError:
            out.append(None)
        else:
            out.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return out


def member_version(root: Path, name: str) -> FileVersion | None:
    """The version of table ``name`` of the dataset at ``root``, None when it is missing (the caller names it);
    a member that is not a regular file is refused (never stat a FIFO's target as a table). One ``lstat`` for a
    regular file (a scan and a first read ask for about twenty)."""
    file = _joined(root, name)
    try:
        st = os.lstat(file)
    except (OSError, ValueError):  # as os.path.lexists has it: missing
        return None
    if not stat.S_ISREG(st.st_mode):  # a link (its target decides), or not a file at all
        try:
            target: os.stat_result | None = os.stat(file)
        except OSError:
            target = None
        if target is None or not stat.S_ISREG(target.st_mode):
            require_member(root, name)  # raises, saying what the member is
            target = os.stat(file)
        st = target
    return (file, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _joined(root: Path, name: str) -> str:
    """``os.fspath(root / name)``, without making a Path where joining the text is the same (a plain name)."""
    base = os.fspath(root)
    if (
        isinstance(root, PurePath)
        and name not in ("", ".", "..")
        and os.sep not in name
        and (os.altsep is None or os.altsep not in name)
        and base != "."
        and not base.endswith(os.sep)
    ):
        return f"{base}{os.sep}{name}"
    return os.fspath(Path(root) / name)
