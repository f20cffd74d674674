"""What the command line's PATH arguments name: a local path, a ``file://`` URI (its path) or a URI the library
reads (``s3://``, ``gs://``, ``az://``, ``http(s)://``, see :mod:`..location`), passed on as given.

Reading goes through ``OMEArrow.scan`` and ``OMEArrowDataset.scan``, so a missing object, a bucket that does
not exist, a refused request or a bad URI fail with the library's own errors. Writing a remote output is left to
the writers that declare ``remote=True`` (:func:`remote_output` refuses the others, and HTTP, up front).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath
from typing import TYPE_CHECKING

from ..errors import ArgumentError
from ..uris import is_uri, local_path

if TYPE_CHECKING:
    from ..dataset import OMEArrowDataset
    from ..location import Location

__all__ = ["Target", "target", "remote_output", "open_many", "remote_dataset", "exists"]

#: Files that may hold several images (one per row); anything else is one image.
_TABLE_SUFFIXES = (".parquet", ".pq", ".ome-arrow")


@dataclass(frozen=True)
class Target:
    """A PATH argument: ``arg`` is what the library opens (a local path, or the URI as typed, query and all);
    ``path`` gives its name and suffix (a remote one: its URI's path); ``shown`` names it in output and messages:
    as typed, a URI without its query (it may hold credentials)."""

    arg: Path | str
    path: PurePath
    shown: str

    @property
    def remote(self) -> bool:
        """True for a URI the library reads remotely (not a local path, not ``file://``)."""
        return isinstance(self.arg, str)

    def __str__(self) -> str:
        return self.shown


def target(text: str) -> Target:
    """``text`` as a :class:`Target`; ArgumentError for a URI the library cannot resolve (its own message:
    an unsupported scheme, no bucket, a ``..`` in a key)."""
    if not is_uri(text) or text.lower().startswith("file://"):
        path = local_path(text, "the command line")
        return Target(path, path, text)
    from urllib.parse import urlsplit

    from ..location import resolve  # pyarrow.fs: only when a URI is given

    uri = resolve(text).uri
    return Target(text, PurePosixPath(urlsplit(uri).path), uri)


def remote_output(text: str, how: str) -> Location:
    """The remote location of output ``text`` for format ``how``: ArgumentError when it is HTTP (read-only) or
    ``how``'s writer writes local files only (what the library says when it is asked to)."""
    from ..location import resolve
    from ..registry import default_registry

    loc = resolve(text)
    if loc.uri.startswith(("http://", "https://")):
        raise ArgumentError(
            f"{loc.uri}: HTTP(S) locations are read-only; write to a local path or an object store (s3://...)"
        )
    writer = default_registry().resolve_writer(how)
    if not writer.remote:
        raise ArgumentError(
            f"{loc.uri}: the {writer.name!r} writer writes local files only; write locally, then copy "
            "(or convert to .ome.parquet, .ome.tiff or .ome.zarr, which are written to object storage)"
        )
    return loc


def exists(loc: Location) -> bool:
    """Whether anything (an object, or objects under the name) is at remote ``loc``; one lookup."""
    import pyarrow.fs as pafs

    return bool(loc.looked_up().type != pafs.FileType.NotFound)


def open_many(t: Target, column: str | None) -> OMEArrowDataset | None:
    """The dataset or table of several images at ``t`` (a local directory or table file, a remote dataset
    directory); None when ``t`` is one image (or nothing there: ``OMEArrow.scan`` then says so)."""
    if t.remote:
        return remote_dataset(t, column)
    assert isinstance(t.arg, Path)
    if not (t.arg.is_dir() or t.arg.name.lower().endswith(_TABLE_SUFFIXES)):
        return None
    from ..dataset import OMEArrowDataset

    return OMEArrowDataset.scan(t.arg, column=column)


def remote_dataset(t: Target, column: str | None) -> OMEArrowDataset | None:
    """The dataset directory at remote ``t`` (its tables fetched once); None when ``t`` holds none: one image
    file, an OME-Zarr store, or nothing."""
    from ..dataset import OMEArrowDataset
    from ..location import resolve
    from ..typed_chunk import is_dataset_name, mirror_dataset

    loc = resolve(os.fspath(t.arg))
    if loc.uri.startswith(("http://", "https://")) and not is_dataset_name(loc):
        return None  # a web server cannot say what is a directory: only a .parquet name or one without a suffix
    if mirror_dataset(loc) is None:
        return None
    return OMEArrowDataset.scan(t.arg, column=column)
