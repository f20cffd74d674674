"""Where bytes live: a local path, a URI (``s3://``, ``gs://``, ``az://``, ``http(s)://``, ``file://``) or a
path inside a caller's filesystem, resolved once into a :class:`Location`.

- Local paths and ``file://`` URIs stay local (``Location.local``): readers keep their
  positioned reads, memory maps and locks.
- ``s3://``, ``gs://``/``gcs://``, ``az://``/``abfs://`` and ``hdfs://`` go to pyarrow's own
  filesystems; credentials come from each store's standard environment and config (for S3
  also ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL`` for S3-compatible servers, and pyarrow's
  URI query options such as ``?endpoint_override=...&scheme=http``).
- ``http(s)://`` reads through fsspec's HTTP filesystem (``pip install "ome-arrow-core[http]"``)
  with ranged GETs.
- ``filesystem=`` takes a ``pyarrow.fs.FileSystem`` or an fsspec filesystem; the target is then a
  path inside it (a URI's scheme is dropped).

Messages show :attr:`Location.uri`, which never carries a URI's query string (it may hold secrets).
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import field, replace
from pathlib import Path, PurePath, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from .errors import ArgumentError, BackendUnavailableError
from .frozen_types import frozen
from .uris import is_uri

if TYPE_CHECKING:
    import pyarrow.fs as pafs

__all__ = ["Location", "URIPath", "resolve", "is_uri"]

_PYARROW_SCHEMES = {"s3", "gs", "gcs", "az", "abfs", "abfss", "hdfs", "viewfs"}
_HTTP_SCHEMES = {"http", "https"}


class URIPath(PurePosixPath):
    """A remote object's path inside its store that prints (``str``, ``os.fspath``) as its URI, so
    messages built from it name the object; it has no filesystem methods (no local disk is touched)."""

    uri: str = ""

    def __str__(self) -> str:
        return self.uri or super().__str__()


@frozen
class Location:
    """A file or directory on some filesystem.

    ``fs`` is a pyarrow filesystem, ``path`` the path inside it, ``uri`` a printable name (no
    query string), ``local`` True when ``path`` is an OS path usable with ``os`` functions;
    ``info`` the store's answer to the one lookup made when opening (None until then), so
    readers do not ask again.
    """

    fs: pafs.FileSystem
    path: str
    uri: str
    local: bool
    info: pafs.FileInfo | None = field(default=None, compare=False, repr=False)

    def looked_up(self) -> pafs.FileInfo:
        """The store's file info for this location: the one from opening, else one lookup now."""
        if self.info is not None:
            return self.info
        from .boundary import reading

        with reading(self.uri, None, "looking up"):
            return self.fs.get_file_info(self.path)

    def with_info(self, info: pafs.FileInfo) -> Location:
        """This location, remembering ``info`` (from :meth:`looked_up`)."""
        return replace(self, info=info)

    def join(self, *names: str) -> Location:
        """The location of ``names`` below this one."""
        if self.local:
            path = os.path.join(self.path, *names)
            return Location(self.fs, path, path, True)
        path = posixpath.join(self.path, *names)
        return Location(self.fs, path, posixpath.join(self.uri, *names), False)

    @property
    def name(self) -> str:
        """The last path component."""
        return posixpath.basename(self.path.rstrip("/")) if not self.local else os.path.basename(self.path)

    def display_path(self) -> PurePath:
        """A path for messages: the OS path of a local location, a :class:`URIPath` of a remote one."""
        if self.local:
            return Path(self.path)
        shown = URIPath(self.path)
        shown.uri = self.uri
        return shown

    def os_path(self) -> Path:
        """The OS path of a local location; ArgumentError for a remote one."""
        if not self.local:
            raise ArgumentError(f"{self.uri} is not on the local filesystem; this operation needs a local path")
        return Path(self.path)


def _local(path: str | os.PathLike[str]) -> Location:
    import pyarrow.fs as pafs

    text = os.fspath(path)
    return Location(pafs.LocalFileSystem(), text, text, True)


def _printable(parts: Any) -> str:
    """``scheme://netloc/path`` without user info or query (they may hold credentials)."""
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def _s3(target: str) -> tuple[pafs.FileSystem, str]:
    """pyarrow's S3 filesystem for ``target``, honouring ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``."""
    import pyarrow.fs as pafs

    parts = urlsplit(target)
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint and "endpoint_override" not in parts.query:
        ep = urlsplit(endpoint)
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        fs = pafs.S3FileSystem(endpoint_override=ep.netloc, scheme=ep.scheme or "https", region=region)
        return fs, f"{parts.netloc}{unquote(parts.path)}".rstrip("/")
    fs, path = _from_uri(target)
    return fs, path.rstrip("/")


def _from_uri(target: str) -> tuple[pafs.FileSystem, str]:
    """pyarrow's filesystem for ``target``; ArgumentError (not pyarrow's ArrowInvalid) for a URI it cannot parse, and
    StorageError when the store cannot be reached (pyarrow asks S3 for a bucket's region when the URI names none)."""
    import pyarrow as pa
    import pyarrow.fs as pafs

    parts = urlsplit(target)
    try:
        fs, path = pafs.FileSystem.from_uri(target)
        return fs, str(path)
    except pa.ArrowInvalid as exc:
        raise ArgumentError(
            f"{_printable(parts)}: {str(exc).strip()}; write {parts.scheme}://bucket/folder/name"
        ) from exc
    except OSError as exc:  # the region lookup: unreachable, denied
        from .remote_errors import storage_failure

        err = storage_failure(exc, _printable(parts), "connecting to the store")
        if err is None:
            raise
        raise err from exc


