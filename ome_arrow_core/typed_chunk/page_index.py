"""Where each chunk's page lies: the index columns and manifest entries that record it, and their check.

The writer records, per chunk row, the byte range of its ``pixel_bytes`` page (:data:`RANGE_COLUMNS` of the
index) and, per chunks file, the pages' codec and the file's size (the manifest's :data:`MANIFEST_KEY`).
:mod:`.page_reads` reads by these ranges; :func:`range_mismatches` checks them against the file for verify.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa

from ..arrow_numpy import int_values
from ..errors import DamagedFileError
from .parquet_pages import PageRanges, page_ranges

__all__ = [
    "RANGE_COLUMNS",
    "RANGE_FIELDS",
    "MANIFEST_KEY",
    "range_columns",
    "listed_codec",
    "manifest_entry",
    "range_mismatches",
]

#: Index columns locating each chunk's page (null: read through the Parquet footer).
RANGE_COLUMNS: Final[tuple[str, ...]] = (
    "page_offset",
    "page_compressed_size",
    "page_uncompressed_size",
    "row_group_offset",
)
RANGE_FIELDS: Final[list[pa.Field]] = [pa.field(n, pa.int64()) for n in RANGE_COLUMNS]
#: Manifest key (under ``ome_arrow_core``): chunks file name -> {"codec": pyarrow codec of its pages ("none":
#: uncompressed), "bytes": the file's size}.
MANIFEST_KEY: Final[str] = "page_ranges"


def range_columns(row_group_id: np.ndarray, ranges: PageRanges | None) -> list[pa.Array]:
    """The RANGE_COLUMNS of index rows with row groups ``row_group_id`` of a file with ``ranges`` (None: nulls)."""
    if ranges is None:
        return [pa.nulls(len(row_group_id), pa.int64()) for _ in RANGE_COLUMNS]
    return [
        pa.array(a[row_group_id]) for a in (ranges.offset, ranges.compressed, ranges.uncompressed, ranges.group_offset)
    ]


def listed_codec(root: Path, manifest: dict[str, Any], name: str) -> tuple[bool, str | None]:
    """(whether chunks file ``name`` of the dataset at ``root`` is read by page ranges, the pyarrow codec of its pages).

    The manifest lists each such file with its codec and size in bytes; a file of another size
    (rewritten by another tool, truncated) is not the one the ranges describe, and is read
    through its footer (which says what is wrong with it, if anything).
    """
    listed = (manifest.get("ome_arrow_core") or {}).get(MANIFEST_KEY)
    entry = listed.get(name) if isinstance(listed, dict) else None
    if entry is None:
        return False, None
    codec, size = (entry.get("codec"), entry.get("bytes")) if isinstance(entry, dict) else (None, None)
    if (
        not isinstance(codec, str)
        or not isinstance(size, int)
        or (codec != "none" and not pa.Codec.is_available(codec))
    ):
        raise DamagedFileError(f"the manifest of {root} lists {entry!r} for the pages of {name}; it is damaged")
    try:
        if (root / name).stat().st_size != size:
            return False, None
    except OSError:
        return False, None  # opening it through its footer says what is wrong
    return True, None if codec == "none" else codec


def manifest_entry(ranges: PageRanges) -> dict[str, Any]:
    """What the manifest records of a chunks file with page ranges ``ranges`` (see :func:`listed_codec`)."""
    return {"codec": ranges.codec or "none", "bytes": ranges.file_bytes}


def range_mismatches(
    root: Path, name: str, manifest: dict[str, Any], index_file: Path, local: np.ndarray, groups: np.ndarray
) -> list[tuple[int, str]]:
    """(k, problem) for each index row ``local[k]`` of ``index_file`` (in row group ``groups[k]`` of chunks file
    ``name``) whose recorded page range is not where the file holds its page (k = -1: the whole file), for verify.

    The file's own ranges are derived again from its footer and page headers.
    """
    import pyarrow.parquet as pq

    listed, codec = listed_codec(root, manifest, name)
    if not listed:
        return []
    pf = pq.ParquetFile(index_file)
    if not all(c in pf.schema_arrow.names for c in RANGE_COLUMNS):
        return [(-1, f"the manifest says its chunks are read by page ranges, but {index_file.name} has none")]
    table = pf.read(columns=list(RANGE_COLUMNS), use_threads=False)
    recorded = [int_values(table.column(c), -1).astype(np.int64)[local] for c in RANGE_COLUMNS]
    actual = page_ranges(root / name)
    if actual is None or actual.codec != codec:
        return [
            (
                -1,
                "the manifest says its chunks are read by page ranges, but its pages are not one per chunk in "
                f"codec {codec or 'none'}",
            )
        ]
    inside = groups < len(actual.offset)
    at = np.where(inside, groups, 0)
    truth = [actual.offset, actual.compressed, actual.uncompressed, actual.group_offset]
    wrong = ~inside | np.any([r != t[at] for r, t in zip(recorded, truth)], axis=0)
    return [
        (
            k,
            f"its page range in {index_file.name} (bytes {int(recorded[0][k])}+{int(recorded[1][k])}) is not "
            f"where the file holds its page"
            + (f" (bytes {int(truth[0][at[k]])}+{int(truth[1][at[k]])})" if inside[k] else ""),
        )
        for k in np.nonzero(wrong)[0].tolist()
    ]
