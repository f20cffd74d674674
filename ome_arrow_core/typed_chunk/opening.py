"""Opening a typed-chunk dataset once per process: the manifest and the footers checked, the index read whole
or (aligned, see :mod:`.aligned_index`) a row group at a time as images need it.

:func:`open_dataset` keeps a small cache keyed by the files' identity (path, inodes, sizes,
mtimes, process), so repeated scans of the same files parse them once. Chunk files open on
first use. A forked process (a DataLoader worker) takes over its parent's entries, with the
row groups loaded there (:func:`open_files` loads them for it), for files still unchanged.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa

from ..checksums import verify_enabled
from ..errors import DamagedFileError, FormatVersionError, SchemaError
from ..fork_locks import fork_safe_lock
from ..registry import Registry
from ..uniques import unique_first
from .aligned_layout import aligned_starts
from .bounds import check_image_count, check_table_rows, dictionary_codes
from .checks import check_manifest_members, check_member
from .file_version import member_stamps
from .footers import footers_of
from .fragments import Fragment, open_fragment
from .group_sums import TableGuard
from .image_groups import GROUPS_KEPT, ImageRows
from .ledger import chunk_versions, forget_ledgers, ledger_for
from .manifest_cache import shared_manifest
from .opened import OpenedDataset
from .page_index import MANIFEST_KEY as PAGES_KEY
from .page_index import listed_codec
from .paged_fragments import ranged_rows_bound
from .spec import FORMAT_VERSION, MANIFEST
from .tables import Part, images_schema, parts_of, read_indexes

__all__ = ["open_dataset", "open_files", "clear_cache", "CACHE_SIZE"]

#: The files whose versions key an opened dataset (the manifest commits every write; the base tables and chunks
#: file are replaced by a compaction).
_STAMPED: Final = (MANIFEST, "images.parquet", "index.parquet", "chunks.parquet")


def _stamp(path: Path) -> tuple[Any, ...]:
    """Identity of a dataset's files on disk (device, inode, size, mtime and ctime of each, as
    :func:`~.file_version.file_version` has them) in this process.

    A changed file misses the cache (an append replaces the manifest; listed append tables
    never change). A forked process (a DataLoader worker) takes over its parent's entries under
    its own process id (see :func:`_adopt_inherited`): their files are read by position
    (``pread``), which processes sharing a file descriptor may do. Four ``stat`` calls and no path
    resolution: ``ds[i]`` pays this on every call.
    """
    root = os.fspath(path)
    if not os.path.isabs(root):
        root = os.path.abspath(root)
    return (root, os.getpid(), *member_stamps(root, _STAMPED))


#: Opened datasets by :func:`_stamp`, most recently used last.
_cache: OrderedDict[tuple[Any, ...], OpenedDataset] = OrderedDict()
_cache_lock = fork_safe_lock(globals(), "_cache_lock")
#: The process whose entries :data:`_cache` holds (a forked child's differs until it takes them over).
_cache_owner = os.getpid()
#: How many opened datasets are kept (footer and index parsed) for repeated scans of the same files.
CACHE_SIZE = 32


def clear_cache() -> None:
    """Forget every opened dataset of this process and the checks its reads passed (the next open parses the files
    again, its reads check them again)."""
    with _cache_lock:
        _cache.clear()
    forget_ledgers()


def open_dataset(path: Path, registry: Registry | None = None, verify: bool | None = None) -> OpenedDataset:
    """The dataset at ``path``, opened (from the per-process cache when its files are unchanged), its chunk
    files in a chunk store's format opened by ``registry``'s stores; its tables are checked against the
    manifest's digests before they are parsed unless ``verify`` is False (None: unless OME_ARROW_CORE_VERIFY=0)."""
    checked = verify_enabled(verify)
    key = (*_stamp(path), registry, checked)
    with _cache_lock:
        if _cache_owner != key[1]:
            _adopt_inherited(key[1])
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    manifest = shared_manifest(path)  # parsed once per version: the scan that found the dataset parsed it
    check_manifest_members(path, manifest, MANIFEST)
    ours = manifest.get("ome_arrow_core") or {}
    version = int(ours.get("format_version", FORMAT_VERSION))
    if version > FORMAT_VERSION:
        raise FormatVersionError(
            f"{path} was written in ome-arrow-core dataset format {version}; this reader knows "
            f"up to {FORMAT_VERSION}. Upgrade: pip install -U ome-arrow-core"
        )
    if not (path / "images.parquet").exists():
        raise SchemaError(f"{path} is not an OME-Arrow dataset: images.parquet is missing")
    if not (path / "chunks.parquet").exists() and not (path / "index.parquet").exists():
        raise SchemaError(f"{path} is not an OME-Arrow dataset: it has neither chunks.parquet nor index.parquet")
    # only the tables the manifest lists (the old images or the new, never a mix), their footers checked: each
    # row group is checked as it is first read (see group_sums)
    parts = parts_of(path, manifest, checked, lazy=True)
    guard = TableGuard(path, manifest, checked)
    schema = images_schema(path, parts, footers_of(path, [p.images for p in parts], guard))
    repeated = [f.name for f in schema if f.name != "image_id" and pa.types.is_string(f.type)]
    images = ImageRows(path, parts, repeated, guard)  # footers only; a plate repeats its channels and units
    starts = aligned_starts(path, parts, images)
    if starts is not None and isinstance(ours.get("fragments"), list) and ours["fragments"]:
        opened = _aligned(path, manifest, parts, images, starts, registry, guard)
    else:
        guard.whole([p.index for p in parts])  # read whole
        opened = _whole(path, manifest, parts, images, registry)
    rows = (
        sum(int(s[-1]) for s in starts) if opened.aligned is not None and starts is not None else opened.index.num_rows
    )
    # checks another process of the same files (this one's parent) passed: not paid again here
    opened.ledger = ledger_for((key[0], *key[2:-2], checked), key[0], opened.fragment_names, opened.image_count, rows)
    with _cache_lock:
        _cache[key] = opened
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return opened


