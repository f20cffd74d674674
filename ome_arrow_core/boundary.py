"""Where foreign code meets ours: its exceptions become ours, naming the file and member.

pyarrow, tifffile, vortex and the OS raise their own exceptions with messages that name no
file. Every call into them that reads or writes a user's file runs inside :func:`reading` or
:func:`writing`, which re-raise what escapes as :class:`~.errors.DamagedFileError` (the bytes
are wrong) or :class:`~.errors.StorageError` (the OS refused), with the file, the member and
what was being done in the message. Our own errors pass through unchanged.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import struct
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from .errors import DamagedFileError, DTypeError, OMEArrowError, SchemaError, StorageError, shown

__all__ = [
    "reading",
    "writing",
    "blaming",
    "where",
    "path_mode",
    "require_regular_file",
    "require_member",
    "open_regular",
    "is_within",
]

#: Exceptions that decoding damaged bytes raises in the libraries we call (pyarrow's derive
#: from these builtins; tifffile and vortex raise these or RuntimeError).
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    EOFError,
    struct.error,
    UnicodeDecodeError,
    RuntimeError,
    AssertionError,
    OverflowError,
    ZeroDivisionError,
    MemoryError,
)


def where(path: str | os.PathLike[str], member: str | None = None) -> str:
    """``path`` or ``path [member]``, as messages name a place."""
    return f"{os.fspath(path)} [{member}]" if member else os.fspath(path)


def _foreign_message(exc: BaseException) -> str:
    """``Type: first line`` of a foreign exception, its control characters escaped (pyarrow's thrift errors quote
    the byte they choked on: ``don't know what type: \\x0f``, which a terminal would act on)."""
    text = str(exc).strip().splitlines()
    first = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text[0]) if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def reading(path: str | os.PathLike[str], member: str | None = None, what: str = "reading") -> _Reading:
    """Re-raise foreign exceptions from reading ``path`` (``member`` inside it) as ours (a context manager)."""
    return _Reading(path, member, what)


class _Reading:
    """:func:`reading`'s context manager: a class, not a generator (every scan and read enters a few)."""

    __slots__ = ("member", "path", "what")

    def __init__(self, path: str | os.PathLike[str], member: str | None, what: str) -> None:
        self.path, self.member, self.what = path, member, what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if not isinstance(exc, Exception) or isinstance(exc, OMEArrowError):
            return  # none, ours, or not an Exception (KeyboardInterrupt...): it goes on as it is
        path, member, what = self.path, self.member, self.what
        ours = _storage_failure(exc, where(path, member), what) or _ours(exc, path, member, what)
        if ours is None:
            return  # not foreign (pyarrow.ArrowException itself derives from Exception alone)
        raise ours from exc


def _storage_failure(exc: Exception, place: str, what: str) -> OMEArrowError | None:
    """A store's refusal or an unreachable server (not damage) as one of ours, else None. Its classifier loads with
    the first failure; should that import fail (interpreter shutdown, no memory), ``exc`` is judged without it."""
    try:
        from .remote_errors import storage_failure
    except Exception:
        return None
    return storage_failure(exc, place, what)


def _ours(exc: Exception, path: str | os.PathLike[str], member: str | None, what: str) -> OMEArrowError | None:
    """``exc`` as one of ours (damaged bytes or a refused OS call), or None when it is not a library's."""
    if isinstance(exc, MemoryError):
        return DamagedFileError(
            f"{where(path, member)}: {what} needed more memory than is free; the file claims sizes it "
            "cannot hold (damaged or lying metadata)"
        )
    if isinstance(exc, OSError):
        if exc.errno is None:  # pyarrow reports undecodable bytes as OSError without an errno
            return _damaged(exc, path, member, what)
        return _storage_error(exc, path, member, what)
    if isinstance(exc, _DECODE_ERRORS) or type(exc).__module__.startswith("pyarrow"):
        return _damaged(exc, path, member, what)
    return None


def _damaged(exc: BaseException, path: str | os.PathLike[str], member: str | None, what: str) -> DamagedFileError:
    return DamagedFileError(
        f"{where(path, member)}: {what} failed ({_foreign_message(exc)}); the file is damaged or not what its name says"
    )


def blaming(path: str | os.PathLike[str], member: str | None = None) -> _Blaming:
    """Name ``path`` in our own errors raised while decoding what was read from it (a context manager).

    A :class:`~.errors.SchemaError` there means the file's contents are wrong: it becomes a
    :class:`~.errors.DamagedFileError`; a :class:`~.errors.DTypeError` keeps its type. Both get
    the file and member in front of their message, unless the message names the file already.
    """
    return _Blaming(path, member)