def _http(target: str) -> tuple[pafs.FileSystem, str]:
    """fsspec's HTTP filesystem behind pyarrow's interface; the path is the URL itself."""
    import pyarrow.fs as pafs

    try:
        from fsspec.implementations.http import HTTPFileSystem
    except ImportError as exc:
        raise BackendUnavailableError(
            f'reading {_printable(urlsplit(target))} needs fsspec and aiohttp: pip install "ome-arrow-core[http]"'
        ) from exc

    class RangedHTTP(pafs.FSSpecHandler):  # type: ignore[misc]
        """fsspec's handler minus its ``isfile`` probe, which GETs the whole body to look for links, and
        with lookups that fail loudly when the server cannot be reached or refuses (fsspec says
        ``FileNotFoundError`` for those too)."""

        def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
            infos = []
            for path in paths:
                try:
                    found = self.fs.info(path)
                except FileNotFoundError as exc:
                    cause = exc.__cause__
                    if cause is not None and getattr(cause, "status", None) != 404:  # refused, unreachable, 403
                        raise cause from exc
                    infos.append(pafs.FileInfo(path, pafs.FileType.NotFound))
                else:
                    infos.append(self._create_file_info(path, found))
            return infos

        def open_input_file(self, path: str) -> Any:
            from pyarrow import PythonFile

            size = self.fs.info(path).get("size")
            if size is None:  # no Content-Length: fsspec's own file, which streams
                return PythonFile(self.fs.open(path, mode="rb"), mode="r")
            from .remote import open_known  # its reads take a range out of a server's whole-object answer

            return open_known(Location(pafs.PyFileSystem(self), path, path, False), int(size))

    # cache_type="none": every read is one exact ranged GET; our readers coalesce neighbours themselves.
    return pafs.PyFileSystem(RangedHTTP(HTTPFileSystem(cache_type="none"))), target.rstrip("/")


def _wrap(filesystem: Any) -> pafs.FileSystem:
    """A pyarrow filesystem for a pyarrow or fsspec ``filesystem``."""
    import pyarrow.fs as pafs

    if isinstance(filesystem, pafs.FileSystem):
        return filesystem
    if all(hasattr(filesystem, a) for a in ("open", "info", "ls")):  # duck-typed fsspec.AbstractFileSystem
        return pafs.PyFileSystem(pafs.FSSpecHandler(filesystem))
    raise ArgumentError(
        f"filesystem= takes a pyarrow.fs.FileSystem or an fsspec filesystem, got {type(filesystem).__name__}"
    )


def _checked(path: str, uri: str) -> str:
    """``path`` inside a store, refused when a component is empty, ``.`` or ``..``: object keys are not resolved
    as OS paths are (``s3://b/x/..`` names a key ``x/..``, not ``b``)."""
    if not path:
        raise ArgumentError(f"{uri}: names no bucket; write s3://bucket/folder/name")
    bad = [c for c in path.split("/") if c in ("", ".", "..")]
    if bad:
        raise ArgumentError(
            f"{uri}: a path in an object store cannot have an empty, '.' or '..' component ({bad[0]!r}); "
            "write the key in full (s3://bucket/folder/name)"
        )
    return path


def resolve(target: str | os.PathLike[str] | Location, filesystem: Any = None) -> Location:
    """The :class:`Location` of ``target`` (path or URI), inside ``filesystem`` when one is given."""
    import pyarrow.fs as pafs

    if isinstance(target, Location):
        return target
    if not isinstance(target, (str, os.PathLike)):
        raise ArgumentError(f"expected a path or a URI, got {type(target).__name__}")
    text = os.fspath(target)
    if filesystem is not None:
        fs = _wrap(filesystem)
        if isinstance(fs, pafs.LocalFileSystem):
            return resolve(target)
        path = text.split("://", 1)[1] if is_uri(text) else text
        printable = _printable(urlsplit(text)) if is_uri(text) else path
        return Location(fs, path.rstrip("/"), printable.rstrip("/"), False)
    if not is_uri(text):
        return _local(text)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ArgumentError(f"{text}: file:// URIs must name a local path (file:///abs/path), not a host")
        return _local(unquote(parts.path))
    if scheme in ("s3", "gs", "gcs"):  # the key is checked before pyarrow asks the store for the bucket's region
        if not parts.netloc:  # s3:///key: pyarrow raised ArrowInvalid
            raise ArgumentError(f"{_printable(parts)}: names no bucket; write {scheme}://bucket/folder/name")
        _checked(f"{parts.netloc}{unquote(parts.path)}".rstrip("/"), _printable(parts))
    if scheme == "s3":
        fs, path = _s3(text)
        path = _checked(path.rstrip("/"), _printable(parts))
    elif scheme in _PYARROW_SCHEMES:
        fs, path = _from_uri(text)
        path = _checked(path.rstrip("/"), _printable(parts))
    elif scheme in _HTTP_SCHEMES:
        fs, path = _http(text)
    else:
        raise ArgumentError(
            f"{_printable(parts)}: unsupported URI scheme {scheme!r}; use a local path, file://, s3://, gs://, "
            "az://, http(s):// or pass filesystem= (a pyarrow or fsspec filesystem)"
        )
    return Location(fs, path.rstrip("/"), _printable(parts).rstrip("/"), False)
