"""Image records: a fixed-width record per image beside an images table, so that one image costs a 4 KiB page.

At a million images a random ``ds[i]`` read a new images row group every time: its digest, pyarrow decoding the
per-image column chunks (~10-30 us each whatever their size), keys for the others (see :mod:`.group_chunks`). A
records file (``images.parquet`` -> ``images.records``) holds, for each image of a table whose images all have
pixel locators, what reading it needs: its locator's offset and checksum, where its ``image_id`` and ``name`` lie
in a heap of their UTF-8 bytes, and the number of its *variant*: the values of its other metadata columns, its
chunks file and its pixel bytes' length (:data:`VARIANT_COLUMNS`), listed once in the manifest. Layout (little-endian, pages of :data:`PAGE`
bytes)::

    record pages:  ceil(N / R) pages of R = PAGE // WIDTH records of WIDTH bytes (the last zero padded)
                   u64 pixels_offset, u64 pixels_checksum, u64 heap offset of image_id
                   (name follows it), u16 image_id bytes, u16 name bytes (0xFFFF: null), u32 variant
    heap pages:    the ids and names, one after another (zero padded to a page)
    page sums:     the XXH3-64 of each page above, u64 each

The manifest's ``ome_arrow_core.image_records`` entry of the table records the file's name and size, the count,
the page geometry, the XXH3-64 of the page sums (``sums``), the variants, and the images table's digests
(``images``): the records serve only the table they were made from. A reader checks the page sums against ``sums``
once, then each page it reads against its sum: manifest -> page sums -> page. See docs/format.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa

from ..checksums import hex_digest
from .image_rows import META_COLUMNS
from .spec import LOCATOR_COLUMNS

__all__ = [
    "RECORDS_KEY",
    "PAGE",
    "WIDTH",
    "NULL_NAME",
    "MAX_VARIANTS",
    "VARIANT_COLUMNS",
    "RECORD",
    "records_name",
    "build_records",
    "table_records",
    "entry_ok",
    "entry_known",
    "record_images",
]

#: Key of the records entries in the manifest's ``ome_arrow_core`` section.
RECORDS_KEY: Final[str] = "image_records"
#: Bytes of a page (the unit read and checked).
PAGE: Final[int] = 4096
#: Bytes of a record.
WIDTH: Final[int] = 32
#: Name length meaning a null name.
NULL_NAME: Final[int] = 0xFFFF
#: Tables with more distinct variants than this get no records (the manifest lists each).
MAX_VARIANTS: Final[int] = 64
#: The metadata columns a variant holds (an image's row is its variant's values, its id and name).
VARIANT_COLUMNS: Final[tuple[str, ...]] = (
    *(c for c in META_COLUMNS if c not in ("image_id", "name")),
    "pixels_file",
    "pixels_length",
)
#: Rows of an images table read at a time to make its records.
BATCH_ROWS: Final[int] = 65536
#: One record, as numpy reads it.
RECORD: Final = np.dtype(
    [
        ("offset", "<u8"),
        ("checksum", "<u8"),
        ("heap", "<u8"),
        ("id_len", "<u2"),
        ("name_len", "<u2"),
        ("variant", "<u4"),
    ]
)
assert RECORD.itemsize == WIDTH and PAGE % WIDTH == 0  # records never straddle pages


#: A records file's name, exactly (``images.records``, ``images-NNNNN.records``): what cleanup may remove and
#: remote mirrors never stand in for.
RECORDS_FILE: Final[re.Pattern[str]] = re.compile(r"^images(?:-\d{5,})?\.records$")


def records_name(images: str) -> str:
    """The records file of images table ``images`` (``images.parquet`` -> ``images.records``)."""
    return images.removesuffix(".parquet") + ".records"


def _codes(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, list[Any]]:
    """Each row's number among the distinct values of ``column`` (-1: null), and those values as Python values."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(column)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, encoded.dictionary.to_pylist()


def _variants(batch: pa.RecordBatch, variants: dict[tuple[Any, ...], int]) -> np.ndarray | None:
    """Each row's variant number (new variants added to ``variants``, numbered as first seen), or None past
    :data:`MAX_VARIANTS`."""
    n, have = batch.num_rows, set(batch.schema.names)
    code = np.zeros(n, np.int64)
    per_column: list[tuple[np.ndarray, list[Any]]] = []
    for name in VARIANT_COLUMNS:
        idx, distinct = _codes(batch.column(name)) if name in have else (np.full(n, -1, np.int64), [])
        per_column.append((idx, [*distinct, None]))  # code -1 -> the last: None
        code = code * (len(distinct) + 1) + (idx + 1)
        _, first, code = np.unique(code, return_index=True, return_inverse=True)  # dense again: no overflow
        if len(first) > MAX_VARIANTS:
            return None
    local = np.empty(len(first), np.int64)
    for k, row in enumerate(first.tolist()):
        key = tuple(values[int(idx[row])] for idx, values in per_column)
        local[k] = variants.setdefault(key, len(variants))
    return None if len(variants) > MAX_VARIANTS else local[code.reshape(-1)]


