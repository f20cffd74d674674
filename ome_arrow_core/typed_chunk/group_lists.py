"""The row-group lists of a large dataset in a sidecar file: the manifest stays the same size at a million images.

The manifest's per-row-group records (``table_groups_packed``, :mod:`.group_records`; ``chunk_footers_packed``,
:mod:`.chunk_footers`) grow with the image count: ~126 KB of a million images' 129 KB manifest, read and
JSON-decoded by every ``scan``. Writers now put them, when their JSON exceeds :data:`SPLIT_BYTES`, in a file beside
the manifest, ``_ome_arrow_groups.<XXH3-64 of its bytes>.json``, holding ``{"table_groups_packed": {...},
"chunk_footers_packed": {...}}`` exactly as the manifest held them. The manifest records, under
``ome_arrow_core.group_lists``::

    "group_lists": {"file": "_ome_arrow_groups.<digest>.json", "size": S, "digest": "<XXH3-64 of its S bytes>",
                    "tables": {"images.parquet": {"digest": "<the table's digest>", "rows": R, "groups": G}, ...}}

``tables`` is what a scan counts images by (:func:`~.group_records.recorded_rows`): ``scan`` and ``len`` never
open the file. The first read that needs a list (a table's footer checked at open, a chunks file read through its
one-group footers) reads it whole once per process and manifest: a file of another size than recorded, or a
missing one, is not used (the tables are then hashed whole and the chunks files' footers parsed whole, as for a
dataset written without the lists); a file of the recorded size whose bytes do not match ``digest`` is refused
(ChecksumError naming it); one that matches but is not such a JSON object is a damaged file. The name holds the
digest: a write never replaces the file an older manifest names (a kill between renames leaves each manifest with
its own file); a commit removes the file the manifest it replaced named. Readers that do not know the key
(ome-arrow 0.1.0, older ome-arrow-core) ignore it and the file: they check such a dataset's tables whole.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from ..boundary import open_regular
from ..checksums import ALGORITHM, ENV, FIX, hex_digest
from ..errors import ChecksumError, DamagedFileError
from ..fork_locks import fork_safe_lock
from .spec import GROUP_LISTS_FILE, GROUP_LISTS_KEY, MANIFEST

__all__ = [
    "LISTS_KEY",
    "SPLIT_BYTES",
    "LISTED_KEYS",
    "lists_of",
    "split_lists",
    "lists_file",
    "lists_damage",
    "drop_replaced",
]

#: Key of the sidecar's record in the manifest's ``ome_arrow_core`` section.
LISTS_KEY: Final[str] = GROUP_LISTS_KEY
#: The manifest keys whose records the sidecar holds.
LISTED_KEYS: Final[tuple[str, ...]] = ("table_groups_packed", "chunk_footers_packed")
#: Lists whose JSON is longer than this go to the sidecar (~130 bytes a row group of a plate's images, index and
#: chunks files, ~300 a table: a plate of ~25,000 images at the default 1,024 a row group, or ~10 appends; smaller
#: datasets keep them in the manifest, as before).
SPLIT_BYTES: Final[int] = 4096
_PREFIX: Final[str] = "_ome_arrow_groups."
#: A sidecar's name, exactly (what ``cleanup_dataset`` may remove when no manifest names it).
LISTS_FILE: Final = GROUP_LISTS_FILE
_lock = fork_safe_lock(globals(), "_lock")
#: Loaded sidecars by the manifest entry naming them: id -> (the entry, held so its id is not reused, the root,
#: the lists).
_LOADED: dict[int, tuple[Any, Path, Mapping[str, Any]]] = {}
_KEPT: Final[int] = 64


def lists_file(ours: Any) -> str | None:
    """The sidecar file the manifest section ``ours`` names (None: none, or an entry without a plain file name)."""
    entry = ours.get(LISTS_KEY) if isinstance(ours, Mapping) else None
    name = entry.get("file") if isinstance(entry, Mapping) else None
    return name if isinstance(name, str) and name.startswith(_PREFIX) and name == os.path.basename(name) else None


def _entry(root: Path, entry: Any) -> Mapping[str, Any]:
    """Sidecar record ``entry``, checked for shape; DamagedFileError (the manifest is damaged) otherwise."""
    ok = (
        isinstance(entry, Mapping)
        and lists_file({LISTS_KEY: entry}) is not None
        and type(entry.get("size")) is int
        and entry["size"] >= 0
        and isinstance(entry.get("digest"), str)
        and isinstance(entry.get("tables", {}), Mapping)
    )
    if not ok:
        raise DamagedFileError(
            f"{root} [{MANIFEST}]: ome_arrow_core.{LISTS_KEY} is {str(entry)[:300]!r}; expected {{file "
            f"({_PREFIX}<digest>.json), size, digest, tables}}: the manifest is damaged. Fix: {FIX}"
        )
    out: Mapping[str, Any] = entry
    return out


def lists_of(root: Path, manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    """Where the row-group records of the dataset at ``root`` (``manifest``) lie: its ``ome_arrow_core`` section, or
    the sidecar's object when the manifest names one ({} when that file is missing or of another size: no records,
    see the module). ChecksumError when the file's bytes do not match their digest, DamagedFileError when it or its
    record is malformed."""
    ours = manifest.get("ome_arrow_core") or {}
    if not isinstance(ours, Mapping) or LISTS_KEY not in ours:
        return ours if isinstance(ours, Mapping) else {}
    entry = ours[LISTS_KEY]
    hit = _LOADED.get(id(entry))
    if hit is not None and hit[0] is entry and hit[1] == root:
        return hit[2]
    found = _load(root, _entry(root, entry))
    with _lock:
        if len(_LOADED) >= _KEPT:
            _LOADED.clear()
        _LOADED[id(entry)] = (entry, root, found)
    return found


def _load(root: Path, entry: Mapping[str, Any]) -> Mapping[str, Any]:
    """The sidecar's object, checked (see :func:`lists_of`)."""
    name, size = str(entry["file"]), int(entry["size"])
    try:
        fd = open_regular(root, name)  # a FIFO refused, not waited on
    except FileNotFoundError:
        return {}
    try:
        if os.fstat(fd).st_size != size:
            return {}
        data = os.pread(fd, size, 0) if size else b""
    finally:
        os.close(fd)
    got = hex_digest(data) if len(data) == size else "short"
    if got != str(entry["digest"]).lower():
        raise ChecksumError(
            f"{root} [{name}]: its {size} bytes do not match the checksum the manifest records ({ALGORITHM}: recorded "
            f"{entry['digest']}, computed {got}); the row-group lists are damaged (or the manifest lies) and were not "
            f"used. Fix: {FIX}. To read it anyway pass verify=False or set {ENV}=0"
        )
    try:
        parsed = json.loads(data.decode("utf-8"))
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict) or not all(k in LISTED_KEYS and isinstance(v, dict) for k, v in parsed.items()):
        raise DamagedFileError(
            f"{root} [{name}]: it is not an object of {', '.join(LISTED_KEYS)}; the row-group lists are damaged"
        )
    return parsed


