"""Writing a typed-chunk dataset directory to object storage: data objects first, the manifest last.

The dataset is written locally by the ordinary writer (a new temporary directory; for an
append, a copy of the remote dataset's mirror, whose chunk files stay placeholders), then the
objects are uploaded in an order that keeps every reader safe:

- ``create``: refused when anything is at the target. The sentinel, chunk files, index and images
  tables, each put only if no object has its name; the manifest last, likewise. Until the manifest
  lands no reader opens the dataset (a directory with our sentinel and no manifest is an unfinished
  write; see :mod:`.mirror`), and ``overwrite`` may replace what a killed create left.
- ``append``: the append's pending marker first, then its new chunk file and tables, each put only
  if no object has the name (two appenders picking the same names: the second fails before it
  touches the first's objects); then the manifest, put only if it is still the version this
  writer read (S3 ``If-Match``): of two concurrent appenders exactly one wins, and the other removes
  what it uploaded and raises :class:`~ome_arrow_core.remote.LostRace`. Readers see the old manifest (the
  new tables are unlisted, and the marker makes readers ignore them) or the new one.
- ``overwrite``: refused unless every object at the target is a name our format uses (as locally,
  see :mod:`.safe_write.ownership`). New objects replace the old ones, the manifest last, then old
  members the new dataset does not have are removed; nothing else is ever deleted. An object store
  cannot replace many objects in one step: a reader opening the dataset during an overwrite gets a
  clear DamagedFileError (the tables' digests do not match the manifest it read) and opens it again.

A create or append killed mid-upload leaves the old state visible (an append's marker and objects stay as
garbage the next append steps over; ``create``: objects without a manifest); one that fails
removes what it uploaded. An overwrite that fails or is killed after its first data object does not:
the old manifest then lists tables partly replaced (readers raise DamagedFileError until an overwrite
completes), and the old images are lost (docs/clusters.md says to write a new prefix when they must survive).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..errors import ArgumentError, NotFoundError, UnsafeOverwriteError
from ..location import Location
from ..remote import SIDECAR, LostRace, ObjectPuts
from ..safe_write import SENTINEL, is_member_name
from .remote_mirror import MANIFEST, listing_of, mirror_dataset

__all__ = ["write_remote_dataset"]

#: Writes a dataset at a local path in a local mode ("create" or "append").
LocalWrite = Callable[[Path, str], object]


def _order(name: str) -> tuple[int, str]:
    """Upload order: the sentinel (a directory holding it and no manifest is an unfinished write of ours, which
    readers refuse), markers, chunk files, index tables, images tables, other names."""
    for k, prefix in enumerate((SENTINEL, ".append-", "chunks", "index", "images")):
        if name.startswith(prefix):
            return k, name
    return 5, name


def write_remote_dataset(target: Location, mode: str, write: LocalWrite) -> None:
    """Write the dataset ``write`` produces to remote directory ``target`` (see the module's docstring)."""
    if target.uri.startswith(("http://", "https://")):
        raise ArgumentError(f"{target.uri}: HTTP(S) locations are read-only; write to a local path or an object store")
    if mode not in ("create", "append", "overwrite"):
        raise ArgumentError(f"mode must be 'create', 'append' or 'overwrite', got {mode!r}")
    puts = ObjectPuts(target)
    folders: list[str] = []
    listing = listing_of(target, folders) or {}
    with tempfile.TemporaryDirectory(prefix="ome-arrow-upload-") as tmp:
        if mode == "append":
            _append(target, puts, listing, Path(tmp) / target.name, write)
            return
        if not listing and not folders:
            _refuse_object(target)
        if mode == "create" and (listing or folders):
            under = f"{len(listing)} objects" + "".join(f", {f}/" for f in folders[:5])
            raise UnsafeOverwriteError(
                f"{target.uri} exists ({under}); pass mode='append' to add images or "
                "mode='overwrite' to replace it (only an OME-Arrow dataset holding nothing else is replaced)"
            )
        if mode == "overwrite":
            _check_ours(target, listing, folders)
        out = Path(tmp) / target.name
        write(out, "create")
        names = sorted((p.name for p in out.iterdir() if p.is_file() and p.name != MANIFEST), key=_order)
        create = mode == "create"
        done: list[str] = []
        try:
            for name in names:
                puts.put(name, out / name, create=create)
                done.append(name)
            puts.put(MANIFEST, out / MANIFEST, create=create, expect=None)
        except BaseException:
            if create:  # ours alone (create-only puts): nothing foreign is removed
                _remove(puts, done)
            raise
        for name in sorted(set(listing) - set(names) - {MANIFEST}):
            if is_member_name(name):  # an old member the new dataset does not have
                puts.delete(name)


def _refuse_object(target: Location) -> None:
    """UnsafeOverwriteError when ``target``, under which nothing is listed, is itself an object (a file)."""
    import pyarrow.fs as pafs

    if target.looked_up().type == pafs.FileType.File:
        raise UnsafeOverwriteError(
            f"{target.uri} is an object (a file), where the dataset's directory would go; refusing to write a "
            "dataset beside it: write elsewhere, or remove the object yourself"
        )


def _check_ours(target: Location, listing: dict[str, int], folders: list[str]) -> None:
    """UnsafeOverwriteError unless the objects at ``target`` are one of our datasets and nothing else (no folder:
    a dataset has none)."""
    if not listing and not folders:
        return
    if MANIFEST not in listing and SENTINEL not in listing and not {"images.parquet", "chunks.parquet"} <= set(listing):
        raise UnsafeOverwriteError(
            f"{target.uri} is not an OME-Arrow dataset (no {MANIFEST}); refusing to overwrite it: remove it yourself "
            "or write elsewhere"
        )
    foreign = [f"{n}/" for n in folders] + sorted(n for n in listing if not is_member_name(n))
    if foreign:
        raise UnsafeOverwriteError(
            f"{target.uri} holds objects our format does not write ({', '.join(foreign[:5])}); refusing to "
            "overwrite it: move them away first or write elsewhere"
        )


def _append(target: Location, puts: ObjectPuts, listing: dict[str, int], work: Path, write: LocalWrite) -> None:
    if MANIFEST not in listing:
        raise NotFoundError(f"{target.uri} holds no OME-Arrow dataset with a manifest to append to")
    expect = puts.version(MANIFEST)  # read before the mirror: a newer manifest makes our commit lose, never win
    mirror = mirror_dataset(target)
    if mirror is None or expect is None:
        raise NotFoundError(f"{target.uri} holds no OME-Arrow dataset to append to")
    _copy_mirror(mirror, work)
    before = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in work.iterdir()}
    write(work, "append")
    after = {p.name for p in work.iterdir() if p.is_file()}
    new = sorted(after - set(before) - {MANIFEST}, key=_order)
    changed = [n for n in after & set(before) if n != MANIFEST and _stamp(work / n) != before[n]]
    if changed:  # the writer appends new objects only; anything else would replace data in place
        raise ArgumentError(f"{target.uri}: an append rewrote {changed}; remote appends add objects only")
    markers = [f".append-{n[len('images-') : -len('.parquet')]}.pending" for n in new if n.startswith("images-")]
    done: list[str] = []
    try:
        for name in markers:  # readers ignore the unlisted tables of an append whose marker is there
            try:
                puts.put(name, b"", create=True)
            except LostRace:  # left by a killed append of the same number (or one racing us): there, not ours
                continue
            done.append(name)
        for name in new:
            puts.put(name, work / name, create=True)
            done.append(name)
        puts.put(MANIFEST, work / MANIFEST, expect=expect)
    except BaseException:
        _remove(puts, done)
        raise
    _remove(puts, markers)


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _copy_mirror(mirror: Path, work: Path) -> None:
    """A writable copy of a mirror: its tables copied, its placeholders made again (sparse), no sidecar."""
    work.mkdir()
    for p in mirror.iterdir():
        if p.name in (SIDECAR, ".complete") or not p.is_file():
            continue
        if os.path.getsize(p) and not _is_placeholder(mirror, p.name):
            shutil.copy2(p, work / p.name)
        else:
            with open(work / p.name, "wb") as f:
                f.truncate(os.path.getsize(p))


def _is_placeholder(mirror: Path, name: str) -> bool:
    from ..remote import remote_chunk

    return remote_chunk(mirror / name) is not None


def _remove(puts: ObjectPuts, names: list[str]) -> None:
    """Remove objects this writer created (best effort: a failure here leaves unlisted garbage, never damage)."""
    for name in reversed(names):
        try:
            puts.delete(name)
        except OSError:
            pass
