"""The steps every write takes, in commit order: chunk files, then the images and index tables, then the
manifest (replacing it commits the write)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..checksums import ALGORITHM as CHECKSUM
from ..safe_write import SENTINEL, SENTINEL_TEXT, atomic_path
from .aligned_index import write_aligned_index
from .chunk_footers import footer_records, record_chunk_footers, set_footer_records
from .fragments import PARQUET, chunk_store, format_version_for, write_fragment
from .group_lists import drop_replaced, lists_of, split_lists
from .group_records import group_records, set_group_records
from .group_sums import record_groups
from .image_batches import ImageRowBatches
from .image_records import RECORDS_KEY, record_images
from .locators import LOCATORS_KEY, with_locators
from .packing import ChunkPacker
from .page_index import MANIFEST_KEY as PAGES_KEY
from .page_index import manifest_entry
from .spec import LAYOUT_NAME, MANIFEST
from .table_files import table_sink
from .table_sums import TABLES_KEY, record, recorded
from .tables import BASE, Part, statistics_columns
from .value_index import VALUES_KEY, record_values

if TYPE_CHECKING:
    from ..registry import Registry

__all__ = ["fragment_names", "placed", "write_fragments", "write_tables", "write_manifest"]


def fragment_names(used: set[str], suffix: str, first: str | None = None) -> Iterator[str]:
    """Names for new chunks files: ``first`` if given, then ``chunks-NNNNN<suffix>`` with NNNNN not in ``used``."""
    if first is not None:
        yield first
    taken = {Path(n).name.split(".", 1)[0] for n in [*used, *([first] if first else [])]}
    k = 1
    while True:
        if f"chunks-{k:05d}" not in taken:
            yield f"chunks-{k:05d}{suffix}"
        k += 1


def write_fragments(
    tables: Iterator[pa.Table],
    fw: ChunkPacker,
    names: Iterator[str],
    chunk_format: str,
    place: Callable[[str], contextlib.AbstractContextManager[Path]],
    *,
    registry: Registry,
    **options: Any,
) -> list[str]:
    """Write ``tables`` into chunks files named from ``names``; returns the names written.

    A chunk store with ``max_file_bytes`` gets a new file once a file holds that many pixel
    bytes (its writer's memory grows with the file); Parquet gets one file. ``place(name)``
    gives the path to write each file to; ``registry`` gives the chunk store.
    """
    limit = None if chunk_format == PARQUET else chunk_store(chunk_format, registry).max_file_bytes
    fw.max_file_bytes = limit
    written: list[str] = []
    done = False
    while not done:
        name = next(names)
        fw.start(name)
        first = next(tables, None)
        if first is None:
            break
        done = True

        def until_full(head: pa.Table = first) -> Iterator[pa.Table]:
            nonlocal done
            yield head
            while limit is None or fw.file_bytes < limit:
                table = next(tables, None)
                if table is None:
                    return
                yield table
            done = False

        with place(name) as path:
            ranges = write_fragment(
                until_full(), path, chunk_format, registry=registry, table_groups=fw.share, **options
            )
        if ranges is not None:
            fw.pages[name] = ranges
            fw.page_files[name] = manifest_entry(ranges)
        written.append(name)
    return written


def placed(out: Path, fresh: bool) -> contextlib.AbstractContextManager[Path]:
    """Where to write file ``out``: itself in a ``fresh`` directory (a temporary no reader sees: renaming the
    directory into place commits every file in it at once), else a temporary that replaces it atomically."""
    return contextlib.nullcontext(out) if fresh else atomic_path(out)


def _write_parquet(table: pa.Table, out: Path, fresh: bool, **options: Any) -> None:
    with placed(out, fresh) as tmp, table_sink(tmp) as sink:
        pq.write_table(table, sink, write_page_checksum=True, **options)


def write_tables(
    root: Path,
    rows: ImageRowBatches,
    index: pa.Table,
    images_per_group: int,
    part: Part = BASE,
    existing: pa.Schema | None = None,
    fresh: bool = False,
    located: Sequence[str] = (),
) -> dict[str, dict[str, int]]:
    """Write the images and index tables of ``part`` (index first: no image is listed without its chunks);
    ``fresh``: into a directory no reader sees yet (see :func:`placed`). The one-chunk images whose chunk lies
    in one of the chunks files ``located`` (just written, uncompressed Parquet) get pixel locators in their
    images rows (see :mod:`.locators`); returns the manifest entries of the files located.

    The index is written aligned (see :mod:`.aligned_index`): its row group g holds the chunk rows of the
    images of images row group g, so opening one image reads one row group of each table.
    """
    images, entries = with_locators(root, rows.table(existing), index, located)
    per_group = max(1, images_per_group)
    write_aligned_index(index, images.column("image_id").to_pylist(), per_group, root / part.index, atomic=not fresh)
    # statistics only where filters and readers use them: a plate's footer stays small
    _write_parquet(
        images,
        root / part.images,
        fresh,
        row_group_size=per_group,
        write_statistics=statistics_columns(images.schema),
    )
    return entries


def write_manifest(
    root: Path,
    previous: dict[str, Any],
    first: Mapping[str, Any] | None,
    fw: ChunkPacker,
    fragments: list[str],
    rows_per_group: int,
    chunk_format: str,
    image_count: int,
    appends: Sequence[Part] = (),
    fresh: bool = False,
    located: Mapping[str, Any] | None = None,
) -> None:
    """Replace the manifest (atomically: this commits a write): counts, chunk files and append tables
    (``first``: the first new image's images-table row, None without new images). ``fresh``: ``root`` is a
    directory no reader sees yet, whose rename into place commits the write (see :func:`placed`).

    The ``SENTINEL`` text file goes in first, if missing (datasets written before it get it on append).
    ``located``: the chunks files whose pixel locators this write wrote (:func:`write_tables`), added to those
    the manifest lists.
    """
    if not (root / SENTINEL).is_file():
        with placed(root / SENTINEL, fresh) as tmp:
            tmp.write_text(SENTINEL_TEXT)
    manifest = dict(previous) or {"type": "ome.arrow", "version": "0.1.0", "layout": LAYOUT_NAME}
    manifest["image_count"] = image_count
    manifest["chunk_count"] = fw.next_id
    if "choice" not in manifest and first is not None:
        manifest["choice"] = {
            "layout": "tile",
            "chunk_shape": [first[f"chunk_{a}"] for a in "tczyx"],
            "compression": fw.codec,
            "rationale": "ome-arrow-core default: see docs/format.md",
        }
    ours = dict(manifest.get("ome_arrow_core") or {})
    ours.update(
        {
            "format_version": format_version_for(fragments, len(appends)),
            "checksum": CHECKSUM,
            "rows_per_group": ours.get("rows_per_group", rows_per_group),
            "chunk_format": ours.get("chunk_format", chunk_format),
            "fragments": fragments,
        }
    )
    pages = {**(ours.get(PAGES_KEY) or {}), **{n: e for n, e in fw.page_files.items() if n in fragments}}
    if pages:
        ours[PAGES_KEY] = pages
    locators = {n: e for n, e in {**(ours.get(LOCATORS_KEY) or {}), **(located or {})}.items() if n in fragments}
    ours.pop(LOCATORS_KEY, None)
    if locators:
        ours[LOCATORS_KEY] = locators
    ours.pop("appends", None)
    if appends:
        ours["appends"] = [p.to_json() for p in appends]
    # the tables' digests: checked before pyarrow parses them (tables listed before keep theirs)
    held: dict[str, bytes] = {}  # the bytes of the tables hashed, read back once: their segments are measured on them
    ours[TABLES_KEY] = record(
        root, [n for p in (BASE, *appends) for n in (p.images, p.index)], recorded(root, previous), held
    )
    kept = kept_lists(root, previous)  # the previous records (in its manifest or sidecar): kept where unchanged
    groups = record_groups(root, ours[TABLES_KEY], group_records(kept), held)
    held.clear()
    set_group_records(ours, groups)  # packed (see group_records)
    # the value index of each images table (a mapping filter reads the rows of the values it names)
    values = record_values(root, ours[TABLES_KEY], (previous.get("ome_arrow_core") or {}).get(VALUES_KEY))
    ours.pop(VALUES_KEY, None)
    if values:
        ours[VALUES_KEY] = values
    # a fixed-width record per image (its metadata and pixel locator in a checked 4 KiB page: image_records)
    records = record_images(
        root,
        [p.images for p in (BASE, *appends)],
        ours[TABLES_KEY],
        ours.pop(RECORDS_KEY, None),
        lambda out: placed(out, fresh),
    )
    if records:
        ours[RECORDS_KEY] = records
    # the chunks files read through their footers (packed small images): a row group's footer at a time
    footers = record_chunk_footers(root, [n for n in fragments if n not in pages], footer_records(kept))
    set_footer_records(ours, footers)
    split_lists(ours, lambda name, blob: _write_bytes(root / name, blob, fresh))  # a plate's lists: a sidecar
    manifest["ome_arrow_core"] = ours
    with placed(root / MANIFEST, fresh) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2))
    drop_replaced(root, previous.get("ome_arrow_core"), ours)


def _write_bytes(out: Path, blob: bytes, fresh: bool) -> None:
    with placed(out, fresh) as tmp:
        tmp.write_bytes(blob)


def kept_lists(root: Path, previous: Mapping[str, Any]) -> Mapping[str, Any]:
    """Where the row-group records of manifest ``previous`` lie (see group_lists.lists_of); {} when its sidecar
    cannot be read (the tables and chunks files are then measured anew)."""
    from ..errors import DamagedFileError, StorageError

    try:
        return lists_of(root, previous)
    except (DamagedFileError, StorageError, OSError):
        return {}