def _batch_records(batch: pa.RecordBatch, variants: dict[tuple[Any, ...], int]) -> tuple[np.ndarray, bytes] | None:
    """The records of the rows of ``batch`` (heap offsets from 0) and their heap bytes, or None (see
    :func:`build_records`)."""
    import pyarrow.compute as pc

    loc = [batch.column(c) for c in LOCATOR_COLUMNS]
    if any(c.null_count for c in loc) or batch.column("image_id").null_count:
        return None
    variant = _variants(batch, variants)
    if variant is None:
        return None
    ids = batch.column("image_id").cast(pa.large_binary())
    names = batch.column("name").cast(pa.large_binary())
    id_len = pc.binary_length(ids).to_numpy(zero_copy_only=False)
    name_len = pc.binary_length(names.fill_null(b"")).to_numpy(zero_copy_only=False)
    if int(id_len.max(initial=0)) >= NULL_NAME or int(name_len.max(initial=0)) >= NULL_NAME:
        return None
    joined = pc.binary_join_element_wise(ids, names.fill_null(b""), pa.scalar(b"", pa.large_binary()))
    offsets = np.frombuffer(joined.buffers()[1], np.int64, batch.num_rows + 1, joined.offset * 8)
    data = joined.buffers()[2]
    recs = np.zeros(batch.num_rows, RECORD)
    for f, column in (("offset", loc[1]), ("checksum", loc[3])):
        arr = column.to_numpy(zero_copy_only=False)
        recs[f] = arr.view(np.uint64) if arr.dtype == np.int64 else arr.astype(np.uint64)
    recs["heap"] = offsets[:-1] - offsets[0]
    recs["id_len"] = id_len
    recs["name_len"] = np.where(names.is_null().to_numpy(zero_copy_only=False), NULL_NAME, name_len)
    recs["variant"] = variant
    return recs, data.to_pybytes()[int(offsets[0]) : int(offsets[-1])] if data is not None else b""


#: The columns an images table needs for records (without them its images have no locators: no records).
_NEEDED: Final = ("image_id", "name", *LOCATOR_COLUMNS)


