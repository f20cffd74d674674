"""Atomic writes: write beside the target, then swap it in; at every instant the target is old or new.

A write goes to a temporary directory next to the target (``.NAME.ome-arrow-tmp.PID.RANDOM``,
locked with ``flock`` while its writer lives). A file is then moved over the target with one
``os.replace``. A directory replaces an existing one only if that is one of our datasets
holding nothing foreign (:func:`~.ownership.check_replaceable`), in one step where the system
can (Linux ``renameat2(RENAME_EXCHANGE)``, after which the old copy sits at the temporary name
and is removed), else by moving the old one aside (``.NAME.ome-arrow-old.PID.RANDOM``),
moving the new one in and removing the old; if a crash leaves the target missing there, the
next write or cleanup moves the old one back. SIGINT and SIGTERM are held back across the
swap, so a KeyboardInterrupt arrives before or after it, never inside. Stale temporaries of a
target are removed by the next write to it (:mod:`.cleanup`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..boundary import writing
from ..errors import OMEArrowError, StorageError, UnsafeOverwriteError
from . import durable, fsops
from .cleanup import recover, remove_stale
from .ownership import OLD, check_replaceable, temp_name

__all__ = ["atomic_path", "replace_all", "make_temp", "storage_errors"]

#: Swap directories in one step where the system can; tests set False to exercise the fallback.
EXCHANGE = True
#: OS errors inside a write that are about the output's storage (the rest propagate as they are).
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}
_STORAGE_WORDS = ("No space left on device", "Disk quota exceeded", "Read-only file system", "File too large")
#: Free bytes under which a failed write is taken to have filled the disk.
_FULL = 256 << 10


def make_temp(parent: Path, name: str, kind: str = "tmp") -> tuple[Path, int]:
    """A new temporary directory for a write to ``parent / name`` (mode from the umask), locked by this
    process; returns it and the fd holding the lock (close it to release)."""
    while True:
        tmp = parent / temp_name(name, kind)
        try:
            os.mkdir(tmp, 0o777)
        except FileExistsError:  # pragma: no cover - 32 random bits clashed
            continue
        break
    fd = fsops.try_lock(tmp)
    if fd is None:  # pragma: no cover - nobody else knows the name yet
        raise StorageError(f"{tmp}: could not lock the temporary directory")
    return tmp, fd


def _storage_reason(exc: BaseException, parent: Path) -> str | None:
    """Why a write failed, where the output's storage is the cause (full or read-only), else None.

    Writers report a full disk in their own ways (vortex: RuntimeError; tifffile: a short
    write), so the file system is asked too.
    """
    if isinstance(exc, OSError) and exc.errno in _STORAGE_ERRNOS:
        return exc.strerror or os.strerror(exc.errno or 0)
    for word in _STORAGE_WORDS:
        if word in str(exc):
            return word
    if not isinstance(exc, (OSError, RuntimeError)):  # a bug elsewhere is not a full disk
        return None
    try:
        fs = os.statvfs(parent)
    except (OSError, AttributeError):
        return None
    if fs.f_flag & getattr(os, "ST_RDONLY", 1):
        return "Read-only file system"
    if fs.f_bavail * fs.f_frsize < _FULL:
        return "No space left on device"
    return None


@contextlib.contextmanager
def storage_errors(target: Path) -> Iterator[None]:
    """Re-raise an OSError of a full or read-only disk (raised anywhere in the block) as StorageError naming
    ``target``; other errors pass unchanged."""
    try:
        yield
    except OSError as exc:
        if isinstance(exc, OMEArrowError) or exc.errno not in _STORAGE_ERRNOS:
            raise
        err = StorageError(f"{target}: writing failed: {exc.strerror or exc}; nothing was changed")
        err.errno = exc.errno
        raise err from exc


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], *, directory: bool = False, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success it replaces ``target``.

    ``directory=True`` yields a fresh directory that replaces ``target`` (only if ``target``
    is absent or one of our datasets: else :class:`~.errors.UnsafeOverwriteError`, before
    anything is written); otherwise a file path, whose file replaces ``target`` (never a
    directory). On any exception the temporary is removed and ``target`` is left untouched;
    a full or read-only disk raises :class:`~.errors.StorageError` naming ``target``.
    ``replace=False`` refuses to replace anything (a directory that appeared meanwhile included).
    """
    target = Path(target)
    with writing(target, what="creating the output's folder"):
        target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    remove_stale(target)
    if not replace and os.path.lexists(target):
        raise UnsafeOverwriteError(
            f"{target} exists and this writer never replaces an output; nothing was changed. Remove it yourself if "
            "you mean to replace it, or choose another output path"
        )
    check_replaceable(target, directory=directory)
    with writing(target, what="creating a temporary beside the output"):
        tmp, fd = make_temp(target.parent, target.name)
    try:
        try:
            yield tmp if directory else tmp / target.name
        except OMEArrowError:
            raise
        except Exception as exc:
            reason = _storage_reason(exc, target.parent)
            if reason is None:
                raise
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            err = StorageError(
                f"{target}: writing failed: {reason} ({type(exc).__name__}: {first}); nothing was changed"
            )
            err.errno = getattr(exc, "errno", None)
            raise err from exc
        with writing(target, what="moving the new copy into place"):
            sync = durable.enabled()  # fsync, opted in: the new bytes, the rename, then the old copy's removal
            if sync:
                durable.sync_tree(tmp) if directory else durable.sync_path(tmp / target.name)
            if directory:
                _replace_dir(tmp, target, replace, sync)
            else:
                with fsops.deferred_signals():
                    os.replace(tmp / target.name, target)
                if sync:
                    durable.sync_path(target.parent)
    finally:
        os.close(fd)
        fsops.remove_tree(tmp)


