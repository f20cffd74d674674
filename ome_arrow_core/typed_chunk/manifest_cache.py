"""A dataset's manifest parsed once per process and file version, shared by the readers that open the dataset.

Scanning a plate and opening its first image both need the manifest; at 100,000 images it is ~170 KB of JSON (the
row-group records of its tables), ~1 ms to parse. :func:`shared_manifest` parses it once per file version (path,
device, inode, size, mtime, ctime: a manifest is replaced whole by every write) and hands every reader the same
dict, which readers must not change: writers read their own copy with :func:`~.spec.read_manifest`.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any, Final

from ..fork_locks import fork_safe_lock
from .file_version import FileVersion, member_version
from .spec import MANIFEST, read_manifest

__all__ = ["KEPT_MANIFESTS", "shared_manifest"]

#: Manifests kept parsed (the most recently used).
KEPT_MANIFESTS: Final[int] = 16
_kept: OrderedDict[FileVersion, dict[str, Any]] = OrderedDict()
_lock = fork_safe_lock(globals(), "_lock")


def shared_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the dataset at ``path``, as :func:`~.spec.read_manifest` reads it, parsed once per file
    version in this process (the same dict each time: read it, never change it)."""
    before = member_version(path, MANIFEST)  # a member that is not a regular file is refused
    if before is None:
        return read_manifest(path)  # {} (or the error naming what is wrong)
    with _lock:
        hit = _kept.get(before)
        if hit is not None:
            _kept.move_to_end(before)
            return hit
    manifest = read_manifest(path)
    if member_version(path, MANIFEST) == before:  # replaced while read: not kept (the next read parses again)
        with _lock:
            _kept[before] = manifest
            while len(_kept) > KEPT_MANIFESTS:
                _kept.popitem(last=False)
    return manifest