def _adopt_inherited(pid: int) -> None:
    """In a forked process (a DataLoader worker): take over the opened datasets inherited from the parent, whose
    row groups loaded there (copy-on-write) serve this process's reads; each is found only under the same stamp
    (the same versions of the tables). Dropped instead: one whose chunk files changed since it was opened (an
    append's, which no stamp covers; the checks its reads passed were on the old ones), one whose lock a thread of
    the parent held at the fork (it would never be released here) and a remote dataset's (its clients are the
    parent's). Call with the lock held."""
    global _cache_owner
    _cache_owner = pid
    for old in [k for k in _cache if k[1] != pid]:
        opened = _cache.pop(old)
        locks = [opened.lock, getattr(opened.images, "_lock", None), getattr(opened.packed, "_lock", None)]
        if any(lock is not None and lock.locked() for lock in locks) or _remote(opened.path):
            continue
        if opened.ledger is None or opened.ledger.versions != chunk_versions(old[0], opened.fragment_names):
            continue
        _cache[(old[0], pid, *old[2:])] = opened


def _remote(path: Path) -> bool:
    """Whether ``path`` is the local mirror of a remote dataset."""
    from ..remote import mirror_source

    return mirror_source(path) is not None


def open_files(path: Path, registry: Registry | None = None, load: np.ndarray | bool = False) -> None:
    """Open the dataset at ``path`` in this process now, as its reads will (see :func:`open_dataset`): processes
    forked later (a DataLoader's workers) share the checks their reads pass (see :mod:`.ledger`) and take over
    the opened dataset (see :func:`_adopt_inherited`). ``load``: image rows (True: all) whose images and index row
    groups are loaded now, the first :data:`~.image_groups.GROUPS_KEPT` groups at most, for those processes to
    inherit instead of each loading them again; a group that fails to load is left to the reads that need it, which
    raise (a damaged group stays damaged: see :meth:`~.aligned_index.AlignedIndex.rows_of`)."""
    opened = open_dataset(path, registry)
    if load is False:
        return
    images = opened.images
    for part, g in _groups_of(images, None if load is True else np.asarray(load, dtype=np.int64))[:GROUPS_KEPT]:
        try:
            images.group(part, g)
            if opened.aligned is not None:  # rows_of loads the index row group of images row group g
                opened.aligned.rows_of(int(images.first[part] + images.starts[part][g]))
        except Exception:  # damaged, missing, unreadable: the read that needs it raises, naming it
            continue


def _groups_of(images: ImageRows, rows: np.ndarray | None) -> list[tuple[int, int]]:
    """(part, images row group) of image rows ``rows`` (None: every row): parts in order, each one's groups in the
    order its rows meet them."""
    if rows is None:
        return [(p, g) for p, s in enumerate(images.starts) for g in range(len(s) - 1)]
    rows = rows[(rows >= 0) & (rows < len(images))]
    part = np.searchsorted(images.first, rows, side="right") - 1
    out: list[tuple[int, int]] = []
    for p in np.unique(part).tolist():
        groups = np.searchsorted(images.starts[p], rows[part == p] - int(images.first[p]), side="right") - 1
        out += [(int(p), int(g)) for g in groups[np.sort(unique_first(groups)[1])].tolist()]
    return out


