"""What is ours to replace or remove: dataset member names and our temporaries' names.

A directory is replaced only if it is one of our datasets (it has ``_ome_arrow_dataset.json``,
or images.parquet and chunks.parquet as ome-arrow 0.1.0 writes) and holds nothing else than
names our format uses: the manifest, the ``SENTINEL`` text file, ``images*.parquet``, ``images*.records``,
``index*.parquet``,
``chunks*.parquet`` / ``chunks*.<store suffix>``, ``_ome_arrow*`` files, an append's
``.append-NNNNN.pending`` marker and our temporaries.
Temporaries are named ``.NAME.ome-arrow-tmp.PID.RANDOM`` (a write in progress, or the old
copy a swap moved out) and ``.NAME.ome-arrow-old.PID.RANDOM`` (the old copy moved aside where
the system cannot swap in one step).
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import UnsafeOverwriteError

__all__ = [
    "SENTINEL",
    "SENTINEL_TEXT",
    "TempName",
    "temp_name",
    "pending_name",
    "is_legacy_temp",
    "parse_temp",
    "is_dataset",
    "foreign_members",
    "check_replaceable",
]

MANIFEST = "_ome_arrow_dataset.json"
#: A text file every dataset we write holds: a plain Parquet reader given the directory
#: (``pq.read_table(path)``) fails on it, naming it, instead of silently unioning the
#: dataset's tables. Neither we nor ome-arrow 0.1.0 read it.
SENTINEL = "THIS-IS-AN-OME-ARROW-DATASET.txt"
SENTINEL_TEXT = (
    "This directory is an OME-Arrow dataset: several Parquet tables (images, index, chunks) that only make sense\n"
    "together. Open it with ome_arrow_core.OMEArrowDataset.scan(path) (or ome-arrow), not pyarrow.parquet.read_table\n"
    "on the directory; to read one table with pyarrow, name its file (path/images.parquet).\n"
)
TMP, OLD = "tmp", "old"
_TEMP = re.compile(r"^\.(?P<name>.+)\.ome-arrow-(?P<kind>tmp|old)\.(?P<pid>\d+)\.(?P<token>[0-9a-f]{8,})$")
#: Temporaries of ome-arrow-core before 0.1.1 (``tempfile.mkdtemp`` names): ours, but no owner recorded.
_LEGACY = re.compile(
    r"^\.(?:(?:images|index|chunks)(?:-\d{5})?\.[A-Za-z0-9]+|_ome_arrow_dataset\.json|compact)"
    r"\.[A-Za-z0-9_]{8}\.tmp$"
)
#: The marker an append in progress keeps in the dataset (removed after its manifest commit).
PENDING = re.compile(r"^\.append-(?P<k>\d{5,})\.pending$")
_TABLES = re.compile(r"^(?:(?:images|index)(?:-\d{5})?\.parquet|images(?:-\d{5})?\.records)$")
_CHUNKS = re.compile(r"^chunks(?:-\d{5})?(?P<suffix>\.[A-Za-z0-9]+)$")


@dataclass(frozen=True)
class TempName:
    """A parsed temporary name: the target's name, ``"tmp"`` or ``"old"``, and the writing process."""

    name: str
    kind: str
    pid: int


def temp_name(name: str, kind: str = TMP) -> str:
    """A fresh temporary name for a write to ``name`` (by this process)."""
    return f".{name}.ome-arrow-{kind}.{os.getpid()}.{secrets.token_hex(4)}"


def pending_name(number: int) -> str:
    """The marker of append ``number`` (``.append-NNNNN.pending``): while it is there, that append's files
    that no manifest lists are garbage (a killed append's, or merged by a compaction)."""
    return f".append-{number:05d}.pending"


def parse_temp(entry: str) -> TempName | None:
    """The parts of one of our temporary names, or None for any other name."""
    m = _TEMP.match(entry)
    return TempName(m["name"], m["kind"], int(m["pid"])) if m else None


def _store_suffixes() -> set[str]:
    suffixes = {".parquet", ".vortex"}
    try:
        from ..registry import default_registry

        suffixes |= {s.suffix for s in default_registry().chunk_stores()}
    except Exception:
        pass
    return suffixes


