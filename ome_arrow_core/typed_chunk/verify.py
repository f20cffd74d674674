"""Verify a typed-chunk dataset directory: tables, chunk files, every chunk's bytes (see :mod:`.verification`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..checksums import ChunkChecksums, to_hex
from ..registry import Registry, default_registry
from ..uniques import unique
from ..verify_report import VerifyReport, describe_error, regular
from .audit import audit_chunk_files
from .chunk_footers import footer_records, spliced_fragment
from .fragments import open_fragment
from .group_lists import lists_damage, lists_of
from .group_sums import settle_footer
from .image_records import records_damage
from .locators import locator_damage
from .page_index import range_mismatches
from .spec import MANIFEST, is_dataset_dir, read_manifest
from .tables import BASE, parts_of, read_images, read_indexes
from .value_index import check_values

__all__ = ["verify_dataset"]

#: Uncompressed bytes of row groups read (and checked) at a time.
BATCH_BYTES = 64 << 20
#: ...or this many row groups.
BATCH_GROUPS = 64


def verify_dataset(root: Path, registry: Registry | None = None) -> VerifyReport:
    """Check the dataset directory ``root`` (see :func:`~.verification.verify`); chunk stores from ``registry``."""
    reg = registry or default_registry()
    report = VerifyReport(str(root), "dataset")
    if not is_dataset_dir(root):
        report.add(root, f"is a directory but not an OME-Arrow dataset (no {MANIFEST} and no chunks.parquet)")
        return report
    try:
        manifest = read_manifest(root) if not (root / MANIFEST).exists() or regular(report, root / MANIFEST) else {}
    except Exception as exc:
        report.add(root / MANIFEST, describe_error(exc))
        manifest = {}
    try:
        parts = parts_of(root, manifest, True)  # the table checksums too, whatever the environment says
        for part in parts:
            for name in (part.images, part.index):
                if (root / name).exists():
                    if not regular(report, root / name):
                        return report
                    pq.read_table(root / name, page_checksum_verification=True)
                elif name != BASE.index:  # an ome-arrow 0.1.0 dataset may lack index.parquet
                    report.add(root / name, "is listed but missing")
        images, image_part = read_images(root, parts)
        index, index_part = read_indexes(root, parts)
    except Exception as exc:
        report.add(root, f"its tables cannot be read: {describe_error(exc)}")
        return report
    ours = manifest.get("ome_arrow_core") or {}
    for name in ours.get("fragments") or []:
        if not (root / str(name)).exists():
            report.add(root / str(name), "is listed in the manifest but missing")
    report.images = images.num_rows
    dtypes = _image_facts(images, image_part, index, index_part, report, root)
    sums = ChunkChecksums(index.column("checksum"), ours.get("checksum"), str(root))
    if sums.present is None or not sums.present.all():
        missing = index.num_rows if sums.present is None else int((~sums.present).sum())
        report.unchecked = missing
        if missing:
            report.notes.append(
                f"note: {missing} chunk(s) were written without checksums (before ome-arrow-core "
                "stored them); their bytes were read but damage to them cannot be detected"
            )
    frags = index.column("fragment_path").fill_null("chunks.parquet").to_numpy(zero_copy_only=False)
    for name in sorted(set(frags.tolist())):
        _verify_fragment(root, str(name), np.nonzero(frags == name)[0], index, dtypes, sums, report, reg)
        _verify_ranges(
            root, str(name), np.nonzero(frags == name)[0], index, index_part, [p.index for p in parts], manifest, report
        )
    _verify_chunk_footers(root, manifest, report)
    for problem in check_values(root, manifest):  # the value index a filter reads (see value_index)
        report.add(root, problem)
    for file, problem in records_damage(root, manifest, [p.images for p in parts]):  # image records, made anew
        report.add(file, problem)
    for file, problem, image in locator_damage(root, manifest, images):  # what a read by its locator would refuse
        report.add(file, f"the pixel locator of image {image!r} is damaged: {problem}", image_id=image)
    if report.ok:  # every index row against its chunk row in full: image id, coordinates, shape, dtype
        try:
            audit_chunk_files(root, reg)
        except Exception as exc:
            report.add(root, describe_error(exc))
    return report


def _verify_chunk_footers(root: Path, manifest: Mapping[str, Any], report: VerifyReport) -> None:
    """Each chunks file's footer against the manifest's record of it (``chunk_footers_packed``, or ``chunk_footers`` as written before), as a checked read
    checks it: a footer that differs from its digest, or a record that does not fit its file, is damage."""
    for file, problem in lists_damage(root, manifest):  # the row-group lists' sidecar (see group_lists)
        report.add(file, problem)
    try:
        listed = footer_records(lists_of(root, manifest))  # in the manifest, or its sidecar
    except Exception:
        return  # reported above
    for name in sorted(str(n) for n in listed):
        if (root / name).is_file():
            try:
                spliced_fragment(root, manifest, name, True)
                settle_footer(root, name)  # recorded in pieces: a read checks its head and tail, verify all of it
            except Exception as exc:
                report.add(root / name, describe_error(exc))


def _image_facts(
    images: pa.Table, image_part: np.ndarray, index: pa.Table, index_part: np.ndarray, report: VerifyReport, root: Path
) -> np.ndarray:
    """The item size of each index row's image; reports images whose chunks do not cover them."""
    ids = [str(v) for v in images.column("image_id").to_pylist()]
    facts: dict[tuple[int, str], tuple[int, int]] = {}
    for k, image_id in enumerate(ids):
        row = {n: images.column(n)[k].as_py() for n in ("dtype", *(f"size_{a}" for a in "tczyx"))}
        key = (int(image_part[k]), image_id)
        if key in facts:
            report.add(root, "the image id appears twice in one images table", image_id=image_id)
        try:
            need = int(np.prod([int(row[f"size_{a}"]) for a in "tczyx"], dtype=np.int64))
            facts[key] = (np.dtype(str(row["dtype"])).itemsize, need)
        except Exception as exc:
            report.add(root, f"its images row is damaged: {describe_error(exc)}", image_id=image_id)
    index_ids = [str(v) for v in index.column("image_id").to_pylist()]
    shape = np.stack([index.column(f"shape_{a}").to_numpy(zero_copy_only=False) for a in "tczyx"], axis=1)
    pixels = shape.astype(np.int64).prod(axis=1)
    sizes: np.ndarray = np.zeros(index.num_rows, dtype=np.int64)
    covered: dict[tuple[int, str], int] = {}
    for r, image_id in enumerate(index_ids):
        key = (int(index_part[r]), image_id)
        if key in facts:
            sizes[r] = facts[key][0]
            covered[key] = covered.get(key, 0) + int(pixels[r])
    for key, (_, need) in facts.items():
        if covered.get(key, 0) != need:
            report.add(
                root,
                f"its chunks in the index cover {covered.get(key, 0)} pixels; its sizes need {need}",
                image_id=key[1],
            )
    out: np.ndarray = sizes * pixels
    return out


