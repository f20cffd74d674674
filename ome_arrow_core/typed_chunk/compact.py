"""Compacting a typed-chunk dataset: its appended files merged into chunks.parquet, images.parquet, index.parquet.

ome-arrow 0.1.0 reads only those three, so images appended into ``chunks-NNNNN.parquet``,
``images-NNNNN.parquet`` and ``index-NNNNN.parquet`` are invisible to it until the dataset
is compacted.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..boundary import is_within, reading, require_member
from ..errors import DamagedFileError, NotFoundError, SchemaError
from ..safe_write import lock, make_temp, pending_name, remove_tree, replace_all
from ..uris import local_path
from . import packing
from .aligned_index import write_aligned_index
from .checks import check_manifest_members, check_member
from .chunk_footers import record_chunk_footers, set_footer_records
from .fragments import chunk_writer, format_version_for
from .group_lists import drop_replaced, split_lists
from .group_records import set_group_records
from .group_sums import swapped_groups
from .image_records import RECORDS_KEY, record_images, records_name
from .locators import LOCATORS_KEY, with_locators
from .page_index import MANIFEST_KEY as PAGES_KEY
from .spec import BASE_CHUNKS, FILE_METADATA, IMAGES_SCHEMA, INDEX_SCHEMA, MANIFEST, is_dataset_dir, read_manifest
from .table_sums import TABLES_KEY, accept_both, restore_manifest, swapped_digest
from .tables import BASE, Part, appends_of, own_rows, parts_of, read_images, read_indexes, statistics_columns
from .value_index import VALUES_KEY, record_values

__all__ = ["compact_dataset"]

#: Images per row group of a merged images.parquet when the tables do not show theirs (write_dataset's default).
_IMAGES_PER_GROUP = 1024
#: Parquet's codec names -> the ``compression`` option that writes them.
_CODECS = {
    "UNCOMPRESSED": None,
    "SNAPPY": "snappy",
    "GZIP": "gzip",
    "BROTLI": "brotli",
    "ZSTD": "zstd",
    "LZ4": "lz4",
    "LZ4_RAW": "lz4",
}


def compact_dataset(path: str | os.PathLike[str]) -> list[str]:
    """Merge the chunk files of the dataset at ``path`` into one chunks.parquet, and its tables into
    images.parquet and index.parquet, atomically.

    Row groups are copied in order, a batch at a time (memory holds one batch of pixels, not
    the dataset), so chunk ids, row groups (``rows_per_group``) and compression are kept (the
    codec, at its default level); the images tables of appends are joined, in order, after
    images.parquet. The new chunks.parquet, index.parquet, images.parquet and manifest
    (format_version 1) are written beside the old ones and swapped in, in that order; a
    failure leaves the dataset as it was. Returns the chunk files merged, in order; a dataset
    held in chunks.parquet alone, without appended tables, is left untouched (returns ``[]``).
    """
    root = local_path(path, "compact")
    if not root.exists():
        raise NotFoundError(f"no such dataset directory: {str(root)!r}")
    if not is_dataset_dir(root):
        raise SchemaError(
            f"cannot compact {root}: it is not an OME-Arrow dataset directory (it has neither {MANIFEST} "
            f"nor {BASE_CHUNKS})"
        )
    with lock(root):  # appends wait; they would write into files being merged
        manifest = read_manifest(root)
        check_manifest_members(root, manifest, MANIFEST)  # merged files are deleted: never one outside the dataset
        appended = appends_of(manifest)
        parts = parts_of(root, manifest)
        images, image_part = read_images(root, parts)
        index, index_part = read_indexes(root, parts)
        index = index.select(INDEX_SCHEMA.names).cast(INDEX_SCHEMA)
        at = INDEX_SCHEMA.get_field_index("fragment_path")
        index = index.set_column(at, INDEX_SCHEMA.field(at), pc.fill_null(index.column(at), BASE_CHUNKS))
        listed = sorted({str(v) for v in index.column("fragment_path").unique().to_pylist()})
        # index rows of images not in their own part's images were left by an interrupted append
        index = own_rows(images, image_part, index, index_part)
        frag = index.column("fragment_path").dictionary_encode().combine_chunks()
        names = [check_member(root, str(v), str(root / BASE.index), "chunk file") for v in frag.dictionary.to_pylist()]
        if names in ([], [BASE_CHUNKS]) and not appended:
            return []
        other = [n for n in names if not n.lower().endswith(".parquet")]
        if other:
            raise SchemaError(
                f"cannot compact {root}: chunk files {other} are not Parquet, and compaction copies Parquet row "
                "groups; rewrite the dataset with Parquet chunks instead: "
                "write_dataset(OMEArrowDataset.scan(path), new_path, chunk_format='parquet')"
            )
        order = sorted(
            names, key=lambda n: (n != BASE_CHUNKS, n)
        )  # chunks.parquet first: its row groups keep their ids
        codes = frag.indices.to_numpy(zero_copy_only=False)
        groups = index.column("row_group_id").to_numpy()
        # row groups after the last one the index uses (left by an interrupted compaction) are dropped
        keep = {n: int(groups[codes == names.index(n)].max()) + 1 for n in order}
        numbers = [re.fullmatch(r"images-(\d+)\.parquet", p.images) for p in appended]
        markers = [root / pending_name(int(m[1])) for m in numbers if m is not None]
        tmp, held = make_temp(root, "compact")  # .compact.ome-arrow-tmp.PID.RANDOM, locked while we live
        original: bytes | None = None
        try:
            offsets = _merge(root, order, keep, tmp / BASE_CHUNKS)
            shift = np.array([offsets[n] for n in names], dtype=np.int64)[codes]
            new_index = index.set_column(
                INDEX_SCHEMA.get_field_index("row_group_id"),
                INDEX_SCHEMA.field("row_group_id"),
                pa.array((groups + shift).astype(np.int32)),
            ).set_column(at, INDEX_SCHEMA.field(at), pa.array([BASE_CHUNKS] * index.num_rows, pa.string()))
            # aligned with the merged images table's row groups (see aligned_index): opening one image stays O(1)
            ids = [str(v) for v in images.column("image_id").to_pylist()]
            sizes = _group_sizes(root, parts)
            write_aligned_index(new_index, ids, sizes, tmp / BASE.index)
            moves = [(tmp / BASE_CHUNKS, root / BASE_CHUNKS), (tmp / BASE.index, root / BASE.index)]
            located: dict[str, dict[str, int]] = {}  # pixel locators into the merged file (its offsets are new)
            if len(parts) > 1:
                merged, located = with_locators(tmp, _merged_images(images), new_index, [BASE_CHUNKS])
                _write_images(merged, sizes, tmp / BASE.images)
                moves.append((tmp / BASE.images, root / BASE.images))
            if (root / MANIFEST).exists():
                # row groups move: the merged file is read through its footer (the index keeps no page ranges)
                ours = {
                    k: v
                    for k, v in (manifest.get("ome_arrow_core") or {}).items()
                    if k not in ("appends", PAGES_KEY, LOCATORS_KEY, RECORDS_KEY)
                }
                if located:  # else images.parquet's locators (if any) point into the old file: not listed
                    ours[LOCATORS_KEY] = located
                ours.update({"fragments": [BASE_CHUNKS], "format_version": format_version_for([BASE_CHUNKS])})
                ours[TABLES_KEY] = {
                    BASE.images: swapped_digest(root, tmp, BASE.images),
                    BASE.index: swapped_digest(root, tmp, BASE.index),
                }
                set_group_records(ours, swapped_groups(root, tmp, ours[TABLES_KEY]))
                # the merged file's own (the old record no longer matches)
                set_footer_records(ours, record_chunk_footers(tmp, [BASE_CHUNKS]))
                # the merged images table's value index, written beside the merged tables and moved in before them
                values = record_values(root, ours[TABLES_KEY], ours.pop(VALUES_KEY, None), out_dir=tmp)
                if values:
                    ours[VALUES_KEY] = values
                moves += [(tmp / e["file"], root / e["file"]) for e in values.values() if (tmp / e["file"]).exists()]
                # images.parquet's records: kept where made from it as it stays, else made beside it (from the merged
                # table, or the one a killed compaction swapped in) and moved in after it
                old = (manifest.get("ome_arrow_core") or {}).get(RECORDS_KEY)
                kept = {BASE.images: old[BASE.images]} if len(parts) == 1 and isinstance(old, dict) else None
                where = tmp if (tmp / BASE.images).exists() else root
                made = record_images(where, [BASE.images], ours[TABLES_KEY], kept, lambda p: _beside(tmp, p))
                if made:
                    ours[RECORDS_KEY] = made
                    if (tmp / records_name(BASE.images)).exists():
                        moves.append((tmp / records_name(BASE.images), root / records_name(BASE.images)))
                # the merged tables' row-group lists: a sidecar when large (see group_lists), moved in before the manifest
                side = split_lists(ours, lambda name, blob: (tmp / name).write_bytes(blob))
                if side is not None:
                    moves.append((tmp / side, root / side))
                new_manifest = {**manifest, "image_count": images.num_rows, "ome_arrow_core": ours}
                (tmp / MANIFEST).write_text(json.dumps(new_manifest, indent=2))
                moves.append((tmp / MANIFEST, root / MANIFEST))
                original = accept_both(
                    root, manifest, ours[TABLES_KEY]
                )  # a kill between the swaps leaves a readable dataset
            # chunks.parquet first: until index.parquet is replaced, the old index still finds every
            # chunk (the old chunks.parquet's row groups lead the new one, the fragments still exist);
            # once images.parquet holds every image, readers skip the appends the old manifest lists.
            # Each append's marker says its files are merged once the manifest no longer lists them,
            # so cleanup removes what a kill leaves of them (they hold no image the dataset lacks)
            for marker in markers:
                marker.touch()
            replace_all(moves, tmp)
        except BaseException:
            for marker in markers:
                marker.unlink(missing_ok=True)
            if original is not None:  # the swap was undone: the old manifest goes back as it was
                restore_manifest(root, original, manifest)
            raise
        finally:
            os.close(held)
            remove_tree(tmp)
        # the dataset is compacted; a file that cannot be removed is only dead weight
        old_fragments = [str(f) for f in (manifest.get("ome_arrow_core") or {}).get("fragments") or []]
        old_values = (manifest.get("ome_arrow_core") or {}).get(VALUES_KEY)
        now = read_manifest(root).get("ome_arrow_core") or {}
        drop_replaced(root, manifest.get("ome_arrow_core"), now)
        for entry in old_values.values() if isinstance(old_values, dict) else []:
            used = {e.get("file") for e in (now.get(VALUES_KEY) or {}).values() if isinstance(e, dict)}
            if isinstance(entry, dict) and isinstance(entry.get("file"), str) and entry["file"] not in used:
                with contextlib.suppress(OSError):
                    (root / os.path.basename(entry["file"])).unlink(missing_ok=True)
        named = {e.get("file") for e in (now.get(RECORDS_KEY) or {}).values() if isinstance(e, dict)}
        stale_records = [records_name(p.images) for p in (BASE, *appended) if records_name(p.images) not in named]
        for name in [*listed, *old_fragments, *(n for p in appended for n in (p.images, p.index)), *stale_records]:
            if name not in (BASE_CHUNKS, BASE.images, BASE.index):
                with contextlib.suppress(OSError):
                    (root / name).unlink(missing_ok=True)
        for marker in markers:
            with contextlib.suppress(OSError):
                marker.unlink(missing_ok=True)
    return order


def _beside(tmp: Path, path: Path) -> contextlib.nullcontext[Path]:
    """Where a records file for ``path`` is written: in the compaction's directory ``tmp``, moved in by the swap."""
    return contextlib.nullcontext(tmp / path.name)