class _Blaming:
    """:func:`blaming`'s context manager: a class, not a generator (every scan and read enters one)."""

    __slots__ = ("member", "path")

    def __init__(self, path: str | os.PathLike[str], member: str | None) -> None:
        self.path, self.member = path, member

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if not isinstance(exc, (SchemaError, DTypeError)):
            return
        text = str(exc)
        if os.fspath(self.path) in text or shown(os.fspath(self.path)) in text:  # (a mirror's: as its URI)
            return
        new: type[OMEArrowError] = DamagedFileError if type(exc) is SchemaError else type(exc)
        raise new(f"{where(self.path, self.member)}: {text}") from exc


@contextlib.contextmanager
def writing(path: str | os.PathLike[str], member: str | None = None, what: str = "writing") -> Iterator[None]:
    """Re-raise OS errors from writing ``path`` as :class:`StorageError` naming it."""
    try:
        yield
    except OMEArrowError:
        raise
    except Exception as exc:
        failure = _storage_failure(exc, where(path, member), what)
        if failure is not None:
            raise failure from exc
        if isinstance(exc, OSError):
            raise _storage_error(exc, path, member, what) from exc
        raise


def _storage_error(exc: OSError, path: str | os.PathLike[str], member: str | None, what: str) -> StorageError:
    reason = exc.strerror or _foreign_message(exc)
    err = StorageError(f"{where(path, member)}: {what} failed: {reason}")
    err.errno = exc.errno
    return err


def path_mode(path: str | os.PathLike[str]) -> int | None:
    """``st_mode`` of ``path`` (links followed), None where :meth:`pathlib.Path.exists` answers False on Python
    3.11-3.12, :class:`~.errors.StorageError` where it raises (a name too long, a folder without permission): one
    ``stat`` answers both ``exists`` and ``is_dir``, without a ``Path``."""
    try:
        return os.stat(path).st_mode
    except OSError as exc:
        if exc.errno in _MISSING or getattr(exc, "winerror", None) in _MISSING_WINDOWS:
            return None
        raise _storage_error(exc, path, None, "looking the path up") from exc
    except ValueError:  # an embedded NUL
        return None


#: The errnos for which ``Path.exists`` and ``Path.is_dir`` answer False instead of raising (pathlib's own list).
_MISSING = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP})
#: And its Windows errors: not ready, invalid name, cannot resolve the file name.
_MISSING_WINDOWS = frozenset({21, 123, 1921})


def require_regular_file(path: str | os.PathLike[str], member: str | None = None) -> os.stat_result:
    """``stat`` of ``path``, refusing anything but a regular file (a FIFO would block a read forever)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _storage_error(exc, path, member, "opening") from exc
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file (a FIFO, socket or device)"
        raise StorageError(f"{where(path, member)} is {kind}; expected a regular file. Point at the file itself")
    return st


def require_member(root: str | os.PathLike[str], name: str) -> Path:
    """``root / name``, refusing it unless it is a regular file (messages name ``root [name]``)."""
    file = Path(root) / name
    try:
        st = os.stat(file)
    except OSError as exc:
        raise _storage_error(exc, root, name, "opening") from exc
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file (a FIFO, socket or device)"
        raise StorageError(
            f"{where(root, name)} is {kind}; expected a regular file. Replace it with the dataset's own file"
        )
    return file


def open_regular(root: str | os.PathLike[str], name: str) -> int:
    """A read-only descriptor of ``root / name``, refusing anything but a regular file: opened without blocking (the
    open of a FIFO would wait for a writer forever), then its ``fstat`` decides. OSError (a missing file) propagates."""
    fd = os.open(Path(root) / name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise StorageError(
            f"{where(root, name)} is not a regular file (a FIFO, socket, device or directory); expected a regular "
            "file. Replace it with the dataset's own file"
        )
    return fd


def is_within(root: Path, name: str) -> bool:
    """True when ``name`` is a plain relative path that stays inside directory ``root``.

    A single plain component that is not a symbolic link (every member a dataset's open checks) stays inside
    ``root`` whatever ``root`` resolves to: one ``lstat``, not three path resolutions (each an ``lstat`` per
    component of the path, in Python)."""
    if not name or os.path.isabs(name) or "\\" in name:
        return False
    parts = Path(name).parts
    if any(p in ("..", "") for p in parts):
        return False
    if parts == (name,) and not os.path.islink(os.path.join(root, name)):
        return True
    resolved = (root / name).resolve()
    inside = root.resolve()
    return resolved == inside or inside in resolved.parents