def is_legacy_temp(entry: str) -> bool:
    """True for a temporary name of ome-arrow-core before these names (``.index.parquet.k3j_x9ab.tmp``)."""
    return _LEGACY.match(entry) is not None


def is_dataset(path: Path) -> bool:
    """True for a directory with our manifest, or with images.parquet and chunks.parquet (ome-arrow 0.1.0)."""
    return path.is_dir() and (
        (path / MANIFEST).is_file() or ((path / "images.parquet").is_file() and (path / "chunks.parquet").is_file())
    )


def is_member_name(entry: str, suffixes: set[str] | None = None) -> bool:
    """True for a name a dataset of ours holds (tables, chunk files, manifest, ``_ome_arrow*``, temporaries)."""
    if entry in (MANIFEST, SENTINEL) or entry.startswith("_ome_arrow") or _TABLES.match(entry):
        return True
    if parse_temp(entry) or _LEGACY.match(entry) or PENDING.match(entry):
        return True
    m = _CHUNKS.match(entry)
    return m is not None and m["suffix"] in (suffixes if suffixes is not None else _store_suffixes())


def foreign_members(path: Path) -> list[str]:
    """Names in dataset directory ``path`` that our format does not use (sorted); a subdirectory is
    foreign unless it is one of our temporaries."""
    suffixes = _store_suffixes()
    out = []
    with os.scandir(path) as it:
        for entry in it:
            ours = is_member_name(entry.name, suffixes)
            if ours and entry.is_dir(follow_symlinks=False):
                ours = bool(parse_temp(entry.name) or _LEGACY.match(entry.name))
            if ours and entry.is_symlink():
                ours = False
            if not ours:
                out.append(entry.name)
    return sorted(out)


def _shown(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _special_kind(mode: int) -> str | None:
    """What a file that is not a regular file is (a FIFO, a socket, a device), or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def check_replaceable(target: Path, *, directory: bool) -> None:
    """Refuse (UnsafeOverwriteError) to replace ``target`` unless it is absent or ours to replace.

    ``directory=True``: a new dataset directory would replace it; only one of our datasets
    holding nothing foreign may be replaced. ``directory=False``: a new file would replace
    it; a regular file may be, never a directory, a symbolic link, a FIFO, a socket or a device.
    """
    how = "Choose another output path, or remove it yourself if you mean to replace it."
    if not os.path.lexists(target):
        return
    if target.is_symlink():
        raise UnsafeOverwriteError(
            f"refusing to replace {target}: it is a symbolic link (to "
            f"{os.readlink(target)}); nothing was changed. {how}"
        )
    if not directory:
        if target.is_dir():
            raise UnsafeOverwriteError(
                f"refusing to replace {target}: it is a directory and the output is a file; nothing was changed. {how}"
            )
        kind = _special_kind(os.lstat(target).st_mode)
        if kind is not None:
            raise UnsafeOverwriteError(
                f"refusing to replace {target}: it is {kind}, not a regular file, and only a regular file is "
                f"replaced by an output file; nothing was changed. {how}"
            )
        return
    if not target.is_dir():
        raise UnsafeOverwriteError(
            f"refusing to replace {target}: it is a file and the output is a dataset "
            f"directory; nothing was changed. {how}"
        )
    here, there = Path.cwd().resolve(), target.resolve()
    if here == there or there in here.parents:
        raise UnsafeOverwriteError(
            f"refusing to replace {target}: it is (or holds) the current directory; nothing was changed. {how}"
        )
    if not is_dataset(target):
        with os.scandir(target) as it:
            names = sorted(e.name for e in it)
        found = f"it holds {_shown(names)}" if names else "it is an empty directory"
        raise UnsafeOverwriteError(
            f"refusing to replace {target}: it is not an OME-Arrow dataset (no {MANIFEST}; {found}); "
            f"nothing was changed. {how}"
        )
    foreign = foreign_members(target)
    if foreign:
        raise UnsafeOverwriteError(
            f"refusing to replace dataset {target}: it holds files that are not part of the dataset "
            f"({_shown(foreign)}); nothing was changed. Move them out of the directory, or choose another "
            "output path."
        )
