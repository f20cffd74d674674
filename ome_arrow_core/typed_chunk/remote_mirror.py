"""Opening a typed-chunk dataset directory on object storage or a web server: a local mirror of its metadata.

:func:`mirror_dataset` reads the manifest object first (a writer puts it last, so every object it
names exists), lists the directory (object stores; a web server cannot list: the names come from
the manifest and the index tables), downloads the manifest and the images and index tables (one
GET each) into a directory of this process's temporary mirror, and puts an empty placeholder of
the right size in place of each chunk file (:mod:`.chunks`), and copies the value indexes the manifest names
(image records are left out: ``ds[i]`` reads the images table): pixels are then fetched by
ranged GETs of exactly the pages a selection needs. Every local check (digests of the tables,
row counts, page ranges against the object sizes, chunk checksums) runs unchanged.

A mirror is keyed by the URI and the manifest's bytes: scanning the same unchanged dataset again
costs the manifest GET and one listing; an append or an overwrite (a new manifest) makes a new
mirror. Mirrors live in a temporary directory removed when the process that made them exits.
"""

from __future__ import annotations

import atexit
import errno
import hashlib
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from ..boundary import reading
from ..errors import DamagedFileError, SchemaError, show_as
from ..location import Location
from ..remote import MirrorSource, get_range, mirror_source, write_sidecar
from .image_records import RECORDS_FILE
from .spec import GROUP_LISTS_FILE
from .value_index import VALUES_FILE, VALUES_KEY

__all__ = ["mirror_dataset", "is_dataset_name", "listing_of", "MANIFEST"]

MANIFEST = "_ome_arrow_dataset.json"

#: The text file our writers put first (ome-arrow 0.1.0 writes none): without a manifest, an unfinished write.
SENTINEL = "THIS-IS-AN-OME-ARROW-DATASET.txt"
#: An append's images table.
_APPENDED = re.compile(r"images-(\d{5,})\.parquet")

_root_lock = threading.Lock()
_root: tuple[int, Path] | None = None


def _mirror_root() -> Path:
    """This process's directory of mirrors (made on first use, removed at exit by the process that made it)."""
    global _root
    with _root_lock:
        if _root is None or _root[0] != os.getpid():
            path = Path(tempfile.mkdtemp(prefix="ome-arrow-remote-"))
            pid = os.getpid()
            _root = (pid, path)
            atexit.register(lambda: shutil.rmtree(path, ignore_errors=True) if os.getpid() == pid else None)
        return _root[1]


def _is_http(loc: Location) -> bool:
    return loc.uri.startswith(("http://", "https://"))


def _get(loc: Location, what: str) -> bytes:
    """The whole object at ``loc`` in one GET (pyarrow's S3 without boto3: a lookup and a GET)."""
    with reading(loc.uri, None, what):
        return get_range(loc)


def _manifest(loc: Location) -> bytes | None:
    """The manifest object's bytes, None when there is none."""
    try:
        return _get(loc.join(MANIFEST), "reading the manifest")
    except OSError as exc:  # StorageError "missing", FileNotFoundError
        if exc.errno == errno.ENOENT or (isinstance(exc, FileNotFoundError) and exc.errno is None):
            return None
        raise


def listing_of(loc: Location, folders: list[str] | None = None) -> dict[str, int] | None:
    """Name -> size of the objects directly under ``loc`` (None: a web server, which cannot list); the names of the
    folders (key prefixes) directly under it are added to ``folders`` when one is given."""
    import pyarrow.fs as pafs

    if _is_http(loc):
        return None
    with reading(loc.uri, None, "listing the dataset"):
        infos = loc.fs.get_file_info(pafs.FileSelector(loc.path, allow_not_found=True, recursive=False))
    if folders is not None:
        folders.extend(sorted(posix_name(i.path) for i in infos if i.type == pafs.FileType.Directory))
    return {posix_name(i.path): int(i.size) for i in infos if i.type == pafs.FileType.File and i.size is not None}


def posix_name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _looks_like_dataset(listing: dict[str, int]) -> bool:
    """Whether a listing holds a typed-chunk dataset (its manifest, or the base tables ome-arrow 0.1.0 writes)."""
    return MANIFEST in listing or "chunks.parquet" in listing or {"images.parquet", "index.parquet"} <= set(listing)


def mirror_dataset(loc: Location) -> Path | None:
    """The local mirror of the remote dataset directory at ``loc`` (None: ``loc`` holds no dataset)."""
    listing = listing_of(loc)  # object stores: the listing says whether there is a dataset (one request)
    if listing is not None and not _looks_like_dataset(listing):
        return None
    manifest = _manifest(loc)
    if manifest is None and listing is not None and SENTINEL in listing:
        return None  # our sentinel without a manifest: a write that has not committed (or was killed)
    if manifest is None and listing is None:
        return None  # a web server: the manifest decides (ome-arrow 0.1.0 datasets without one need a listing)
    if manifest is not None and listing is not None and MANIFEST not in listing:
        listing = listing_of(loc)  # a writer committed between the listing and the manifest: list its objects
    key = hashlib.sha256(repr((loc.uri, loc.path, manifest, sorted((listing or {}).items()))).encode()).hexdigest()
    target = _mirror_root() / key[:40]
    if not target.exists():
        _build(loc, manifest, listing, target)
    if not (target / ".complete").exists():
        raise DamagedFileError(f"{loc.uri}: the local mirror {target} is incomplete; open the dataset again")
    if mirror_source(target) is None:
        raise DamagedFileError(f"{loc.uri}: the local mirror {target} lost its sidecar; open the dataset again")
    show_as(str(target), loc.uri)  # errors naming its files name the dataset's objects
    return target


