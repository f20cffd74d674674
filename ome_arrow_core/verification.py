"""``verify(path)``: check a dataset, record file, Vortex file or OME-TIFF and list what is damaged.

A dataset directory: its manifest, every images and index table it lists (their Parquet page
checksums), that every index row's chunk exists (file, row group, chunk id, size) and that
its bytes match their checksum, and that each image's chunks cover it. A struct-record
Parquet file: page checksums, each row's plane checksums, each record decodes. A Vortex image
file or any other image a reader opens (OME-TIFF): every plane of every pyramid level reads
(and, for Vortex and the OME-TIFFs ome-arrow-core writes, matches its checksums). Nothing is
repaired; the report says what is damaged and where.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .verify_report import Damage, VerifyReport, describe_error, regular, report_json

__all__ = ["Damage", "VerifyReport", "verify", "report_json"]

#: TIFF and BigTIFF headers, little- and big-endian: such files are read with ``verify=True``.
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def verify(path: str | Path) -> VerifyReport:
    """Check everything stored at ``path`` and report what is damaged (never raises for a damaged file).

    ``path`` is local: verifying reads every byte, so copy a remote dataset or file to a local disk first."""
    from .uris import local_path

    p = local_path(path, "verify")
    if p.is_dir():
        from .typed_chunk import verify_dataset

        try:
            return verify_dataset(p)
        except Exception as exc:  # a check itself failed: the dataset is too damaged to walk
            report = VerifyReport(str(p), "dataset")
            report.add(p, f"cannot be checked: {describe_error(exc)}")
            return report
    report = VerifyReport(str(p), "file")
    if not regular(report, p):
        return report
    try:
        with open(p, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        report.add(p, f"cannot be read: {describe_error(exc)}")
        return report
    try:
        if magic == b"PAR1":
            report.kind = "struct-record parquet"
            _verify_records(p, report)
        else:
            report.kind = "vortex" if magic == b"VTXF" else "tiff" if magic in _TIFF_MAGIC else "image"
            _verify_planes(p, report)
    except Exception as exc:  # a file that cannot even be opened is damaged (or not an image)
        report.add(p, f"cannot be opened: {describe_error(exc)}")
    return report


def _verify_records(p: Path, report: VerifyReport) -> None:
    """Page checksums, each row's plane checksums and each record's decoding, one row group at a time."""
    import pyarrow.parquet as pq

    from .record import as_struct_array, is_ome_arrow_type, record_to_pixels, stored_checksums, verify_record

    pf = pq.ParquetFile(p, page_checksum_verification=True)
    schema = pf.schema_arrow
    columns = [f.name for f in schema if is_ome_arrow_type(f.type)]
    if not columns:
        if "pixel_bytes" in schema.names:
            report.add(p, f"is a chunk file of a dataset; verify its directory {p.parent}")
        else:
            report.add(p, "has no OME-Arrow struct column; it is not an OME-Arrow record file")
        return
    first = 0
    for g in range(pf.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        try:
            table = pf.read_row_group(g, columns=columns)
        except Exception as exc:
            report.add(p, f"row group {g} (rows {first}..{first + n - 1}) cannot be read: {describe_error(exc)}")
            first += n
            continue
        for column in columns:
            records = as_struct_array(table.column(column))
            for i in range(len(records)):
                row = first + i
                report.images += 1
                try:
                    stored = stored_checksums(schema.metadata, column, row, str(p))
                    if stored is None:
                        report.unchecked += 1
                    else:
                        verify_record(records, i, stored, str(p), row)
                        report.checksummed += len(stored[1])
                    record_to_pixels(records, i)
                    report.chunks += len(stored[1]) if stored else 1
                except Exception as exc:
                    report.add(p, describe_error(exc), member=f"column {column!r} row {row}")
        first += n


def _verify_planes(p: Path, report: VerifyReport) -> None:
    """Every plane of the image at ``p`` (of every pyramid level its reader lists) read, checksums checked."""
    from .image import OMEArrow

    options: dict[str, Any] = {"verify": True} if report.kind in ("vortex", "tiff") else {}
    img = OMEArrow.scan(p, **options)
    src = img.source
    report.images = 1
    _read_planes(src, p, report, "")
    describe = getattr(src, "describe", None)
    levels = describe().get("levels", ()) if callable(describe) else ()
    for level in range(1, len(levels)):
        try:
            _read_planes(OMEArrow.scan(p, level=level, **options).source, p, report, f"level {level} ")
        except Exception as exc:
            report.add(p, f"cannot be opened: {describe_error(exc)}", member=f"level {level}")
    if getattr(src, "sealed", None) is False:
        report.notes.append(
            f"note: {p} has no whole-file checksum (written before ome-arrow-vortex 'sealed' "
            "files); vortex read it in a child process first"
        )
    if hasattr(src, "has_checksums"):  # readers that know of checksums (Vortex, TIFF) say whether the file has them
        if src.has_checksums:
            report.checksummed = report.chunks
        else:
            report.unchecked = report.chunks
            report.notes.append(f"note: {p} was written without checksums; damaged pixel bytes cannot be detected")
    else:
        report.notes.append(f"note: {p} stores no checksums; every plane was decoded, pixel values cannot be checked")


def _read_planes(src: Any, p: Path, report: VerifyReport, level: str) -> None:
    """Read every plane of ``src`` (one pyramid level), recording what fails."""
    from .selection import Selection

    sizes = src.meta.sizes
    for t in range(sizes["T"]):
        for z in range(sizes["Z"]):
            for c in range(sizes["C"]):
                sel = Selection(range(t, t + 1), range(z, z + 1), range(c, c + 1), range(sizes["Y"]), range(sizes["X"]))
                try:
                    src.read(sel)
                    report.chunks += 1
                except Exception as exc:
                    report.add(p, describe_error(exc), member=f"{level}plane t={t} z={z} c={c}", image_id=src.meta.id)
