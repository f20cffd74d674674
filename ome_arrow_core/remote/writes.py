"""Writing to remote storage so that readers see the old object or the new one, never a part.

:func:`remote_file`: one file is written locally first (by the format's own atomic writer), uploaded under a
temporary key next to the target, then moved onto the target by the store (S3: one
server-side copy). An upload cut short by an error or Ctrl-C is left under its temporary key
(``<name>.tmp-<random>``), never under the target's; the next successful write does not need it
and a lifecycle rule or ``ome-arrow-core cleanup`` may remove it.

:func:`upload_directory`: a directory written locally (e.g. an OME-Zarr store) is uploaded
object by object with its entry documents (the root metadata) last: until they land, the
target is not a store any reader opens. It never replaces an existing target.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..boundary import writing
from ..errors import ArgumentError, UnsafeOverwriteError
from ..location import Location

__all__ = ["remote_file", "upload_directory"]

_BLOCK = 8 << 20


def _refuse_http(target: Location) -> None:
    if target.uri.startswith(("http://", "https://")):
        raise ArgumentError(f"{target.uri}: HTTP(S) locations are read-only; write to a local path or an object store")


@contextmanager
def remote_file(target: Location, suffix: str = "") -> Iterator[Path]:
    """A local path to write; on success its bytes replace ``target`` in one step."""
    _refuse_http(target)
    with tempfile.TemporaryDirectory(prefix="ome-arrow-upload-") as tmp:
        local = Path(tmp) / f"file{suffix}"
        yield local
        temporary = f"{target.path}.tmp-{secrets.token_hex(6)}"
        with writing(target.uri, None, "uploading"):
            with open(local, "rb") as src, target.fs.open_output_stream(temporary) as out:
                while block := src.read(_BLOCK):
                    out.write(block)
            target.fs.move(temporary, target.path)
        os.unlink(local)


def _upload(local: Path, target: Location, key: str) -> None:
    with open(local, "rb") as src, target.fs.open_output_stream(key) as out:
        while block := src.read(_BLOCK):
            out.write(block)


def upload_directory(local: Path, target: Location, last: frozenset[str]) -> None:
    """Upload the files under directory ``local`` to ``target``; files named in ``last`` (at any depth,
    deepest first) after all others, the top-level ones at the very end."""
    import pyarrow.fs as pafs

    _refuse_http(target)
    with writing(target.uri, None, "looking up"):
        found = target.fs.get_file_info(target.path).type
    if found != pafs.FileType.NotFound:
        raise UnsafeOverwriteError(f"{target.uri} exists; remove it first (a store is never replaced in place)")
    files = sorted((p for p in local.rglob("*") if p.is_file()), key=lambda p: (p.name in last, -len(p.parts), str(p)))
    for file in files:
        rel = file.relative_to(local).as_posix()
        with writing(target.uri, rel, "uploading"):
            _upload(file, target, f"{target.path}/{rel}")
