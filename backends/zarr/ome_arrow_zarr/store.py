"""A read-only Zarr store (a local directory or a remote Location) that counts the chunk reads made through it.

Every ``get`` of a key that is not metadata (``zarr.json``, ``.zarray``, ``.zattrs``,
``.zgroup``, ``.zmetadata``, bioformats2raw's ``METADATA.ome.xml``) counts as one chunk read; a sharded array's reads of a
shard's index and of each inner chunk count one each. With ``missing="error"`` a chunk
key that is absent raises :class:`~ome_arrow_core.plugin_api.DamagedFileError` instead of
reading as the array's fill value (which is what Zarr specifies).

A remote store (``s3://``, ``http(s)://``, ``filesystem=``...) reads through zarr's
``FsspecStore``: an fsspec filesystem when the location has one (HTTP, a caller's fsspec
filesystem), otherwise fsspec's wrapper of the location's pyarrow filesystem (S3, GCS, Azure),
so endpoints and credentials resolve exactly as for every other remote read.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ome_arrow_core.plugin_api import ArgumentError, DamagedFileError, Location, StorageError, get_range

if TYPE_CHECKING:
    from zarr.abc.store import ByteRequest
    from zarr.core.buffer import Buffer, BufferPrototype

    from .integrity import ChunkManifest

__all__ = ["MISSING", "Counter", "open_store", "fsspec_store", "ArrayVersion"]

_META: Final[frozenset[str]] = frozenset(
    {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata", "METADATA.ome.xml"}
)
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


def fsspec_store(loc: Location, read_only: bool = True) -> Any:
    """zarr's ``FsspecStore`` over remote location ``loc``."""
    import pyarrow.fs as pafs
    from fsspec.implementations.arrow import ArrowFSWrapper
    from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper
    from zarr.storage import FsspecStore

    class PyarrowFS(ArrowFSWrapper):  # type: ignore[misc]
        """fsspec's wrapper of a pyarrow filesystem, with an id for any of them (fsspec's assumes HDFS), whose
        reads are one GET each (pyarrow would look every object up with a HEAD first)."""

        @property
        def fsid(self) -> str:
            return f"pyarrow_{self.fs.type_name}_{id(self.fs)}"

        def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
            if (start is not None and start < 0) or (end is not None and end < 0):  # suffix ranges: the size is needed
                return bytes(super().cat_file(path, start=start, end=end, **kwargs))
            where = Location(self.fs, path, f"{loc.uri}/{path[len(loc.path) :].lstrip('/')}", False)
            return get_range(where, start, end)

    handler = loc.fs.handler if isinstance(loc.fs, pafs.PyFileSystem) else None
    fs = getattr(handler, "fs", None) or PyarrowFS(loc.fs)
    if not getattr(fs, "async_impl", False):
        fs = AsyncFileSystemWrapper(fs, asynchronous=True)
    elif not fs.asynchronous:  # e.g. the HTTP filesystem: a fresh asynchronous instance of the same class
        fs = type(fs)(**{**fs.storage_options, "asynchronous": True})
    return FsspecStore(fs, path=loc.path, read_only=read_only)


def _refuse_special(root: Path, key: str) -> None:
    """Refuse a member that exists but is no regular file (a FIFO would block zarr's I/O thread forever)."""
    try:
        st = os.stat(root / key)
    except OSError:  # absent (zarr reads None) or unreadable (the store's own error names it)
        return
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file (a FIFO, socket or device)"
        raise StorageError(f"{root} [{key}] is {kind}; expected a regular file (a Zarr chunk or metadata document)")


def open_store(
    root: Path | Location, counter: Counter, missing: str = "fill", manifest: ChunkManifest | None = None
) -> Any:
    """A read-only zarr store of directory (or remote location) ``root`` counting chunk reads into ``counter``
    (and checking the chunks ``manifest`` lists against their checksums)."""
    if missing not in MISSING:
        raise ArgumentError(f"missing={missing!r}: expected one of {', '.join(MISSING)}")
    from zarr.abc.store import Store
    from zarr.storage import LocalStore, WrapperStore

    shown = root.uri if isinstance(root, Location) else str(root)

    class CountingStore(WrapperStore[Store]):
        """Counts chunk ``get`` calls; raises on absent chunks when ``missing="error"``."""

        def _with_store(self, store: Store) -> CountingStore:
            return CountingStore(store)

        async def get(
            self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None
        ) -> Buffer | None:
            if not isinstance(root, Location):
                _refuse_special(root, key)
            buf = await self._store.get(key, prototype, byte_range)
            if not is_meta(key):
                if manifest is not None:
                    manifest.check(key, buf, byte_range is None)
                if buf is None and missing == "error":
                    raise DamagedFileError(
                        f"{shown} [{key}]: the chunk is missing; the store is incomplete. Open it with "
                        "missing='fill' to read missing chunks as the array's fill value, as Zarr allows"
                    )
                counter.add(key, 0 if buf is None else len(buf))
            return buf

        async def get_partial_values(
            self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
        ) -> list[Buffer | None]:
            return [await self.get(k, prototype, r) for k, r in key_ranges]

    if isinstance(root, Location):
        return CountingStore(fsspec_store(root) if not root.local else LocalStore(root.path, read_only=True))
    return CountingStore(LocalStore(root, read_only=True))


class ArrayVersion:
    """The version of a local array's metadata file (``zarr.json``, or ``.zarray``: inode, size, modification
    time), taken when the array is opened. Zarr reads the array's chunks by name under the metadata read then,
    so a store replaced since (or the array's metadata rewritten) would be read under the old dtype and shape:
    :meth:`check` raises StorageError (errno ESTALE) instead. Nothing is checked for a remote store (``directory``
    None) or one without such a file."""

    def __init__(self, directory: Path | None, shown: str) -> None:
        self._dir, self._shown = directory, shown
        self._version = None if directory is None else self._now()

    def _now(self) -> tuple[int, int, int] | None:
        assert self._dir is not None
        for name in ("zarr.json", ".zarray"):
            try:
                st = os.stat(self._dir / name)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                return (st.st_ino, st.st_size, st.st_mtime_ns)
        return None

    def check(self) -> None:
        """Raise StorageError (ESTALE) when the array's metadata file is not the version opened."""
        if self._version is None or self._now() == self._version:
            return
        err = StorageError(
            f"{self._shown}: the array's metadata was rewritten, or the store replaced, after it was opened; its "
            "chunks would be read under the dtype and shape read then, so nothing more is read from it. Open it again"
        )
        err.errno = errno.ESTALE
        raise err
