"""Reading objects of known size without looking them up first.

pyarrow's ``open_input_file``/``open_input_stream`` take a path only, and its S3 filesystem
sends a HEAD to learn the size before the first byte is read: one request per object opened.
Where the size is already known (a listing, a manifest, the lookup that opened the target),
:func:`open_known` and :func:`get_range` read without that HEAD: fsspec filesystems (HTTP, s3fs)
take the size directly, and pyarrow's S3 filesystem is read through boto3 with the
filesystem's own endpoint, region and credentials (without boto3, pyarrow's HEAD stays).
"""

from __future__ import annotations

import io
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from ..location import Location

__all__ = ["s3_client", "open_known", "get_range", "fsspec_of"]

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def fsspec_of(loc: Location) -> Any:
    """The fsspec filesystem behind ``loc``'s pyarrow wrapper (None: a pyarrow filesystem)."""
    fs = getattr(getattr(loc.fs, "handler", None), "fs", None)
    return fs if fs is not None and hasattr(fs, "cat_file") else None


def s3_client(fs: Any, required: bool = False) -> Any:
    """A boto3 S3 client for pyarrow S3 filesystem ``fs`` (its endpoint, region and explicit credentials; else the
    standard AWS environment and config), shared per configuration; None without boto3 unless ``required``."""
    try:
        import boto3  # type: ignore[import-untyped]
    except ImportError as exc:
        if not required:
            return None
        from ..errors import BackendUnavailableError

        raise BackendUnavailableError(
            'conditional puts to S3 (safe concurrent appends) need boto3: pip install "ome-arrow-core[s3]"'
        ) from exc
    options = fs.__reduce__()[1][0]  # pyarrow pickles an S3FileSystem as its options
    kwargs: dict[str, Any] = {}
    if options.get("endpoint_override"):
        kwargs["endpoint_url"] = f"{options.get('scheme') or 'https'}://{options['endpoint_override']}"
    if options.get("region"):
        kwargs["region_name"] = options["region"]
    if options.get("access_key"):
        kwargs["aws_access_key_id"] = options["access_key"]
        kwargs["aws_secret_access_key"] = options.get("secret_key")
        kwargs["aws_session_token"] = options.get("session_token") or None
    key = repr(sorted(kwargs.items()))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = boto3.client("s3", **kwargs)
        return client


def _client_of(loc: Location) -> Any:
    import pyarrow.fs as pafs

    return s3_client(loc.fs) if isinstance(loc.fs, pafs.S3FileSystem) else None


def _boto_get(client: Any, path: str, start: int | None = None, stop: int | None = None) -> bytes:
    """Object ``path`` (``bucket/key``), or bytes ``start..stop`` of it, in one GET; errors as OSError the
    storage classifier reads (``NoSuchKey``, ``AccessDenied``, ...)."""
    bucket, _, key = path.partition("/")
    extra = {} if start is None else {"Range": f"bytes={start}-{(stop or start + 1) - 1}"}
    try:
        body = client.get_object(Bucket=bucket, Key=key, **extra)["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()
    except Exception as exc:
        response = getattr(exc, "response", None)
        code = str((response or {}).get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""
        if code in ("InvalidRange", "416"):
            return b""  # past the end of an object replaced by a shorter one: a short read
        if code in ("NoSuchKey", "404", "NoSuchBucket"):
            raise FileNotFoundError(f"{code}: {path}") from exc
        raise OSError(f"{code or type(exc).__name__}: {exc}") from exc


def get_range(loc: Location, start: int | None = None, stop: int | None = None) -> bytes:
    """The object at ``loc`` (or its bytes ``start..stop``) in one GET where the store allows it."""
    fs = fsspec_of(loc)
    if fs is not None:
        try:
            data = fs.cat_file(loc.path, start=start, end=stop)
        except Exception as exc:
            if start is not None and _answered_416(exc):
                return b""  # past the end of an object replaced by a shorter one: a short read (the caller's damage)
            raise
        return _ranged(loc, bytes(data), start, stop)
    client = _client_of(loc)
    if client is not None:
        return _boto_get(client, loc.path, start, stop)
    if start is None:
        with loc.fs.open_input_stream(loc.path) as f:
            return bytes(f.read())
    with loc.fs.open_input_file(loc.path) as f:
        return bytes(f.read_at((stop or f.size()) - start, start))


def _answered_416(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a server's 416 Range Not Satisfiable (aiohttp, requests, fsspec)."""
    at: BaseException | None = exc
    for _ in range(4):
        if at is None:
            return False
        status = getattr(at, "status", None)
        if status is None:
            status = getattr(getattr(at, "response", None), "status_code", None)
        if status == 416:
            return True
        at = at.__cause__ or at.__context__
    return False


def _ranged(loc: Location, data: bytes, start: int | None, stop: int | None) -> bytes:
    """Bytes ``start..stop`` of what a ranged GET of ``loc`` answered: a server that ignores ``Range`` (``python -m
    http.server``, many static servers) answers with the whole object, whose bytes ``start..stop`` are the answer
    (they were taken for the range itself, and a sound file was called truncated); StorageError when it answered
    with more than the range yet not the whole of it."""
    if start is None or stop is None or len(data) <= stop - start:
        return data
    if len(data) < stop:
        from ..errors import StorageError

        raise StorageError(
            f"{loc.uri}: a GET of bytes {start}..{stop} answered {len(data)} bytes, neither that range nor the whole "
            "object; the server mishandles Range requests: serve the dataset from one that supports them"
        )
    return data[start:stop]  # the whole object (200 OK): this read fetched it all


class _Ranged(io.RawIOBase):
    """A seekable read-only file of known size whose reads are ranged GETs."""

    def __init__(self, loc: Location, size: int) -> None:
        self._loc, self._size, self._at = loc, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._at

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._at, io.SEEK_END: self._size}[whence]
        self._at = base + offset
        return self._at

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        stop = min(self._size, self._at + len(view))
        if stop <= self._at:
            return 0
        data = get_range(self._loc, self._at, stop)
        view[: len(data)] = data
        self._at += len(data)
        return len(data)


def open_known(loc: Location, size: int) -> pa.NativeFile:
    """The object at ``loc``, ``size`` bytes, as a random-access file opened without a lookup where possible."""
    import pyarrow as pa

    # fsspec's own files refuse a server that ignores Range (ValueError: "doesn't appear to support range
    # requests"); reads through get_range take the range out of its whole-object answer instead
    if fsspec_of(loc) is not None or _client_of(loc) is not None:
        return pa.PythonFile(_Ranged(loc, size), mode="r")
    opened: pa.NativeFile = loc.fs.open_input_file(loc.path)
    return opened
