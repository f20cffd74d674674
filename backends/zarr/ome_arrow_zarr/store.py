"""A read-only local Zarr store that counts the chunk reads made through it.

Every ``get`` of a key that is not metadata (``zarr.json``, ``.zarray``, ``.zattrs``,
``.zgroup``, ``.zmetadata``) counts as one chunk read; a sharded array's reads of a
shard's index and of each inner chunk count one each. With ``missing="error"`` a chunk
key that is absent raises :class:`~ome_arrow_core.plugin_api.DamagedFileError` instead of
reading as the array's fill value (which is what Zarr specifies).
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ome_arrow_core.plugin_api import ArgumentError, DamagedFileError, StorageError

if TYPE_CHECKING:
    from zarr.abc.store import ByteRequest

    from .integrity import ChunkManifest
    from zarr.core.buffer import Buffer, BufferPrototype

__all__ = ["MISSING", "Counter", "open_store"]

_META: Final[frozenset[str]] = frozenset({"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"})
#: What a missing chunk reads as: the fill value (Zarr's rule) or an error.
MISSING: Final[tuple[str, ...]] = ("fill", "error")


class Counter:
    """Chunk reads and bytes read so far (thread-safe), and the keys read (for tests and errors)."""

    def __init__(self) -> None:
        self.chunks = 0
        self.bytes = 0
        self.keys: list[str] = []
        self._lock = threading.Lock()

    def add(self, key: str, nbytes: int) -> None:
        with self._lock:
            self.chunks += 1
            self.bytes += nbytes
            if len(self.keys) < 100_000:
                self.keys.append(key)


def is_meta(key: str) -> bool:
    """True for a Zarr metadata document's key."""
    return key.rsplit("/", 1)[-1] in _META


def _refuse_special(root: Path, key: str) -> None:
    """Refuse a member that exists but is no regular file (a FIFO would block zarr's I/O thread forever)."""
    try:
        st = os.stat(root / key)
    except OSError:  # absent (zarr reads None) or unreadable (the store's own error names it)
        return
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file (a FIFO, socket or device)"
        raise StorageError(f"{root} [{key}] is {kind}; expected a regular file (a Zarr chunk or metadata document)")


def open_store(root: Path, counter: Counter, missing: str = "fill", manifest: ChunkManifest | None = None) -> Any:
    """A read-only zarr store of directory ``root`` counting chunk reads into ``counter`` (and checking the chunks
    ``manifest`` lists against their checksums)."""
    if missing not in MISSING:
        raise ArgumentError(f"missing={missing!r}: expected one of {', '.join(MISSING)}")
    from zarr.storage import LocalStore, WrapperStore

    class CountingStore(WrapperStore[LocalStore]):
        """Counts chunk ``get`` calls; raises on absent chunks when ``missing="error"``."""

        def _with_store(self, store: LocalStore) -> CountingStore:
            return CountingStore(store)

        async def get(self, key: str, prototype: BufferPrototype,
                      byte_range: ByteRequest | None = None) -> Buffer | None:
            _refuse_special(root, key)
            buf = await self._store.get(key, prototype, byte_range)
            if not is_meta(key):
                if manifest is not None:
                    manifest.check(key, buf, byte_range is None)
                if buf is None and missing == "error":
                    raise DamagedFileError(
                        f"{root} [{key}]: the chunk is missing; the store is incomplete. Open it with "
                        "missing='fill' to read missing chunks as the array's fill value, as Zarr allows"
                    )
                counter.add(key, 0 if buf is None else len(buf))
            return buf

        async def get_partial_values(self, prototype: BufferPrototype,
                                     key_ranges: Iterable[tuple[str, ByteRequest | None]]) -> list[Buffer | None]:
            return [await self.get(k, prototype, r) for k, r in key_ranges]

    return CountingStore(LocalStore(root, read_only=True))