def split_lists(ours: dict[str, Any], write: Callable[[str, bytes], object]) -> str | None:
    """Move the row-group records of manifest section ``ours`` (:data:`LISTED_KEYS`) into a sidecar when their JSON
    exceeds :data:`SPLIT_BYTES`: ``write(name, bytes)`` writes the file (atomically, before the manifest); the
    section then records it under :data:`LISTS_KEY`. Returns the file's name (None: the records stay in ``ours``)."""
    ours.pop(LISTS_KEY, None)
    lists = {k: ours[k] for k in LISTED_KEYS if isinstance(ours.get(k), Mapping) and ours[k]}
    blob = json.dumps(lists, separators=(",", ":"), sort_keys=True).encode()
    if len(blob) <= SPLIT_BYTES:
        return None
    digest = hex_digest(blob)
    name = f"{_PREFIX}{digest}.json"
    write(name, blob)
    tables: dict[str, Any] = {}
    for table, e in (lists.get(LISTED_KEYS[0]) or {}).items():
        counts = {k: e.get(k) for k in ("digest", "rows", "groups")} if isinstance(e, Mapping) else {}
        if type(counts["rows"]) is int and type(counts["groups"]) is int and isinstance(counts["digest"], str):
            tables[table] = counts
    for k in lists:
        ours.pop(k)
    ours[LISTS_KEY] = {"file": name, "size": len(blob), "digest": digest, "tables": tables}
    return name


def drop_replaced(root: Path, before: Any, after: Any) -> None:
    """Once a manifest naming sidecar ``after``'s (section) replaced one naming ``before``'s, remove the file only
    the replaced one named (a reader still holding it then finds none: its tables are hashed whole)."""
    old, new = lists_file(before), lists_file(after)
    if old is not None and old != new:
        try:
            (root / old).unlink(missing_ok=True)
        except OSError:
            pass  # dead weight only


def lists_damage(root: Path, manifest: Mapping[str, Any]) -> list[tuple[Path, str]]:
    """What is wrong with the sidecar the manifest of the dataset at ``root`` names (file, problem; what ``verify``
    reports): missing, of another size, bytes that do not match their digest, not such an object."""
    ours = manifest.get("ome_arrow_core") or {}
    if not isinstance(ours, Mapping) or LISTS_KEY not in ours:
        return []
    try:
        entry = _entry(root, ours[LISTS_KEY])
        file = root / str(entry["file"])
        if not file.is_file():
            return [(file, "is listed in the manifest but missing")]
        if file.stat().st_size != entry["size"]:
            return [(file, f"holds {file.stat().st_size} bytes, the manifest records {entry['size']}")]
        lists_of(root, manifest)  # once per manifest read: what verify's reads of ``manifest`` use too
    except (DamagedFileError, OSError) as exc:
        return [(root, str(exc))]
    return []
