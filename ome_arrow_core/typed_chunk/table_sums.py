"""Whole-file checksums of a dataset's tables, recorded in the manifest and checked before pyarrow parses a table.

pyarrow aborts the whole process (a C++ exception that escapes as ``std::terminate``) on some
damaged Parquet footers, so a damaged table must be recognised before pyarrow sees it. The
manifest, written last (it commits a write), records the XXH3-64 of every images and index
table it lists, under ``ome_arrow_core.tables``::

    "tables": {"images.parquet": ["89ab...(16 hex digits)"], "index.parquet": ["..."], ...}

Each value lists the digests a table may have: one, but during a compaction's swap both the
old and the new table's (so a compaction killed half-way still reads). Tables the manifest
does not record (datasets written before this, or by ome-arrow 0.1.0) are parsed unchecked.
A table is hashed once per process per file version (device, inode, size, mtime, ctime).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from ..boundary import reading
from ..checksums import ALGORITHM, ENV, FIX, checker, hex_digest, range_digest, verify_enabled
from ..errors import ChecksumError, DamagedFileError
from .file_version import member_version
from .spec import MANIFEST

__all__ = ["TABLES_KEY", "accept_both", "check_tables", "file_digest", "record", "recorded", "swapped_digest"]

#: Key of the recorded table digests in the manifest's ``ome_arrow_core`` section.
TABLES_KEY: Final[str] = "tables"
#: Bytes read at a time. A buffer of this size, even for a table of a few KiB, is measured: glibc's malloc raises
#: its mmap threshold to the size of an mmap'd block freed (up to 32 MiB), so after the first table check or write
#: a process's later allocations of up to 4 MiB come from its heap, not fresh zeroed pages (a fresh process's
#: 16 MiB writes cost 6-12% more without it: docs/benchmarks.md, session 20, write20).
_BLOCK: Final[int] = 4 << 20
#: Largest table :func:`record` holds in memory for the manifest's other steps (larger ones are read again).
HOLD: Final[int] = 64 << 20
#: File versions (path, device, inode, size, mtime, ctime) whose digest matched, in this process.
_passed: set[tuple[Any, ...]] = set()
_lock = threading.Lock()


def file_digest(file: Path, algorithm: str | None = None) -> str:
    """The checksum (``algorithm``, default XXH3-64) of every byte of ``file``, as 16 hex digits."""
    if (algorithm or ALGORITHM) != ALGORITHM:
        checker(algorithm, str(file))  # raises SchemaError naming the unknown algorithm
    with open(file, "rb", buffering=0) as fh:
        fd = fh.fileno()
        return range_digest(fd, 0, os.fstat(fd).st_size, memoryview(bytearray(_BLOCK)))


def recorded(root: Path, manifest: Mapping[str, Any]) -> dict[str, list[str]]:
    """The table digests the manifest records (``{}`` when it records none); DamagedFileError when malformed."""
    ours = manifest.get("ome_arrow_core") or {}
    listed = ours.get(TABLES_KEY) if isinstance(ours, Mapping) else None
    if listed is None:
        return {}
    ok = isinstance(listed, Mapping) and all(
        isinstance(k, str) and isinstance(v, list) and v and all(isinstance(d, str) and len(d) == 16 for d in v)
        for k, v in listed.items()
    )
    if not ok:
        raise DamagedFileError(
            f"{root} [{MANIFEST}]: ome_arrow_core.{TABLES_KEY} is {listed!r}; expected {{table name: [16 hex "
            f"digits, ...]}}: the manifest is damaged. Fix: {FIX}"
        )
    return {str(k): [str(d).lower() for d in v] for k, v in listed.items()}


def record(
    root: Path, names: Iterable[str], keep: Mapping[str, list[str]] | None = None, held: dict[str, bytes] | None = None
) -> dict[str, list[str]]:
    """Digests of tables ``names`` of the dataset at ``root`` for the manifest (those in ``keep`` are taken from it;
    a table that does not exist, as an ome-arrow 0.1.0 dataset's absent index.parquet, is left out).

    ``held`` (when given) gets the bytes of each table hashed here of at most :data:`HOLD` bytes: read back from
    the file in one read, the very bytes its digest is of, so that the manifest's next steps measure the table
    without reading it again (:func:`~.group_measure.measure`)."""
    keep = keep or {}
    out: dict[str, list[str]] = {}
    buf = bytearray(_BLOCK) if held is not None else None  # one for every table read (see _BLOCK)
    for n in dict.fromkeys(names):
        if n in keep:
            out[n] = list(keep[n])
        elif (root / n).is_file():
            data = _read_small(root / n, buf) if buf is not None else None
            if data is None:
                out[n] = [file_digest(root / n)]
            else:
                out[n] = [hex_digest(data)]
                assert held is not None
                held[n] = data
    return out


def _read_small(file: Path, buf: bytearray) -> bytes | None:
    """Every byte of ``file`` (read to its end, through ``buf``), or None when it is larger than :data:`HOLD`
    bytes."""
    with open(file, "rb") as fh:
        if os.fstat(fh.fileno()).st_size > HOLD:
            return None
        parts = []
        while n := fh.readinto(buf):
            parts.append(bytes(memoryview(buf)[:n]))
        return b"".join(parts)


def check_tables(root: Path, manifest: Mapping[str, Any], names: Iterable[str], verify: bool | None = None) -> None:
    """Raise ChecksumError unless every table of ``names`` the manifest records has a recorded digest.

    Run before pyarrow parses any of them; skipped when checks are off (``verify=False`` or
    ``OME_ARROW_CORE_VERIFY=0``). A missing table is left to the caller (it names it).
    """
    if not verify_enabled(verify):
        return
    sums = recorded(root, manifest)
    algorithm = (manifest.get("ome_arrow_core") or {}).get("checksum")
    for name in names:
        want = sums.get(name)
        if want is None:
            continue
        file = root / name
        version = member_version(root, name)  # never open a FIFO
        if version is None:
            continue  # the caller says the listed table is missing
        key = (*version, tuple(want))
        with _lock:
            if key in _passed:
                continue
        with reading(root, name, "checking the table's checksum"):
            actual = file_digest(file, algorithm)
        if actual not in want:
            raise ChecksumError(
                f"{root} [{name}]: the table's bytes do not match the checksum the manifest records (recorded "
                f"{' or '.join(want)}, computed {actual}, {algorithm or ALGORITHM}); the table is damaged (or the "
                f"manifest lies) and was not parsed. Fix: {FIX}. To read it anyway (trusting its bytes: a damaged "
                f"table can then abort the process) pass verify=False or set {ENV}=0"
            )
        with _lock:
            _passed.add(key)


def swapped_digest(root: Path, new: Path, name: str) -> list[str]:
    """The digest of table ``name`` once a swap is done: of ``new / name`` when the swap writes it, else of
    ``root / name`` (hashed: a manifest left by a killed swap may accept two versions)."""
    return [file_digest(new / name if (new / name).exists() else root / name)]


def accept_both(root: Path, manifest: Mapping[str, Any], new: Mapping[str, list[str]]) -> bytes | None:
    """Before tables are swapped in, replace the manifest with one that accepts the old and the ``new`` digests.

    Until the swap ends with the new manifest, a reader may meet old and new tables beside the
    old manifest; this one lets both pass their check. Nothing is written when ``manifest``
    records no digests (its readers check nothing). Returns the replaced manifest's bytes (None
    when nothing was written), for :func:`restore_manifest`.
    """
    old = recorded(root, manifest)
    if not old:
        return None
    from ..safe_write import atomic_path  # writers only: a read never loads it

    original = (root / MANIFEST).read_bytes()
    both = {**old, **{n: sorted({*old.get(n, []), *d}) for n, d in new.items()}}
    ours = {**(manifest.get("ome_arrow_core") or {}), TABLES_KEY: both}
    with atomic_path(root / MANIFEST) as tmp:
        tmp.write_text(json.dumps({**manifest, "ome_arrow_core": ours}, indent=2))
    return original


def restore_manifest(root: Path, original: bytes, manifest: Mapping[str, Any]) -> None:
    """Put the manifest replaced by :func:`accept_both` back, once the swap was undone: only when every table it
    records still has its recorded digest (otherwise the manifest accepting both stays, and reads)."""
    from ..safe_write import atomic_path

    try:
        for name, want in recorded(root, manifest).items():
            if file_digest(root / name) not in want:
                return
        with atomic_path(root / MANIFEST) as tmp:
            tmp.write_bytes(original)
    except OSError:  # the manifest accepting both stays: the dataset reads as before
        pass