def build_records(batches: Iterable[pa.RecordBatch], rows: int) -> tuple[list[Any], dict[str, Any]] | None:
    """The records file of the images table of ``rows`` rows that ``batches`` hold (in order), as pieces to write one
    after another, and the fields of its manifest entry that depend on it alone; or None when it gets none (an image
    without a locator, more than :data:`MAX_VARIANTS` variants, an id or name of 64 KiB or more, a metadata column of
    another type than text or numbers, no rows)."""
    import xxhash

    plain = (pa.types.is_string, pa.types.is_large_string, pa.types.is_integer, pa.types.is_floating)
    per_page = PAGE // WIDTH
    record_pages = -(-rows // per_page)
    recs = np.zeros(record_pages * per_page, RECORD)  # the record pages, filled batch by batch
    variants: dict[tuple[Any, ...], int] = {}
    heap: list[bytes] = []
    at = n = 0
    for batch in batches:
        have = set(batch.schema.names)
        if not have.issuperset(_NEEDED) or not all(
            any(ok(batch.schema.field(c).type) for ok in plain) for c in VARIANT_COLUMNS if c in have
        ):
            return None  # values the manifest's JSON would not give back as the table's reader does
        got = _batch_records(batch, variants)
        if got is None or n + len(got[0]) > rows:
            return None
        got[0]["heap"] += np.uint64(at)
        recs[n : n + len(got[0])] = got[0]
        heap.append(got[1])
        at += len(got[1])
        n += len(got[0])
    if n == 0 or n != rows:
        return None
    heap_pages = b"".join(heap)
    heap_pages += bytes(-len(heap_pages) % PAGE)
    body = [recs.view(np.uint8).data, memoryview(heap_pages)]
    sums = [xxhash.xxh3_64_intdigest(part[p : p + PAGE]) for part in body for p in range(0, len(part), PAGE)]
    tail = np.array(sums, np.uint64).astype("<u8").tobytes()
    fields = {
        "count": n,
        "width": WIDTH,
        "page": PAGE,
        "record_pages": record_pages,
        "heap_bytes": at,
        "size": recs.nbytes + len(heap_pages) + len(tail),
        "sums": hex_digest(tail),
        "columns": list(VARIANT_COLUMNS),
        "variants": [list(key) for key in variants],
    }
    return [*body, tail], fields


def table_records(root: Path, images: str) -> tuple[list[Any], dict[str, Any]] | None:
    """:func:`build_records` of images table ``root / images``, read :data:`BATCH_ROWS` rows at a time (only the
    columns records hold)."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(root / images)
    names = set(pf.schema_arrow.names)
    if not names.issuperset(_NEEDED):
        return None  # no locators (images of several chunks): build_records' first check, no row read
    wanted = [c for c in dict.fromkeys((*_NEEDED, *VARIANT_COLUMNS)) if c in names]
    rows = pf.metadata.num_rows
    return build_records(pf.iter_batches(batch_size=BATCH_ROWS, columns=wanted, use_threads=False), rows)


def record_images(
    root: Path,
    images: Sequence[str],
    tables: Mapping[str, list[str]],
    previous: Any,
    place: Callable[[Path], AbstractContextManager[Path]],
) -> dict[str, Any]:
    """The records entries of images tables ``images`` for the manifest (``tables``: the table digests it records
    now): an entry of ``previous`` (the manifest's before) made from the table as it is now is kept, the others are
    written (through ``place``: where to write a file, see ``write_steps.placed``); tables that get none are left
    out."""
    old = previous if isinstance(previous, Mapping) else {}
    out: dict[str, Any] = {}
    for name in images:
        digests = tables.get(name)
        if digests is None:
            continue
        kept = old.get(name)
        if (
            kept is not None
            and entry_ok(kept)
            and entry_known(kept)
            and kept["images"] == digests
            and _sized(root, kept)
        ):
            out[name] = kept
            continue
        built = table_records(root, name)
        if built is None:
            continue
        with place(root / records_name(name)) as tmp, open(tmp, "wb") as f:
            for piece in built[0]:
                f.write(piece)
        out[name] = {"file": records_name(name), **built[1], "images": list(digests)}
    return out


def _sized(root: Path, entry: Mapping[str, Any]) -> bool:
    """Whether the records file of ``entry`` is there, of the size it records."""
    try:
        return bool((root / str(entry["file"])).stat().st_size == entry["size"])
    except OSError:
        return False


def entry_ok(entry: Any) -> bool:
    """Whether ``entry`` has the shape of a records entry (values checked against the file when read)."""
    if not isinstance(entry, Mapping):
        return False
    ints = ("count", "width", "page", "record_pages", "heap_bytes", "size")
    return (
        all(isinstance(entry.get(k), int) and not isinstance(entry.get(k), bool) for k in ints)
        and isinstance(entry.get("file"), str)
        and "/" not in entry["file"]
        and isinstance(entry.get("sums"), str)
        and isinstance(entry.get("columns"), list)
        and isinstance(entry.get("variants"), list)
        and all(isinstance(v, list) and len(v) == len(entry["columns"]) for v in entry["variants"])
        and isinstance(entry.get("images"), list)
    )


def entry_known(entry: Mapping[str, Any]) -> bool:
    """Whether records entry ``entry`` (:func:`entry_ok`) has this version's layout (record width, page size,
    variant columns): records of another layout are not used, as a table without records."""
    return bool(entry["width"] == WIDTH and entry["page"] == PAGE and entry["columns"] == list(VARIANT_COLUMNS))


def records_damage(root: Path, manifest: Mapping[str, Any], images: Sequence[str]) -> list[tuple[Path, str]]:
    """What is wrong with the records of images tables ``images`` (file, problem): each listed records file is
    made anew from its table and compared with the file and its entry, byte for byte (what ``verify`` reports)."""
    ours = manifest.get("ome_arrow_core") or {}
    listed = ours.get(RECORDS_KEY) if isinstance(ours, Mapping) else None
    if listed is None:
        return []
    if not isinstance(listed, Mapping):
        return [(root, f"ome_arrow_core.{RECORDS_KEY} is not a mapping of tables")]
    tables = ours.get("tables") or {}
    out: list[tuple[Path, str]] = []
    for name in images:
        entry = listed.get(name)
        if entry is None:
            continue
        if not entry_ok(entry):
            out.append((root, f"ome_arrow_core.{RECORDS_KEY}[{name!r}] is not a records entry"))
            continue
        if not entry_known(entry) or not isinstance(tables, Mapping) or tables.get(name) != entry["images"]:
            continue  # of another layout, or made from another version of the table: not used by readers
        file = root / str(entry["file"])
        if not file.is_file():
            out.append((file, "is listed in the manifest but missing"))
            continue
        built = table_records(root, name)
        fields = {k: v for k, v in entry.items() if k not in ("file", "images")}
        if built is None or file.read_bytes() != b"".join(built[0]) or not json_equal(fields, built[1]):
            out.append((file, f"does not hold the records of {name} that its manifest entry describes"))
    return out


def json_equal(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` are equal once both go through JSON (as a manifest holds them)."""
    import json

    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
