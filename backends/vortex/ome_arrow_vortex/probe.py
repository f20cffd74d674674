"""Files without a seal (written before seals, or by other programs): read once by vortex in a child process.

A file with no seal cannot be checked byte by byte, and vortex-data 0.93 aborts the process on
some damaged files. So, before this process lets vortex parse such a file, a child process
opens it and reads every column of every row, by scan and by row take (the two ways the
reader asks vortex for rows). If the child dies (a panic) or vortex reports an error, the file
is refused with :class:`DamagedFileError`. A file that passed is remembered by its XXH3-64
(checked in this process), so reopening the same bytes costs one pass over them, not a child.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Final

from ome_arrow_core.plugin_api import DamagedFileError, StorageError, where

__all__ = ["probe", "PROBE_TIMEOUT"]

#: Seconds the child may take, plus one per 64 MiB of file.
PROBE_TIMEOUT: Final[float] = 60.0
#: Exit code of a child whose vortex raised an ordinary error (the message is on its stderr).
_VORTEX_ERROR: Final[int] = 3
_CHILD: Final[str] = r"""
import sys
try:
    import pyarrow as pa
    import vortex as vx
except BaseException as exc:
    print(f"cannot import vortex: {exc}", file=sys.stderr)
    sys.exit(2)

def plain(t):
    if t in (pa.string_view(), pa.string(), pa.large_string()):
        return pa.large_string()
    if t in (pa.binary_view(), pa.binary(), pa.large_binary()):
        return pa.large_binary()
    return t

try:
    f = vx.open(sys.argv[1], memory_map=True)
    names = list(f.dtype.names())
    full = f.dtype.to_arrow_schema()
    schema = pa.schema([full.field(n).with_type(plain(full.field(n).type)) for n in names])
    n = len(f)
    for batch in f.to_arrow(names, schema=schema):
        pass
    if n:
        for rows in (list(range(n)), [0], [n - 1], list(range(0, n, 2))):
            for batch in f.to_arrow(names, indices=vx.array(pa.array(rows, pa.uint64())), schema=schema):
                pass
except Exception as exc:
    text = str(exc).strip()
    print(text.splitlines()[0] if text else type(exc).__name__, file=sys.stderr)
    sys.exit(3)
"""
_passed: set[tuple[int, int]] = set()
_lock = threading.Lock()


def _digest(file: Path) -> tuple[int, int]:
    """(size, XXH3-64) of ``file``'s bytes."""
    import xxhash

    h = xxhash.xxh3_64()
    buf = bytearray(4 << 20)
    view = memoryview(buf)
    size = 0
    with open(file, "rb") as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
            size += n
    return size, h.intdigest()


def _reason(stderr: str) -> str:
    """The line of a child's stderr that says what vortex did (its panic message), else the first."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for k, line in enumerate(lines):
        if "panicked at" in line and k + 1 < len(lines):
            return f"vortex panicked: {lines[k + 1]}"
    return lines[0] if lines else "no message"


def probe(path: Path, member: str | None = None) -> None:
    """Have a child process read the unsealed Vortex file ``path`` (``member`` of a dataset) entirely.

    Raises DamagedFileError, naming the file, when vortex fails or crashes on it there.
    """
    file = path if member is None else path / member
    place = where(path, member)
    key = _digest(file)
    with _lock:
        if key in _passed:
            return
    env = {**os.environ, "RUST_BACKTRACE": "0", "RUST_LIB_BACKTRACE": "0"}
    limit = PROBE_TIMEOUT + key[0] / (64 << 20)
    try:
        done = subprocess.run(
            [sys.executable, "-P", "-c", _CHILD, os.fspath(file)],
            capture_output=True,
            text=True,
            errors="replace",
            env=env,
            timeout=limit,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise StorageError(
            f"{place}: the file has no whole-file checksum, and checking it in a child process took "
            f"over {limit:.0f} s; pass verify=False to read it unchecked"
        ) from None
    except OSError as exc:
        raise StorageError(
            f"{place}: the file has no whole-file checksum, and no child process could be started "
            f"to check it ({exc}); pass verify=False to read it unchecked"
        ) from None
    if done.returncode == 0:
        with _lock:
            _passed.add(key)
        return
    if done.returncode == _VORTEX_ERROR or done.returncode < 0 or done.returncode == 101:
        how = "crashed" if done.returncode != _VORTEX_ERROR else "failed"
        raise DamagedFileError(
            f"{place} is not a readable Vortex file: vortex {how} reading it in a child process "
            f"({_reason(done.stderr)}); the file is damaged (it has no whole-file checksum: it was written "
            "before ome-arrow-vortex stored one, or by another program)"
        )
    raise StorageError(
        f"{place}: the file has no whole-file checksum, and the child process checking it "
        f"exited {done.returncode} ({_reason(done.stderr)}); pass verify=False to read it unchecked"
    )