def _build(loc: Location, manifest: bytes | None, listing: dict[str, int] | None, target: Path) -> None:
    """Fill a new directory with the metadata of ``loc`` and chunk placeholders, then move it to ``target``."""
    work = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
    try:
        if manifest is not None:
            (work / MANIFEST).write_bytes(manifest)
        copied, chunks = _plan(loc, manifest, listing)
        for name in copied:
            try:
                (work / name).write_bytes(_get(loc.join(name), f"downloading {name}"))
            except OSError:
                if not VALUES_FILE.fullmatch(name):
                    raise
                # a value index that cannot be fetched is left out: filters read the footers (checked) instead
        if listing is None:  # a web server: the chunk files the index tables name, sized by the manifest or a lookup
            chunks = _indexed_chunks(loc, work, manifest)
        for name, size in chunks.items():
            with open(work / name, "wb") as f:
                f.truncate(size)  # a sparse placeholder: its size, no bytes on disk
        source = MirrorSource(loc, dict(chunks))
        write_sidecar(work, source)
        (work / ".complete").touch()
        try:
            os.rename(work, target)
        except OSError:
            if not (target / ".complete").exists():  # another thread won with a complete mirror: use it
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _plan(loc: Location, manifest: bytes | None, listing: dict[str, int] | None) -> tuple[list[str], dict[str, int]]:
    """(objects to copy, objects stood in for by placeholders, with their sizes) of the dataset at ``loc``.

    Copied: the tables the manifest lists, and (object stores) append images tables it does not list whose
    append left no pending marker (the reader reads their ids to tell a lost manifest from a merged append).
    """
    import json

    from ..safe_write import pending_name
    from .tables import BASE, appends_of

    try:
        parsed = json.loads((manifest or b"{}").decode("utf-8"))
    except ValueError as exc:
        raise DamagedFileError(f"{loc.uri}/{MANIFEST} is not valid UTF-8 JSON ({exc}); the dataset is damaged") from exc
    if not isinstance(parsed, dict):
        raise DamagedFileError(f"{loc.uri}/{MANIFEST} holds a {type(parsed).__name__}, expected a JSON object")
    parts = [BASE, *appends_of(parsed, Path(loc.path))]
    copied = [n for p in parts for n in (p.images, p.index)]
    # the value indexes the manifest names (our exact names only: plain file names), a GET each: a few bytes an image
    ours = parsed.get("ome_arrow_core")
    section = ours.get(VALUES_KEY) if isinstance(ours, dict) else None
    for entry in section.values() if isinstance(section, dict) else ():
        name = entry.get("file") if isinstance(entry, dict) else None
        if isinstance(name, str) and VALUES_FILE.fullmatch(name) and name not in copied:
            copied.append(name)
    if listing is None:
        return copied, {}
    for name in listing:
        hit = _APPENDED.fullmatch(name)
        if hit is not None and name not in copied and pending_name(int(hit.group(1))) not in listing:
            copied.append(name)
    copied = [n for n in copied if n in listing]  # a missing table: the reader names it
    # value index, row-group lists and image records files (see value_index, group_lists, image_records) are never
    # stood in for: a placeholder of zeros would fail their digests (ds[i] refused), while a missing one leaves filters
    # to the footers, the tables (copied whole) to be hashed whole and ds[i] to the images table (records are not
    # copied: a GET of 55 MiB at a million images)
    derived = (VALUES_FILE, RECORDS_FILE, GROUP_LISTS_FILE)
    return copied, {
        n: s
        for n, s in listing.items()
        if n != MANIFEST and n not in copied and not any(p.fullmatch(n) for p in derived)
    }


def _indexed_chunks(loc: Location, work: Path, manifest: bytes | None) -> dict[str, int]:
    """The chunk files the copied index tables name, with their sizes (from the manifest's page ranges, else
    one lookup each)."""
    import json

    import pyarrow.parquet as pq

    names: set[str] = set()
    for file in sorted(work.glob("index*.parquet")):
        with reading(work, file.name, "reading the index table"):
            column = pq.read_table(file, columns=["fragment_path"]).column("fragment_path")
        names.update(str(v) for v in column.unique().to_pylist() if v is not None)
    names = names or {"chunks.parquet"}
    parsed = json.loads(manifest or b"{}")  # parsed once already by _plan: a JSON object
    ours = parsed.get("ome_arrow_core") if isinstance(parsed.get("ome_arrow_core"), dict) else {}
    found = ours.get("page_ranges")
    listed: dict[str, Any] = found if isinstance(found, dict) else {}
    sizes: dict[str, int] = {}
    for name in sorted(names):
        if "/" in name or name.startswith("."):
            raise SchemaError(f"{loc.uri}: the index names chunk file {name!r}, not a plain name in the dataset")
        entry = listed.get(name)
        if isinstance(entry, dict) and isinstance(entry.get("bytes"), int):
            sizes[name] = int(entry["bytes"])
            continue
        with reading(loc.uri, name, "looking up the chunks file"):
            info = loc.fs.get_file_info(loc.join(name).path)
        if info.size is None:
            raise DamagedFileError(f"{loc.uri} lists chunk file {name!r} in its index, but it is missing")
        sizes[name] = int(info.size)
    return sizes


def is_dataset_name(loc: Location) -> bool:
    """Whether a web server's ``loc`` may name a dataset directory (a ``.parquet`` name or one without a suffix):
    a web server cannot say whether a name is a directory, so its manifest is asked for."""
    name = loc.name.lower()
    return name.endswith((".parquet", ".pq")) or "." not in name