def _merged_images(images: pa.Table) -> pa.Table:
    """The images of all parts as one images.parquet table: the IMAGES_SCHEMA columns first, then the others."""
    order = [n for n in IMAGES_SCHEMA.names if n in images.column_names]
    order += [n for n in images.column_names if n not in order]
    return images.select(order).replace_schema_metadata(FILE_METADATA)


def _group_sizes(root: Path, parts: list[Part]) -> list[int]:
    """Image counts of the merged images.parquet's row groups: the parts' row groups in order, neighbours joined
    while they fit in one group of :func:`_images_per_group` images. A merged group never splits a part's group,
    so chunk row groups (which never hold images of two groups of their part) stay within one merged group."""
    cap = _images_per_group(root, parts)
    sizes: list[int] = []
    for part in parts:
        md = pq.read_metadata(root / part.images)
        for g in range(md.num_row_groups):
            n = int(md.row_group(g).num_rows)
            if len(parts) > 1 and sizes and sizes[-1] + n <= cap:
                sizes[-1] += n
            elif n:
                sizes.append(n)
    return sizes


def _write_images(table: pa.Table, sizes: list[int], out: Path) -> None:
    """``table`` written to ``out`` with row groups of ``sizes`` rows."""
    stats = statistics_columns(table.schema)
    with pq.ParquetWriter(out, table.schema, write_page_checksum=True, write_statistics=stats) as writer:
        at = 0
        for n in sizes:
            writer.write_table(table.slice(at, n), row_group_size=n)
            at += n