def _replace_dir(tmp: Path, target: Path, replace: bool, sync: bool = False) -> None:
    """Put directory ``tmp`` at ``target``; an old ``target`` ends at ``tmp`` (or is removed). ``sync``: fsync
    the parent once the new copy is in place, before anything is removed (see :mod:`.durable`)."""
    fresh = not replace or not os.path.lexists(target)
    # replacing: appends and compactions of the old copy finish first
    with contextlib.nullcontext() if fresh else fsops.lock(target):
        if not fresh:
            check_replaceable(target, directory=True)  # again: files may have been added meanwhile
        old: Path | None = None  # the old copy moved aside, removed once something is back in place
        try:
            with fsops.deferred_signals():
                if fresh:
                    _move_in(tmp, target)
                elif not (EXCHANGE and fsops.exchange(tmp, target)):  # exchanged: the old copy is at tmp now
                    old = target.parent / temp_name(target.name, OLD)
                    os.rename(target, old)
                    try:
                        os.rename(tmp, target)
                    except BaseException as exc:
                        if not os.path.lexists(tmp):  # it went in (interrupted just after): the old one goes
                            raise
                        kept, old = old, None  # the new copy is not in place: the old one is never removed
                        if not os.path.lexists(target):  # it goes back
                            os.rename(kept, target)
                            raise
                        kept = _keep_aside(kept, target)
                        raise UnsafeOverwriteError(
                            f"refusing to replace {target}: another writer put something there while the new "
                            f"copy was being swapped in; nothing of it was removed, and the previous copy is kept "
                            f"at {kept}. Move the one you want back to {target.name}."
                        ) from exc
                if sync:  # committed: the new copy's name is on disk before anything is removed
                    durable.sync_path(target.parent)
        finally:
            if old is not None and os.path.lexists(target):
                fsops.remove_tree(old)


def _keep_aside(old: Path, target: Path) -> Path:
    """Rename ``old`` (the previous copy of ``target``, at one of our temporary names, which cleanups remove)
    to the first free name ``<target>.previous[-N]``, which nothing of ours removes; ``old`` where none works."""
    for n in range(1, 100):
        kept = target.parent / (f"{target.name}.previous" + (f"-{n}" if n > 1 else ""))
        try:
            if _rename_if_absent(old, kept):
                return kept
        except OSError:
            return old
    return old


def _move_in(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` to ``target``, which must stay absent until then (else UnsafeOverwriteError)."""
    if not _rename_if_absent(tmp, target):
        raise UnsafeOverwriteError(
            f"refusing to replace {target}: it appeared while the new copy was written "
            "(another writer?); nothing was changed. Write again to replace it."
        )


def _rename_if_absent(src: Path, dst: Path) -> bool:
    """Rename ``src`` to ``dst`` unless ``dst`` exists (False then): one step where ``renameat2`` is supported,
    else a check and a rename."""
    try:
        if fsops.rename_noreplace(src, dst):
            return True
    except FileExistsError:
        return False
    if os.path.lexists(dst):
        return False
    os.rename(src, dst)
    return True


def _move(src: Path, dst: Path) -> None:
    os.replace(src, dst)


def replace_all(moves: Sequence[tuple[Path, Path]], backups: Path) -> None:
    """Move each ``(new, target)`` pair's file over its target, in order; all or none.

    Each target is first kept in directory ``backups`` (a hard link, or a copy where links are
    not supported); if a move fails, the targets already replaced are put back. The caller
    removes ``backups``. Each move is one rename, so a reader sees every file whole. SIGINT and
    SIGTERM are held back until every move is done (or undone).
    """
    done: list[tuple[Path, Path | None]] = []
    sync = durable.enabled()
    if sync:  # opted in (see :mod:`.durable`): the new bytes on disk before any name reaches them
        for new, _ in moves:
            durable.sync_tree(new) if new.is_dir() else durable.sync_path(new)
    with fsops.deferred_signals():
        try:
            for k, (new, target) in enumerate(moves):
                kept: Path | None = None
                if target.exists():
                    kept = backups / f"{k}-{target.name}"
                    try:
                        os.link(target, kept)
                    except OSError:
                        shutil.copy2(target, kept)
                done.append((target, kept))  # before the move: an interrupt may come just after it
                _move(new, target)
            for parent in dict.fromkeys(t.parent for _, t in moves) if sync else ():
                durable.sync_path(parent)
        except BaseException:
            for target, kept in reversed(done):
                if kept is None:
                    target.unlink(missing_ok=True)
                else:
                    os.replace(kept, target)
            raise
