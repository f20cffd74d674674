"""File-system steps that atomic writes are built from: renameat2, advisory locks, deferred signals.

:func:`exchange` swaps two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``);
:func:`rename_noreplace` moves a path in only where nothing is; both return False where the
system or file system cannot (the caller then falls back to plain renames).
:func:`deferred_signals` holds SIGINT and SIGTERM back across a critical section, so a
KeyboardInterrupt arrives after it, not in the middle. :func:`lock` takes an ``flock`` on a
directory; :func:`pid_alive` tells whether a process of this host still runs.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["exchange", "rename_noreplace", "deferred_signals", "lock", "try_lock", "pid_alive", "remove_tree"]

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
#: errno values that say "this system or file system cannot do that rename": fall back.
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP}
_renameat2: Callable[..., int] | bool | None = False  # False: not looked up yet


def _libc_renameat2() -> Callable[..., int] | None:
    global _renameat2
    if _renameat2 is False:
        _renameat2 = None
        if sys.platform.startswith("linux"):
            import ctypes

            try:
                func = ctypes.CDLL(None, use_errno=True).renameat2
            except (AttributeError, OSError):  # glibc before 2.28, or musl without it
                pass
            else:
                func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
                func.restype = ctypes.c_int
                _renameat2 = func
    return _renameat2 if callable(_renameat2) else None


def renameat2(src: str | os.PathLike[str], dst: str | os.PathLike[str], flags: int) -> bool:
    """``renameat2(src, dst, flags)``; False where unsupported, OSError on other failures."""
    func = _libc_renameat2()
    if func is None:
        return False
    import ctypes

    if func(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), os.fspath(src), None, os.fspath(dst))


def exchange(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Swap paths ``a`` and ``b`` in one step; False where the system cannot (nothing changed)."""
    return renameat2(a, b, _RENAME_EXCHANGE)


def rename_noreplace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> bool:
    """Rename ``src`` to ``dst`` only if ``dst`` does not exist (else FileExistsError); False if unsupported."""
    return renameat2(src, dst, _RENAME_NOREPLACE)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back until the block ends, then act on them as their handlers would.

    Python runs signal handlers in the main thread only, between bytecodes, whichever thread
    the signal reached (pyarrow's threads included): a handler that only records the signal
    holds it back, where blocking it in one thread would not. From another thread nothing is
    held (its code is never interrupted by them; SIGTERM's default action is the system's).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[tuple[int, Any]] = []
    previous: dict[int, Any] = {}

    def hold(signum: int, frame: Any) -> None:
        got.append((signum, frame))

    try:
        for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)):
            if s is not None:
                previous[s] = signal.signal(s, hold)
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for signum, frame in got:
            handler = previous.get(signum)
            if callable(handler):
                handler(signum, frame)  # SIGINT's default raises KeyboardInterrupt here, after the block
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


def _flock(fd: int, blocking: bool) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def lock(path: Path) -> Iterator[int]:
    """An exclusive ``flock`` on directory ``path`` (the one that is there once it is held); yields its fd.

    If ``path`` was replaced while waiting (an overwrite swapped a new directory in), the
    lock is taken again on the new one, so the holder never works in a copy being removed.
    """
    while True:
        fd = os.open(path, os.O_RDONLY)
        try:
            _flock(fd, True)
            held = os.fstat(fd)
            try:
                now = os.stat(path)
            except FileNotFoundError:
                now = None
            if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        yield fd
    finally:
        os.close(fd)


def try_lock(path: Path) -> int | None:
    """The fd of ``path`` with an exclusive ``flock`` taken now, or None if someone holds it (or it is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        if _flock(fd, False):
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def pid_alive(pid: int) -> bool:
    """True when a process ``pid`` runs on this host (or may: it exists but is not ours)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def remove_tree(path: Path) -> None:
    """Remove ``path`` (a directory tree or a file) if it exists; a failure leaves litter, not an error."""
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.unlink(path)