def _images_per_group(root: Path, parts: list[Part]) -> int:
    """Row-group size of the merged images.parquet: that of the first images table with several, else 1024."""
    for part in parts:
        md = pq.read_metadata(root / part.images)
        if md.num_row_groups > 1:
            return int(md.row_group(0).num_rows)
    return _IMAGES_PER_GROUP


def _merge(root: Path, order: list[str], keep: dict[str, int], out: Path) -> dict[str, int]:
    """Copy the first ``keep[name]`` row groups of each file into ``out``; returns each file's first row group there.

    The files are opened one at a time (each footer holds metadata for every row group).
    """
    codecs: dict[str, str | None] = {}
    for name in order:
        if not is_within(root, name):
            raise DamagedFileError(
                f"{root} [index.parquet] lists chunk file {name!r}, a path outside the dataset "
                "directory; refusing to follow it"
            )
        with reading(root, name, "reading the chunks file's footer"):
            md = pq.read_metadata(require_member(root, name))
        if keep[name] > md.num_row_groups:
            raise SchemaError(
                f"index.parquet of {root} points at row group {keep[name] - 1} of {name}, which has "
                f"{md.num_row_groups}; the dataset is damaged"
            )
        codecs[name] = _codec(md, name)
    if len(set(codecs.values())) > 1:
        shown = ", ".join(f"{n}: {c or 'none'}" for n, c in codecs.items())
        raise SchemaError(
            f"cannot compact {root}: its chunk files use different compressions ({shown}), and the merged "
            "file can have only one; rewrite the dataset instead: "
            "write_dataset(OMEArrowDataset.scan(path), new_path, compression=...)"
        )
    schema = pq.read_schema(root / order[0])
    offsets: dict[str, int] = {}
    written = 0
    writer = chunk_writer(out, schema, codecs[order[0]])
    try:
        for name in order:
            offsets[name] = written
            with pq.ParquetFile(root / name) as pf:
                _copy(pf, keep[name], schema, writer)
            written += keep[name]
    finally:
        writer.close()
    del writer
    got = pq.read_metadata(out).num_row_groups
    if got != written:  # the index's row group ids rely on this
        raise SchemaError(f"compacting {root} wrote {got} row groups, expected {written}; nothing was changed")
    return offsets


