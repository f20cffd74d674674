"""The whole-file seal of the Vortex files we write: a checksum of every byte, checked before vortex parses one.

vortex-data 0.93 aborts the whole process (a Rust panic that cannot unwind) on some damaged
files, so a damaged file must be recognised before vortex sees it. Every Vortex file we write
(``export(how="vortex")`` images and dataset ``chunks.vortex`` files) carries a 32-byte seal,
placed between vortex's footer and its postscript, where vortex never looks (its postscript
addresses the footer by absolute offsets, so vortex and ome-arrow 0.1.0 read the file as before)::

    [vortex file up to its footer][seal, 32 bytes][postscript][u16 version, u16 postscript length, b"VTXF"]

    seal = b"OMEASEAL" | u16 seal version (1) | u16 algorithm (1: xxh3_64) | u32 0
           | u64 offset of the seal | u64 checksum

(little-endian). The checksum is XXH3-64 of every byte of the file but its own 8: the bytes
before the seal, the seal's first 24 bytes, then everything after it. Plain Python reads it:
the last 8 bytes give the postscript length, the seal ends where the postscript starts (when
those bytes are damaged, the last 64 KiB are searched for the seal's magic).
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from io import BufferedIOBase
from pathlib import Path
from typing import Any, Final

from ome_arrow_core.plugin_api import (
    CHECKSUM_ALGORITHM,
    ChecksumError,
    DamagedFileError,
    StorageError,
    verify_enabled,
    where,
)

__all__ = [
    "MAGIC",
    "VORTEX_MAGIC",
    "sniff_vortex",
    "SEAL_SIZE",
    "seal",
    "check_seal",
    "Sealed",
    "identity",
    "guard",
    "unchanged",
    "opened_version",
    "not_written_since",
    "has_seal",
]

MAGIC: Final[bytes] = b"OMEASEAL"
VORTEX_MAGIC: Final[bytes] = b"VTXF"
VERSION: Final[int] = 1
#: Algorithm codes stored in the seal.
ALGORITHMS: Final[dict[int, str]] = {1: "xxh3_64"}
_HEAD = struct.Struct("<8sHHIQ")  # magic, version, algorithm, reserved, offset
SEAL_SIZE: Final[int] = _HEAD.size + 8
_EOF = struct.Struct("<HH4s")  # vortex: version, postscript length, magic
#: Bytes at the end of a file that can hold the seal, the postscript (< 64 KiB) and vortex's end.
_TAIL: Final[int] = SEAL_SIZE + 0xFFFF + _EOF.size
_BLOCK = 4 << 20
_FIX = (
    "restore the file from a backup or re-create it from its source; to read it anyway (trusting its bytes: "
    "a damaged file can then abort the process) {how}"
)


def sniff_vortex(path: Path) -> bool:
    """True for a regular file that starts with the Vortex magic bytes (here, not in the reader: sniffing a
    path loads neither the reader nor vortex)."""
    try:
        if not path.is_file():
            return False
        with open(path, "rb") as fh:
            return fh.read(len(VORTEX_MAGIC)) == VORTEX_MAGIC
    except OSError:
        return False


def _fix(member: str | None) -> str:
    """How to repair, or read anyway: ``verify=False`` reaches image files; chunk files follow the environment."""
    how = "set OME_ARROW_CORE_VERIFY=0" if member else "pass verify=False or set OME_ARROW_CORE_VERIFY=0"
    return _FIX.format(how=how)


def _hasher() -> Any:
    import xxhash

    return xxhash.xxh3_64()


def _hash_range(fh: BufferedIOBase, start: int, stop: int, update: Callable[[Any], None], buf: bytearray) -> int:
    """Feed bytes ``start:stop`` of ``fh`` to ``update`` in blocks; the number of bytes fed."""
    view = memoryview(buf)
    fh.seek(start)
    done = 0
    while start + done < stop:
        n = fh.readinto(view[: min(len(buf), stop - start - done)])
        if not n:
            break
        update(view[:n])
        done += n
    return done


def seal(path: Path) -> None:
    """Insert the seal into the Vortex file ``path`` that vortex has just written (in place)."""
    algorithm = next(code for code, name in ALGORITHMS.items() if name == CHECKSUM_ALGORITHM)
    with open(path, "r+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - _EOF.size))
        _, ps_len, magic = _EOF.unpack(fh.read(_EOF.size).rjust(_EOF.size, b"\0"))
        at = size - _EOF.size - ps_len
        if magic != VORTEX_MAGIC or at < len(VORTEX_MAGIC):
            raise DamagedFileError(f"{path}: vortex wrote a file that does not end as a Vortex file; nothing sealed")
        fh.seek(at)
        tail = fh.read()
        head = _HEAD.pack(MAGIC, VERSION, algorithm, 0, at)
        h = _hasher()
        _hash_range(fh, 0, at, h.update, bytearray(_BLOCK))
        h.update(head)
        h.update(tail)
        fh.seek(at)
        fh.write(head + struct.pack("<Q", h.intdigest()) + tail)


def _locate(tail: bytes, size: int) -> int | None:
    """Offset of the seal in a file of ``size`` bytes ending in ``tail`` (None when it has none)."""
    if len(tail) >= _EOF.size and tail[-4:] == VORTEX_MAGIC:
        ps_len = int.from_bytes(tail[-_EOF.size + 2 : -4], "little")
        at = len(tail) - _EOF.size - ps_len - SEAL_SIZE
        if at >= 0 and tail[at : at + len(MAGIC)] == MAGIC:
            return size - len(tail) + at
    found = tail.rfind(MAGIC)  # vortex's end is damaged: a seal may still be there
    return None if found < 0 else size - len(tail) + found


def has_seal(path: Path) -> bool:
    """True when the file ``path`` carries a seal, which only files we write do (not checked here: reads its last
    bytes only; opening it checks the seal)."""
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - _TAIL))
        return _locate(fh.read(), size) is not None


@dataclass(frozen=True)
class Sealed:
    """What :func:`check_seal` found: whether the file has a (matching) seal, and whether it starts and
    ends with the Vortex magic; ``identity`` tells this version of the file from a later one."""

    sealed: bool
    vortex_magic: bool
    identity: tuple[int, ...]


def identity(st: os.stat_result) -> tuple[int, ...]:
    """What tells one file version from another: device, inode, size, modification and change times."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def check_seal(path: Path, member: str | None = None) -> Sealed:
    """Check the seal of the Vortex file ``path`` (``member`` of a dataset when given), before vortex opens it.

    Returns whether the file has a seal (a file written before seals has none); raises
    :class:`ChecksumError` when the bytes do not match it and :class:`DamagedFileError` when
    the seal itself is damaged. Either names the file.
    """
    file = path if member is None else path / member
    place = where(path, member)
    with open(file, "rb") as fh:
        st = os.fstat(fh.fileno())
        size = st.st_size
        fh.seek(max(0, size - _TAIL))
        tail = fh.read()
        fh.seek(0)
        ours = fh.read(len(VORTEX_MAGIC)) == VORTEX_MAGIC and len(tail) >= 8 and tail[-4:] == VORTEX_MAGIC
        at = _locate(tail, size)
        if at is None:
            return Sealed(False, ours, identity(st))
        head = tail[at - (size - len(tail)) :][:SEAL_SIZE]
        if len(head) < SEAL_SIZE:
            raise DamagedFileError(
                f"{place}: its seal (whole-file checksum) is cut off; the file is truncated "
                f"or damaged. Fix: {_fix(member)}"
            )
        _magic, version, algorithm, _, offset = _HEAD.unpack(head[: _HEAD.size])
        (stored,) = struct.unpack("<Q", head[_HEAD.size :])
        if version != VERSION or algorithm not in ALGORITHMS or offset != at:
            raise DamagedFileError(
                f"{place}: its seal (whole-file checksum) is damaged (version {version}, algorithm {algorithm}, "
                f"offset {offset}; expected version {VERSION}, algorithm 1, offset {at}); a newer ome-arrow-vortex "
                f"may have written it, else the file is damaged. Fix: {_fix(member)}"
            )
        h = _hasher()
        buf = bytearray(_BLOCK)
        done = _hash_range(fh, 0, at, h.update, buf)
        h.update(head[: _HEAD.size])
        done += _hash_range(fh, at + SEAL_SIZE, size, h.update, buf)
        actual = h.intdigest()
    if done != size - SEAL_SIZE or actual != stored:
        raise ChecksumError(
            f"{place}: the file's bytes do not match its whole-file checksum (stored {stored:016x}, computed "
            f"{actual:016x}, {ALGORITHMS[algorithm]}); the file is damaged and was not opened. Fix: {_fix(member)}"
        )
    return Sealed(True, True, identity(st))


