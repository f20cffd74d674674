"""Where foreign code meets ours: its exceptions become ours, naming the file and member.

pyarrow, tifffile, vortex and the OS raise their own exceptions with messages that name no
file. Every call into them that reads or writes a user's file runs inside :func:`reading` or
:func:`writing`, which re-raise what escapes as :class:`~.errors.DamagedFileError` (the bytes
are wrong) or :class:`~.errors.StorageError` (the OS refused), with the file, the member and
what was being done in the message. Our own errors pass through unchanged.
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
from collections.abc import Iterator
from pathlib import Path

from .errors import DamagedFileError, DTypeError, OMEArrowError, SchemaError, StorageError
from .remote_errors import storage_failure

__all__ = [
    "reading",
    "writing",
    "blaming",
    "where",
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
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


@contextlib.contextmanager
def reading(path: str | os.PathLike[str], member: str | None = None, what: str = "reading") -> Iterator[None]:
    """Re-raise foreign exceptions from reading ``path`` (``member`` inside it) as ours."""
    try:
        yield
    except OMEArrowError:
        raise
    except Exception as exc:  # a store's refusal or an unreachable server is not damage (see remote_errors)
        ours = storage_failure(exc, where(path, member), what) or _ours(exc, path, member, what)
        if ours is None:
            raise  # not foreign (pyarrow.ArrowException itself derives from Exception alone)
        raise ours from exc


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


@contextlib.contextmanager
def blaming(path: str | os.PathLike[str], member: str | None = None) -> Iterator[None]:
    """Name ``path`` in our own errors raised while decoding what was read from it.

    A :class:`~.errors.SchemaError` there means the file's contents are wrong: it becomes a
    :class:`~.errors.DamagedFileError`; a :class:`~.errors.DTypeError` keeps its type. Both get
    the file and member in front of their message, unless the message names the file already.
    """
    try:
        yield
    except (SchemaError, DTypeError) as exc:
        text = str(exc)
        if os.fspath(path) in text:
            raise
        kind: type[OMEArrowError] = DamagedFileError if type(exc) is SchemaError else type(exc)
        raise kind(f"{where(path, member)}: {text}") from exc


@contextlib.contextmanager
def writing(path: str | os.PathLike[str], member: str | None = None, what: str = "writing") -> Iterator[None]:
    """Re-raise OS errors from writing ``path`` as :class:`StorageError` naming it."""
    try:
        yield
    except OMEArrowError:
        raise
    except Exception as exc:
        failure = storage_failure(exc, where(path, member), what)
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
    """True when ``name`` is a plain relative path that stays inside directory ``root``."""
    if not name or os.path.isabs(name) or "\\" in name:
        return False
    parts = Path(name).parts
    if any(p in ("..", "") for p in parts):
        return False
    resolved = (root / name).resolve()
    return resolved == root.resolve() or root.resolve() in resolved.parents
