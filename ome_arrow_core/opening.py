"""A path or URI to the pixel source its reader opens: local files, remote objects, and the checks on both.

Local targets keep every local guard: a copy left aside by a killed overwrite goes back
first, a FIFO or device is refused (a reader or a sniff would block on it forever).
Remote targets (``s3://``, ``http(s)://``, ... or ``filesystem=``; see :mod:`.location`) go to
readers that declare ``remote=True``; the others say so instead of failing on a mangled path.
"""

from __future__ import annotations

import errno
import functools
import inspect
import os
import stat
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, Final, cast

from .arguments import named_options
from .boundary import path_mode, require_regular_file
from .errors import ArgumentError, NotFoundError
from .handlers import OpenRemoteSource, PixelSource, require
from .location import Location, is_uri, resolve
from .registry import Registry

__all__ = ["open_path"]


def open_path(
    target: str | os.PathLike[str] | Location,
    registry: Registry,
    *,
    format: str | None = None,
    filesystem: Any = None,
    **options: Any,
) -> PixelSource:
    """The pixel source for ``target`` (options such as ``column=``, ``row=`` go to the reader)."""
    if filesystem is None and not isinstance(target, Location) and not is_uri(target):
        return _open_local(Path(target), registry, format, options)
    loc = resolve(target, filesystem)
    if loc.local:
        return _open_local(Path(loc.path), registry, format, options)
    return _open_remote(loc, registry, format, options)


def _open_local(path: Path, registry: Registry, format: str | None, options: dict[str, Any]) -> PixelSource:
    mode = path_mode(path)
    if mode is None:
        from .safe_write import recover

        recover(path)  # a killed overwrite may have left the old copy aside: it goes back
        mode = path_mode(path)
    if mode is None:
        raise NotFoundError(errno.ENOENT, "no such file or directory (check the path)", str(path))
    if not stat.S_ISDIR(mode):
        require_regular_file(path)
    reader = registry.resolve_reader(path, format)
    reader.ensure_available()
    open_ = require(reader, reader.open, "open")
    return _opened(open_, path, _with_registry(open_, registry, options, reader.name, path), reader.name, path)


def _open_remote(loc: Location, registry: Registry, format: str | None, options: dict[str, Any]) -> PixelSource:
    import pyarrow.fs as pafs

    info = loc.looked_up()
    if info.type != pafs.FileType.File or loc.uri.startswith(("http://", "https://")):
        from .typed_chunk import is_dataset_name, mirror_dataset

        # a dataset directory (a web server cannot say a name is a directory: there its manifest decides)
        if info.type != pafs.FileType.File or is_dataset_name(loc):
            mirror = mirror_dataset(loc)
            if mirror is not None:
                return _open_local(mirror, registry, format, options)
    if info.type == pafs.FileType.NotFound:
        raise NotFoundError(
            errno.ENOENT,
            "no such object or directory: check the bucket (or host), the key and AWS_ENDPOINT_URL",
            loc.uri,
        )
    reader = registry.resolve_reader(PurePosixPath(loc.path), format)
    reader.ensure_available()
    if not reader.remote or reader.open is None:
        raise ArgumentError(
            f"{loc.uri}: the {reader.name!r} reader reads local files only; copy the file to a local disk "
            "first, or use a format whose reader reads remote storage (Parquet record files, OME-TIFF, OME-Zarr)"
        )
    open_remote = cast(OpenRemoteSource, reader.open)  # remote=True: open takes a Location too
    kw = _with_registry(open_remote, registry, options, reader.name, loc.uri)
    return _opened(open_remote, loc.with_info(info), kw, reader.name, loc.uri)


def _opened(
    open_: Callable[..., PixelSource], target: Any, kw: dict[str, Any], reader: str, where: object
) -> PixelSource:
    """``open_(target, **kw)``; an option it has no parameter for (a reader that forwards its options to a function
    that names them) is an ArgumentError naming it, not Python's TypeError."""
    with named_options(kw, f"{where}: the {reader!r} reader", "check the spelling, or leave it out"):
        return open_(target, **kw)


#: Options every reader is given and may ignore: ``column=`` and ``row=`` (OMEArrow's own parameters, passed on
#: always), ``verify=`` (a dataset passes it to whichever reader its images have), ``registry=`` (added below for
#: readers that take it).
_ANY_READER: Final[frozenset[str]] = frozenset({"column", "row", "verify", "registry"})


def _with_registry(
    open_: Callable[..., PixelSource], registry: Registry, options: dict[str, Any], reader: str, where: object
) -> dict[str, Any]:
    """``options`` plus ``registry=`` when the reader's ``open`` takes it (datasets pick chunk stores with it);
    ArgumentError for an option it has no parameter for, where its ``open`` names its options (its catch-all, if
    any, is ``**_``: options it ignores; a misspelt ``levle=2`` read the full resolution silently before)."""
    try:
        named, takes = _known_params(open_)
    except TypeError:  # an unhashable callable: not cached
        named, takes = _params(open_)
    if named is not None:
        unknown = sorted(set(options) - named - _ANY_READER)
        if unknown:
            raise ArgumentError(
                f"{where}: the {reader!r} reader has no option {', '.join(map(repr, unknown))}; it takes "
                f"{', '.join(sorted(named - {'path', 'registry'})) or 'none'}. Check the spelling, or leave it out"
            )
    return {**options, "registry": registry} if takes else options


#: :func:`_params` remembered per reader (reading a signature costs ~0.1 ms a scan).
_known_params = functools.lru_cache(maxsize=256)(lambda open_: _params(open_))


def _params(open_: Callable[..., PixelSource]) -> tuple[frozenset[str] | None, bool]:
    """The keyword options ``open_`` names (None when it forwards others: a ``**kwargs`` not named ``_``, or no
    signature), and whether it takes ``registry=``."""
    try:
        params = inspect.signature(open_).parameters
    except (TypeError, ValueError):  # builtins and C callables without a signature
        return None, False
    forwards = any(p.kind is p.VAR_KEYWORD and name != "_" for name, p in params.items())
    named = frozenset(n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    return (None if forwards else named), "registry" in params
