"""Telling a store's refusal or an unreachable server apart from damaged bytes.

pyarrow's S3/GCS/Azure filesystems report a refused connection, a timeout or a 403 as an
``OSError`` without an errno, the same type they use for undecodable bytes; fsspec's HTTP
filesystem raises aiohttp's errors or a bare ``FileNotFoundError``. :func:`storage_failure`
recognises these (by type, and for pyarrow by the store's error names in the message) and
builds a :class:`~.errors.StorageError` that names the URI and says what to check:
credentials, the endpoint, or the bucket and key.
"""

from __future__ import annotations

import errno
import os
import re

from .errors import StorageError
from .uris import is_uri

__all__ = ["storage_failure"]

_DENIED = (
    "ACCESS_DENIED",
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "HTTP status 401",
    "HTTP status 403",
    "EXPIRED_TOKEN",
    "ExpiredToken",
    "INVALID_ACCESS_KEY_ID",
    "SIGNATURE_DOES_NOT_MATCH",
    "PermissionDenied",
    "AuthorizationFailure",
    "Forbidden",
    "Unauthorized",
)
_UNREACHABLE = (
    "NETWORK_CONNECTION",
    "curlCode",
    "Could not connect",
    "Connection refused",
    "Timeout was reached",
    "timed out",
    "Couldn't resolve host",
    "Cannot connect to host",
    "Server disconnected",
    "Connection reset",
    "SLOW_DOWN",
    "SERVICE_UNAVAILABLE",
    "HTTP status 5",
)
_MISSING = ("NoSuchKey", "NoSuchBucket", "NO_SUCH_KEY", "NO_SUCH_BUCKET", "RESOURCE_NOT_FOUND", "HTTP status 404")

_HINTS = {
    "denied": (
        "the store refused the request (access denied); check the credentials in the environment or config "
        "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE for S3, GOOGLE_APPLICATION_CREDENTIALS for GCS, "
        "AZURE_STORAGE_ACCOUNT_NAME/AZURE_STORAGE_ACCOUNT_KEY for Azure) and that they may access this object"
    ),
    "unreachable": (
        "the store did not answer; check the endpoint (AWS_ENDPOINT_URL, or ?endpoint_override=... in the "
        "URI), the network, and that the server is running"
    ),
    "missing": "the object does not exist (or was removed while open); check the bucket and the key",
}
_QUERY = re.compile(r"(https?://[^\s'\"?]*)\?[^\s'\"]*")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    at: BaseException | None = exc
    while at is not None and at not in seen and len(seen) < 8:
        seen.append(at)
        at = at.__cause__ or at.__context__
    return seen


def _kind(exc: BaseException, remote: bool) -> str | None:
    """'denied', 'unreachable', 'missing', or None when ``exc`` is not a storage failure."""
    for e in _chain(exc):
        status = getattr(e, "status", None)  # aiohttp.ClientResponseError
        if type(e).__module__.startswith("aiohttp") and isinstance(status, int):
            return "missing" if status == 404 else "denied" if status in (401, 403) else "unreachable"
        if type(e).__module__.startswith("aiohttp") or isinstance(e, (TimeoutError, ConnectionError)):
            return "unreachable"
    if not remote or not isinstance(exc, OSError) or exc.errno is not None:
        return None
    text = " ".join(str(e) for e in _chain(exc))
    for kind, needles in (("denied", _DENIED), ("missing", _MISSING), ("unreachable", _UNREACHABLE)):
        if any(n in text for n in needles):
            return kind
    if isinstance(exc, FileNotFoundError):  # fsspec's bare FileNotFoundError(url)
        return "missing"
    return None


def storage_failure(exc: BaseException, place: str | os.PathLike[str], what: str) -> StorageError | None:
    """A :class:`StorageError` for ``exc`` when it is a store or network failure at ``place``, else None."""
    kind = _kind(exc, is_uri(os.fspath(place)))
    if kind is None:
        return None
    lines = str(exc).strip().splitlines()
    detail = _QUERY.sub(r"\1?...", f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__)
    err = StorageError(f"{os.fspath(place)}: {what} failed: {_HINTS[kind]} ({detail})")
    err.errno = errno.ENOENT if kind == "missing" else errno.EACCES if kind == "denied" else errno.EHOSTUNREACH
    return err
