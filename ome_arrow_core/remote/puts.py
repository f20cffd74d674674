"""Putting objects so that two writers cannot both win: conditional puts where the store has them.

S3 (and S3-compatible servers that implement it, such as moto, MinIO, Ceph) takes a put with
``If-None-Match: *`` (create, never replace) or ``If-Match: <ETag>`` (replace only the version
read). pyarrow's filesystems do not expose those headers, so for pyarrow's S3 filesystem the
puts go through boto3 (``pip install boto3``), configured from the filesystem's own endpoint,
region and credentials (or the standard AWS environment and config when it has none). Other
stores (GCS, Azure, fsspec filesystems) are written through their filesystem with a lookup
first: safe against a crashed writer, not against two writers racing in the same instant
(:attr:`ObjectPuts.conditional` says which one applies).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

from ..boundary import writing
from ..errors import UnsafeOverwriteError
from ..location import Location
from .ranges import s3_client

__all__ = ["ObjectPuts", "LostRace"]

_BLOCK = 8 << 20


class LostRace(UnsafeOverwriteError):
    """A conditional put found another writer's object (or manifest version) in its place."""


def _body(source: Path | bytes) -> BinaryIO:
    """``source`` as a readable binary file (a local file is streamed, never read whole into memory)."""
    return io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")


def _split(path: str) -> tuple[str, str]:
    bucket, _, key = path.partition("/")
    return bucket, key


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str((response or {}).get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


class ObjectPuts:
    """Puts into the store of ``root`` (a remote directory): create-only, replace-if-unchanged, delete."""

    def __init__(self, root: Location) -> None:
        import pyarrow.fs as pafs

        self.root = root
        self._client = s3_client(root.fs, required=True) if isinstance(root.fs, pafs.S3FileSystem) else None

    @property
    def conditional(self) -> bool:
        """True when the store itself refuses a losing put (S3's conditional writes)."""
        return self._client is not None

    def version(self, name: str) -> str | None:
        """The current version (ETag; elsewhere size and mtime) of object ``name``, None when there is none."""
        import pyarrow.fs as pafs

        loc = self.root.join(name)
        with writing(self.root.uri, name, "looking up"):
            if self._client is not None:
                bucket, key = _split(loc.path)
                try:
                    return str(self._client.head_object(Bucket=bucket, Key=key)["ETag"])
                except Exception as exc:
                    if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                        return None
                    raise OSError(f"{_code(exc)}: {exc}") from exc
            info = loc.fs.get_file_info(loc.path)
            if info.type == pafs.FileType.NotFound:
                return None
            return f"{info.size}:{info.mtime_ns}"

    def put(self, name: str, source: Path | bytes, *, expect: str | None = None, create: bool = True) -> None:
        """Put ``source`` (a local file or bytes) as object ``name``: with ``create``, only if there is none; with
        ``expect``, only if its version is still ``expect``. LostRace when another writer's object is there."""
        loc = self.root.join(name)
        with writing(self.root.uri, name, "uploading"), _body(source) as body:
            if self._client is not None:
                bucket, key = _split(loc.path)
                extra = {"IfMatch": expect} if expect is not None else {"IfNoneMatch": "*"} if create else {}
                try:
                    self._client.put_object(Bucket=bucket, Key=key, Body=body, **extra)  # streamed from the file
                except Exception as exc:
                    if _code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                        raise LostRace(self._lost(name)) from exc
                    raise OSError(f"{_code(exc) or type(exc).__name__}: {exc}") from exc
                return
            if (create or expect is not None) and self.version(name) != expect:
                raise LostRace(self._lost(name))
            with loc.fs.open_output_stream(loc.path) as out:
                while block := body.read(_BLOCK):
                    out.write(block)

    def _lost(self, name: str) -> str:
        return (
            f"{self.root.uri}/{name} was written by another writer meanwhile; nothing of this write is visible "
            "and what it uploaded was removed: open the dataset again and retry"
        )

    def delete(self, name: str) -> None:
        """Remove object ``name`` (missing: nothing to do)."""
        loc = self.root.join(name)
        with writing(self.root.uri, name, "removing"):
            if self._client is not None:
                bucket, key = _split(loc.path)
                try:
                    self._client.delete_object(Bucket=bucket, Key=key)
                except Exception as exc:
                    raise OSError(f"{_code(exc) or type(exc).__name__}: {exc}") from exc
                return
            try:
                loc.fs.delete_file(loc.path)
            except FileNotFoundError:
                pass