def _verify_fragment(
    root: Path,
    name: str,
    rows: np.ndarray,
    index: pa.Table,
    nbytes: np.ndarray,
    sums: ChunkChecksums,
    report: VerifyReport,
    registry: Registry,
) -> None:
    """Check the chunks of index rows ``rows``, all in chunk file ``name``."""
    file = root / name
    ids = index.column("image_id")
    chunk_ids = index.column("chunk_id").to_numpy(zero_copy_only=False)

    def where(r: int) -> dict[str, Any]:
        return {"image_id": str(ids[r].as_py()), "chunk_id": int(chunk_ids[r])}

    resolved = file.resolve()
    if root.resolve() not in resolved.parents:
        report.add(root, f"the index names chunk file {name!r}, outside the dataset directory; refused")
        return
    if not file.is_file():
        images = sorted({str(ids[int(r)].as_py()) for r in rows})
        report.add(file, f"is missing (or not a regular file); {len(rows)} chunk(s) of images {images[:5]} are lost")
        return
    try:
        read, group_rows, group_bytes = _reader(root, name, registry)
    except Exception as exc:
        report.add(file, f"cannot be opened: {describe_error(exc)}")
        return
    rg = index.column("row_group_id").to_numpy(zero_copy_only=False)[rows].astype(np.int64)
    rig = index.column("row_index_in_group").to_numpy(zero_copy_only=False)[rows].astype(np.int64)
    bad = (rg < 0) | (rg >= len(group_rows))
    bad[~bad] = (rig[~bad] < 0) | (rig[~bad] >= group_rows[rg[~bad]])
    for j in np.nonzero(bad)[0].tolist():
        report.add(
            file,
            f"the index points at row group {rg[j]} row {rig[j]}, which the file does not have",
            **where(int(rows[j])),
        )
    rows, rg, rig = rows[~bad], rg[~bad], rig[~bad]
    groups = unique(rg)
    batch: list[int] = []
    size = 0
    for k, g in enumerate(groups.tolist()):
        batch.append(g)
        size += int(group_bytes[g])
        if size >= BATCH_BYTES or len(batch) >= BATCH_GROUPS or k == len(groups) - 1:
            _check_batch(file, np.array(batch), read, group_rows, rows, rg, rig, index, nbytes, sums, report, where)
            batch, size = [], 0