def _aligned(
    path: Path,
    manifest: dict[str, Any],
    parts: list[Part],
    images: ImageRows,
    starts: list[np.ndarray],
    registry: Registry | None,
    guard: TableGuard,
) -> OpenedDataset:
    """A dataset whose index tables are aligned: footers now, index row groups as images need them."""
    from .aligned_index import AlignedIndex  # a plate's: a single image's open spares its modules
    from .chunk_footers import recorded_rows, spliced_fragment

    listed = [
        check_member(path, n, str(path / MANIFEST), "chunk file") for n in manifest["ome_arrow_core"]["fragments"]
    ]
    rows = sum(int(s[-1]) for s in starts)
    check_image_count(path, parts, len(images), rows)  # footers only, as a whole index's: before any group loads
    opened: dict[str, Fragment] = {}
    later: dict[int, Callable[[], Fragment]] = {}

    def fragment_rows(name: str) -> int:
        if listed_codec(path, manifest, name)[0]:  # read by page ranges: bounded by its size, no footer parsed
            return ranged_rows_bound(path / name)
        recorded = recorded_rows(path, manifest, name, guard.enabled)
        if recorded is not None:  # opened on first use, through its record (a located image never opens it)
            later[listed.index(name)] = lambda: open_later(name)
            return recorded
        # kept: its footer is parsed once (or, recorded and checks on, a row group's at a time)
        opened[name] = spliced_fragment(path, manifest, name, guard.enabled) or open_fragment(path, name, registry)
        return int(opened[name].group_rows.sum())

    def open_later(name: str) -> Fragment:
        """Chunks file ``name`` opened as the open would have, the index's rows checked again with its own count."""
        frag = spliced_fragment(path, manifest, name, guard.enabled) or open_fragment(path, name, registry)
        held[name] = int(frag.group_rows.sum())
        _check_held(path, rows, held, len(parts))
        return frag

    held = {n: fragment_rows(n) for n in listed}  # footers, records or sizes only: a lying row count fails small
    _check_held(path, rows, held, len(parts))
    lock = threading.Lock()
    aligned = AlignedIndex(path, parts, images, starts, listed, manifest, lock, guard)
    result = OpenedDataset(
        manifest,
        images,
        pa.table({}),
        lock,
        registry,
        path,
        images.part_of(),
        np.zeros(0, dtype=np.int32),
        listed,
        aligned.fragment_code,
        index_names=[p.index for p in parts],
        aligned=aligned,
    )
    result.files.update({listed.index(n): f for n, f in opened.items()})
    result.open_later.update(later)
    return result


def _check_held(path: Path, rows: int, held: dict[str, int], parts: int) -> None:
    """Raise DamagedFileError when the index's ``rows`` are more than the chunk files can hold (``held``: each one's
    rows, from its footer, its record or its size; every part's index names only its own chunks)."""
    if rows > sum(held.values()) * parts:
        raise DamagedFileError(
            f"{path}: the index lists {rows} chunks, but the chunk files it may name ({', '.join(held)}) hold "
            f"{sum(held.values())} rows; the index is damaged or lying. Restore it from a backup or rewrite the dataset"
        )


def _whole(
    path: Path, manifest: dict[str, Any], parts: list[Part], images: ImageRows, registry: Registry | None
) -> OpenedDataset:
    """A dataset whose index tables are read whole (older layouts, ome-arrow 0.1.0)."""
    ours = manifest.get("ome_arrow_core") or {}
    fragments: dict[str, Fragment] = {}

    def fragment_rows(name: str, ranged: bool = True) -> int:
        if (
            ranged and listed_codec(path, manifest, name)[0]
        ):  # read by page ranges: bounded by its size, no footer parsed
            return ranged_rows_bound(path / name)
        if name not in fragments:
            fragments[name] = open_fragment(path, name, registry)
        return int(fragments[name].group_rows.sum())

    try:  # footers only: lying row counts fail before any table is read
        check_table_rows(path, parts, fragment_rows)
    except DamagedFileError:
        if not (ours.get(PAGES_KEY) or {}):
            raise
        # files rewritten by other tools may not be what the manifest's page ranges say: their footers decide
        check_table_rows(path, parts, lambda name: fragment_rows(name, ranged=False))
    image_part = images.part_of()
    index, index_part = read_indexes(path, parts, dictionary=True)
    names, codes = dictionary_codes(index.column("fragment_path"), "chunks.parquet")
    names = [check_member(path, n, f"the index tables of {path}", "chunk file") for n in names]
    opened = OpenedDataset(
        manifest,
        images,
        index,
        threading.Lock(),
        registry,
        path,
        image_part,
        index_part,
        names,
        codes,
        index_names=[p.index for p in parts],
    )
    opened.files.update({names.index(n): f for n, f in fragments.items() if n in names})
    return opened