def guard(path: Path, member: str | None = None, verify: bool | None = None) -> Sealed | None:
    """Make sure vortex may parse the file ``path`` (``member`` of a dataset): run before ``vortex.open``.

    A sealed file must match its seal. A file without one must start and end with the Vortex
    magic and pass :func:`~.probe.probe` (vortex reads it whole in a child process). Skipped
    (None returned) when checks are off (``verify=False`` or ``OME_ARROW_CORE_VERIFY=0``).
    """
    if not verify_enabled(verify):
        return None
    found = check_seal(path, member)
    if found.sealed:
        return found
    if not found.vortex_magic:
        raise DamagedFileError(
            f"{where(path, member)} is not a readable Vortex file: it does not start and end with the Vortex magic "
            f"{VORTEX_MAGIC!r} (a truncated or damaged file). Fix: {_fix(member)}"
        )
    from .probe import probe

    probe(path, member)
    return found


def opened_version(found: Sealed | None, path: Path, member: str | None = None) -> tuple[int, ...]:
    """The device, inode, size and modification time of the file opened: those :func:`guard` checked (``found``),
    else (checks off) the file's now."""
    st = found.identity if found is not None else identity(os.stat(path if member is None else path / member))
    return st[:4]


def not_written_since(version: tuple[int, ...], path: Path, member: str | None = None) -> None:
    """Raise StorageError (ESTALE) when the file opened as ``version`` (:func:`opened_version`) was written in place
    since: vortex maps it into memory, so its reads would take the new bytes unchecked (another image's pixels, or
    a crash of the process, SIGBUS, where the file was cut short). A file replaced by another (a new inode) is
    not: the one opened stays readable as it was."""
    try:
        st = os.stat(path if member is None else path / member)
    except OSError:  # removed: the file opened stays readable as it was
        return
    if (st.st_dev, st.st_ino) == version[:2] and (st.st_size, st.st_mtime_ns) != version[2:]:
        how = f"{version[2]} bytes then, {st.st_size} now" if st.st_size != version[2] else "modified since"
        err = StorageError(
            f"{where(path, member)} was written in place after it was opened ({how}): its bytes are no longer "
            "those checked when it was opened, so nothing more is read from it; open it again once that write is done"
        )
        err.errno = errno.ESTALE
        raise err


def unchanged(found: Sealed | None, path: Path, member: str | None = None) -> None:
    """Raise StorageError when the file checked by :func:`guard` was replaced or changed since."""
    if found is None:
        return
    file = path if member is None else path / member
    if identity(os.stat(file)) != found.identity:
        raise StorageError(
            f"{where(path, member)} changed while it was being opened (another process wrote "
            "it); open it again once that write is done"
        )