def _verify_ranges(
    root: Path,
    name: str,
    rows: np.ndarray,
    index: pa.Table,
    index_part: np.ndarray,
    index_names: list[str],
    manifest: dict[str, Any],
    report: VerifyReport,
) -> None:
    """Check the page ranges the index records for chunk file ``name`` against the file's own pages."""
    parts = unique(index_part[rows])
    if len(parts) != 1 or not (root / name).is_file():
        return
    local = rows - int(np.searchsorted(index_part, int(parts[0])))
    groups = index.column("row_group_id").to_numpy(zero_copy_only=False)[rows].astype(np.int64)
    try:
        problems = range_mismatches(root, name, manifest, root / index_names[int(parts[0])], local, groups)
    except Exception as exc:
        report.add(root / name, f"its page ranges cannot be checked: {describe_error(exc)}")
        return
    ids, chunk_ids = index.column("image_id"), index.column("chunk_id")
    for k, problem in problems:
        where = (
            {}
            if k < 0
            else {"image_id": str(ids[int(rows[k])].as_py()), "chunk_id": int(chunk_ids[int(rows[k])].as_py())}
        )
        report.add(root / name, problem, **where)


def _reader(
    root: Path, name: str, registry: Registry
) -> tuple[Callable[[np.ndarray], tuple[pa.ChunkedArray, Any]], np.ndarray, np.ndarray]:
    """(read groups -> (pixel_bytes, chunk_id or None), rows per group, bytes per group) of a chunk file."""
    if name.lower().endswith(".parquet"):
        pf = pq.ParquetFile(root / name, page_checksum_verification=True)
        md = pf.metadata
        group_rows = np.array([md.row_group(i).num_rows for i in range(md.num_row_groups)], dtype=np.int64)
        group_bytes = np.array([md.row_group(i).total_byte_size for i in range(md.num_row_groups)], dtype=np.int64)

        def read(groups: np.ndarray) -> tuple[pa.ChunkedArray, Any]:
            t = pf.read_row_groups(groups.tolist(), columns=["chunk_id", "pixel_bytes"], use_threads=False)
            return t.column("pixel_bytes"), t.column("chunk_id").to_numpy()

        return read, group_rows, group_bytes
    frag = open_fragment(root, name, registry)
    return (
        (lambda groups: (frag.read(groups).column("pixel_bytes"), None)),
        frag.group_rows,
        np.full(len(frag.group_rows), 1 << 20),
    )


def _check_batch(
    file: Path,
    groups: np.ndarray,
    read: Callable[[np.ndarray], tuple[pa.ChunkedArray, Any]],
    group_rows: np.ndarray,
    rows: np.ndarray,
    rg: np.ndarray,
    rig: np.ndarray,
    index: pa.Table,
    nbytes: np.ndarray,
    sums: ChunkChecksums,
    report: VerifyReport,
    where: Callable[[int], dict[str, Any]],
) -> None:
    """Read row groups ``groups`` and check every index row in them (a failed read is retried group by group)."""
    try:
        col, stored_ids = read(groups)
    except Exception as exc:
        if len(groups) > 1:
            for g in groups.tolist():
                _check_batch(file, np.array([g]), read, group_rows, rows, rg, rig, index, nbytes, sums, report, where)
            return
        for j in np.nonzero(rg == groups[0])[0].tolist():
            report.add(file, f"row group {int(groups[0])} cannot be read: {describe_error(exc)}", **where(int(rows[j])))
            report.chunks += 1
        return
    flat = col.combine_chunks()
    offsets = np.frombuffer(flat.buffers()[1], dtype=np.int64, count=len(flat) + 1, offset=flat.offset * 8)
    data = flat.buffers()[2]
    first = dict(zip(groups.tolist(), np.cumsum(np.r_[0, group_rows[groups][:-1]]).tolist()))
    for j in np.nonzero(np.isin(rg, groups))[0].tolist():
        r = int(rows[j])
        at = first[int(rg[j])] + int(rig[j])
        report.chunks += 1
        start, n = int(offsets[at]), int(offsets[at + 1] - offsets[at])
        if stored_ids is not None and int(stored_ids[at]) != where(r)["chunk_id"]:
            report.add(file, f"the index row points at chunk {int(stored_ids[at])} instead", **where(r))
            continue
        if nbytes[r] and n != int(nbytes[r]):
            report.add(file, f"holds {n} bytes; the chunk's shape needs {int(nbytes[r])}", **where(r))
            continue
        pair = sums.compare(r, data if data is not None else b"", start, n)
        if pair is None:
            continue
        if pair[0] != pair[1]:
            report.add(
                file,
                f"the chunk's bytes do not match their checksum (stored {to_hex(pair[0])}, computed {to_hex(pair[1])})",
                **where(r),
            )
            continue
        report.checksummed += 1
