"""Chunk files of a remote dataset, read by byte range.

A remote dataset directory is opened through a local mirror (:mod:`.mirror`): its manifest and
tables are copied, and each chunk file is stood in for by an empty placeholder of the object's size
(sparse: it takes no disk), so every check of names and sizes runs as on a local dataset. The bytes
of a placeholder are never read: :func:`remote_chunk` says which object stands behind it, and the
chunk readers (page ranges, the Parquet footer path) fetch from that object instead, one ranged GET
per run of neighbouring pages. A placeholder read by anything else (a tool, an older version)
reads as zeros, which no Parquet reader or checksum accepts.
"""

from __future__ import annotations

import os
import pickle
import stat
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ..boundary import reading
from ..errors import ArgumentError, DamagedFileError

if TYPE_CHECKING:
    import pyarrow as pa

    from ..location import Location

__all__ = [
    "RemoteChunk",
    "MirrorSource",
    "SIDECAR",
    "register_mirror",
    "write_sidecar",
    "mirror_source",
    "remote_chunk",
    "refuse_placeholder",
]

#: The file in a mirror directory naming its remote dataset (its URI and a pickled filesystem), so a worker
#: process that receives the mirror's path (a DataLoader worker, started by spawn) finds the objects again.
SIDECAR = ".ome_arrow_remote"


class MirrorSource:
    """The remote dataset behind a mirror directory: its location and its chunk objects' sizes."""

    def __init__(self, location: Location, sizes: dict[str, int]) -> None:
        self.location = location
        self.sizes = sizes
        self._files: dict[str, RemoteChunk] = {}
        self._lock = threading.Lock()

    def chunk(self, name: str) -> RemoteChunk | None:
        """The chunk object ``name`` (None: not a placeholder of this mirror)."""
        size = self.sizes.get(name)
        if size is None:
            return None
        with self._lock:
            hit = self._files.get(name)
            if hit is None:
                hit = self._files[name] = RemoteChunk(self.location.join(name), size)
            return hit


_mirrors: dict[str, MirrorSource] = {}
_mirrors_lock = threading.Lock()


def register_mirror(directory: Path, source: MirrorSource) -> None:
    """Make ``directory``'s placeholders read from ``source``'s objects (in this process, and, by its sidecar,
    in any process that opens the directory)."""
    with _mirrors_lock:
        _mirrors[str(directory)] = source


def write_sidecar(directory: Path, source: MirrorSource) -> None:
    """Record ``source`` in ``directory`` for other processes (readable by this user only)."""
    try:
        data = pickle.dumps((source.location, source.sizes))
    except (pickle.PicklingError, TypeError, AttributeError):  # a filesystem that does not pickle: found again by URI
        data = pickle.dumps((source.location.uri, source.sizes))
    fd = os.open(directory / SIDECAR, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def mirror_source(directory: Path) -> MirrorSource | None:
    key = str(directory)
    hit = _mirrors.get(key)
    if hit is not None or not _mirrors_possible(directory):
        return hit
    with reading(directory, SIDECAR, "reading the remote dataset's mirror"):
        location, sizes = pickle.loads((directory / SIDECAR).read_bytes())  # written by this user, mode 0600
    if isinstance(location, str):
        from ..location import resolve

        location = resolve(location)
    source = MirrorSource(location, sizes)
    register_mirror(directory, source)
    return source


def _mirrors_possible(directory: Path) -> bool:
    return os.path.exists(directory / SIDECAR) and _ours(directory)


def _ours(directory: Path) -> bool:
    """True when ``directory`` is a mirror this user's processes made: in an ``ome-arrow-remote-*`` directory of
    the system's temporary directory, that directory and the sidecar owned by this user and closed to others (as
    ``tempfile.mkdtemp`` and :func:`write_sidecar` make them). A sidecar anywhere else (in a dataset someone handed
    over: unpickling it would run any code it names) is never read: the directory is a local dataset."""
    import tempfile  # only where a sidecar is found: a local read never loads it

    root = directory.parent
    try:
        if not root.name.startswith("ome-arrow-remote-") or not os.path.samefile(root.parent, tempfile.gettempdir()):
            return False
        for path in (root, directory / SIDECAR):
            st = os.lstat(path)
            if st.st_uid != os.geteuid() or st.st_mode & 0o077 or stat.S_ISLNK(st.st_mode):
                return False
    except OSError:
        return False
    return True


def remote_chunk(file: Path) -> RemoteChunk | None:
    """The remote object behind ``file`` when it is a chunk placeholder of a remote dataset's mirror, else None."""
    source = mirror_source(file.parent)
    return None if source is None else source.chunk(file.name)


def refuse_placeholder(file: Path, what: str) -> None:
    """ArgumentError when ``file`` stands for a remote object (``what`` reads local files only)."""
    chunk = remote_chunk(file)
    if chunk is not None:
        raise ArgumentError(
            f"{chunk.location.uri}: {what} reads local datasets only; copy the dataset to a local disk first"
        )


def _status(exc: BaseException) -> int | None:
    """The HTTP status an exception (or its cause) carries, if any."""
    at: BaseException | None = exc
    for _ in range(4):
        if at is None:
            return None
        status = getattr(at, "status", None)
        if isinstance(status, int):
            return status
        at = at.__cause__ or at.__context__
    return None


class RemoteChunk:
    """One chunk object of a remote dataset, of known size: ranged reads, and a file for Parquet's footer path."""

    def __init__(self, location: Location, size: int) -> None:
        self.location = location
        self.size = size
        self._native: pa.NativeFile | None = None
        self._lock = threading.Lock()
        #: Ranged reads made (for tests and ``info()``).
        self.requests = 0

    def read_at(self, start: int, length: int) -> bytes:
        """Bytes ``start..start + length`` (fewer when the object is shorter), in one ranged GET."""
        if length <= 0:
            return b""
        from .ranges import get_range  # a remote dataset's: a local read asks remote_chunk only

        self.requests += 1
        with reading(self.location.uri, None, "reading chunk pages"):
            try:
                return get_range(self.location, start, min(start + length, self.size))
            except Exception as exc:
                if _status(exc) != 416:
                    raise
                return b""  # the range lies past the object's end (replaced by a shorter one): a short read

    def native(self) -> pa.NativeFile:
        """The object as a random-access file (opened once; pyarrow's stores look its size up on open)."""
        with self._lock:
            if self._native is None:
                with reading(self.location.uri, None, "opening the chunks file"):
                    self._native = self._open()
            return self._native

    def _open(self) -> pa.NativeFile:
        from .ranges import open_known

        got = open_known(self.location, self.size)
        if got.size() != self.size:
            raise DamagedFileError(
                f"{self.location.uri} holds {got.size()} bytes, but it held {self.size} when the dataset was "
                "opened; it was replaced while open: open the dataset again"
            )
        return got