def _codec(md: pq.FileMetaData, name: str) -> str | None:
    """The compression of a chunks file's pixels (as the ``compression`` option names it)."""
    if md.num_row_groups == 0:
        return None
    col = md.schema.to_arrow_schema().get_field_index("pixel_bytes")
    codec = str(md.row_group(0).column(col).compression)
    if codec not in _CODECS:
        raise SchemaError(f"{name} uses compression {codec}, which compaction cannot write; rewrite the dataset")
    return _CODECS[codec]


def _copy(pf: pq.ParquetFile, count: int, schema: pa.Schema, writer: pq.ParquetWriter) -> None:
    """Append row groups ``0..count-1`` of ``pf`` to ``writer``, each still a row group of its own.

    Row groups are read in batches of up to ``packing.BATCH_BYTES`` (uncompressed).
    """
    md = pf.metadata
    batch: list[int] = []
    size = 0
    for g in range(count):
        batch.append(g)
        size += md.row_group(g).total_byte_size
        if size >= packing.BATCH_BYTES or g == count - 1:
            _write_groups(
                pf.read_row_groups(batch, use_threads=False), [md.row_group(i).num_rows for i in batch], schema, writer
            )
            batch, size = [], 0


def _write_groups(table: pa.Table, rows: list[int], schema: pa.Schema, writer: pq.ParquetWriter) -> None:
    """Write ``table`` as row groups of ``rows`` rows each: one write per run of equal groups."""
    if table.schema.remove_metadata() != schema.remove_metadata():
        try:
            table = table.cast(schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise SchemaError(f"a chunk file's columns ({table.schema}) do not match chunks.parquet's: {exc}") from exc
    start = i = 0
    while i < len(rows):
        j = i + 1
        while j < len(rows) and rows[j - 1] == rows[i] and rows[j] <= rows[i]:  # full groups, then one shorter
            j += 1
        n = sum(rows[i:j])
        writer.write_table(table.slice(start, n), row_group_size=max(rows[i], 1))
        start, i = start + n, j
