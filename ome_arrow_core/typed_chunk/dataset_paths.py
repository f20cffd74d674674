"""Where a dataset directory named by a path or a URI lies on this machine: to read it, or to write it.

A local path is the directory itself; a ``file://`` URI its path; a remote URI (or a path inside a ``filesystem``)
the local mirror of the remote directory's tables (:mod:`.remote_mirror`, imported only then: its hashing,
temporary directories and ranged GETs are no part of opening a local plate). A write target is local or remote
(:func:`remote_target`; the remote writer, :mod:`.remote_writes`, is imported only for a remote one).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import NotFoundError

if TYPE_CHECKING:
    from ..location import Location

__all__ = ["dataset_path", "remote_target"]


def dataset_path(target: str | os.PathLike[str], filesystem: Any = None) -> str | os.PathLike[str]:
    """``target`` when it is a local path; the local path of a ``file://`` URI; the mirror of a remote dataset
    directory (FileNotFoundError when ``target`` names none)."""
    from ..location import is_uri, resolve

    if filesystem is None and not is_uri(target):
        return target
    loc = resolve(target, filesystem)
    if loc.local:
        return loc.path
    from .remote_mirror import MANIFEST, mirror_dataset

    mirror = mirror_dataset(loc)
    if mirror is None:
        raise NotFoundError(
            f"{loc.uri} holds no OME-Arrow dataset directory (no {MANIFEST} and no images/index tables); "
            "remote datasets are dataset directories; open one remote image file with OMEArrow(uri)"
        )
    return mirror


def remote_target(out: str | os.PathLike[str], filesystem: Any = None) -> tuple[Path | None, Location | None]:
    """(the local path, None) of a local write target ``out`` (a path or ``file://`` URI), or (None, its remote
    location) for a URI or a path in ``filesystem``."""
    from ..location import is_uri, resolve

    if filesystem is None and not is_uri(out):
        return Path(out), None
    loc = resolve(out, filesystem)
    return (Path(loc.path), None) if loc.local else (None, loc)
