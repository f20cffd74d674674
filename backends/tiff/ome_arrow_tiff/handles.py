"""Keeping a tifffile file handle open for one read, and noticing files written since they were opened.

tifffile closes the other files of a multi-file OME-TIFF once it has read their IFDs (so a
series of thousands of files holds no thousands of open files). A read of a page in one of
them (``TiffPage.asarray``, rows of raw pages, strips and tiles) reopens its file for the
read through :func:`open_for_read`.

The pages' IFDs (where each strip and tile lies) are read when the file is opened, so a file written
since then is read at places that no longer hold its pixels: :class:`FileVersions` raises instead.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ome_arrow_core.plugin_api import StorageError

__all__ = ["open_for_read", "FileVersions"]

#: What tells one version of a file from another: device, inode, size, modification time.
Version = tuple[int, int, int, int]


def _version(st: os.stat_result) -> Version:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class FileVersions:
    """The version of each local file a TIFF source reads, taken when it is first seen (the file opened: when
    opened; a multi-file OME-TIFF's other files: at the first read of one of their pages).

    :meth:`check`, run after each read, raises StorageError (errno ESTALE) once a file was written since: in
    place (same inode, another size or modification time: the bytes read may be the new file's, at the old
    file's offsets), or, for a file reopened for each read (``held=False``), replaced by another.
    """

    def __init__(self, main: Path | None, st: os.stat_result | None) -> None:
        self._main = None if main is None else str(main)  # None: a remote file, nothing is checked
        self._seen: dict[str, Version] = {} if self._main is None or st is None else {self._main: _version(st)}
        self._lock = threading.Lock()

    def note(self, path: str | os.PathLike[str]) -> None:
        """Remember ``path``'s version now, unless it was seen before."""
        key = os.fspath(path)
        if self._main is None:
            return
        with self._lock:
            if key in self._seen:
                return
        try:
            st = os.stat(key)
        except OSError:
            return  # its read raises
        with self._lock:
            self._seen.setdefault(key, _version(st))

    def check(self, pages: Iterable[Any] = ()) -> None:
        """Raise StorageError (ESTALE) when the file opened, or one holding tifffile pages ``pages`` (None: not
        read), changed since it was seen."""
        if self._main is None:
            return
        paths = (os.fspath(pg.parent.filehandle.path) for pg in pages if pg is not None)
        for key in dict.fromkeys([self._main, *paths]):
            with self._lock:
                then = self._seen.get(key)
            if then is None:
                continue
            try:
                now = _version(os.stat(key))
            except OSError:
                now = None
            held = key == self._main  # the file opened stays open: one replaced by another is read as opened
            if now == then or (held and (now is None or now[:2] != then[:2])):
                continue
            how = (
                "removed"
                if now is None
                else "replaced by another file"
                if now[:2] != then[:2]
                else (f"{then[2]} bytes then, {now[2]} now" if now[2] != then[2] else "modified since")
            )
            err = StorageError(
                f"{key} was written after it was opened ({how}): the places of its strips and tiles were read "
                "when it was opened and may no longer hold its pixels, so nothing more is read from it. Open it "
                "again once that write is done"
            )
            err.errno = errno.ESTALE
            raise err


@contextmanager
def open_for_read(fh: Any) -> Iterator[None]:
    """Run a read of tifffile ``FileHandle`` ``fh``: as it is when open; when closed, reopened under its lock
    for the read and closed again after (other threads wait for the lock, so none finds it closed mid-read)."""
    with fh.lock:
        if fh.closed:
            fh.open()
            try:
                yield
            finally:
                fh.close()
            return
    yield
