"""Writing one file to remote storage so that readers see the old object or the new one, never a part.

The file is written locally first (by the format's own atomic writer), uploaded under a
temporary key next to the target, then moved onto the target by the store (S3: one
server-side copy). An upload cut short by an error or Ctrl-C is left under its temporary key
(``<name>.tmp-<random>``), never under the target's; the next successful write does not need it
and a lifecycle rule or ``ome-arrow-core cleanup`` may remove it.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .boundary import writing
from .errors import ArgumentError
from .location import Location

__all__ = ["remote_file"]

_BLOCK = 8 << 20


@contextmanager
def remote_file(target: Location, suffix: str = "") -> Iterator[Path]:
    """A local path to write; on success its bytes replace ``target`` in one step."""
    if target.uri.startswith(("http://", "https://")):
        raise ArgumentError(f"{target.uri}: HTTP(S) locations are read-only; write to a local path or an object store")
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
