"""A whole-dataset cross-check of the index tables against the chunk files, without reading pixels.

Reads check what they read (chunk ids, dtypes, byte counts, coverage); this checks every
index row at once, and more of each: the chunk row it points at must hold the same
``chunk_id``, ``image_id``, coordinates and shape, and its image's dtype. It reads the
chunk files' small columns only (never ``pixel_bytes``), so it costs a scan of the index,
not of the pixels. ``ome-arrow-core verify`` runs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..boundary import reading
from ..errors import DamagedFileError
from ..registry import Registry, default_registry
from .checks import check_member, row_images
from .fragments import ParquetFragment, open_fragment
from .spec import read_manifest
from .tables import Part, parts_of, read_images, read_indexes

__all__ = ["audit_chunk_files"]

_COLUMNS = ("chunk_id", "t", "c", "z", "y", "x", "shape_t", "shape_c", "shape_z", "shape_y", "shape_x")


def audit_chunk_files(root: str | Path, registry: Registry | None = None) -> int:
    """Raise DamagedFileError at the first index row whose chunk row disagrees with it; return the rows checked.

    Chunk files in a chunk store's format (Vortex) are checked by reads only (their rows are
    taken by number, pixels alone); their index rows are not counted. Their stores come from
    ``registry`` (default: the shared one).
    """
    reg = registry or default_registry()
    path = Path(root)
    parts = parts_of(path, read_manifest(path))
    images, image_part = read_images(path, parts)
    index, index_part = read_indexes(path, parts)
    owner = row_images(images, image_part, index, index_part)
    mine = np.nonzero(owner >= 0)[0]  # rows of no listed image were left by an interrupted write: never read
    image_dtypes = np.array([str(v) for v in images.column("dtype").to_pylist()], dtype=object)
    frag = index.column("fragment_path").dictionary_encode().combine_chunks()
    names = [str(v or "chunks.parquet") for v in frag.dictionary.to_pylist()] or ["chunks.parquet"]
    codes = frag.indices.fill_null(0).to_numpy(zero_copy_only=False)
    checked = 0
    for code, name in enumerate(names):
        check_member(path, name, f"the index tables of {path}", "chunk file")
        rows = mine[codes[mine] == code]
        fragment = open_fragment(path, name, reg)
        if not len(rows) or not isinstance(fragment, ParquetFragment):
            continue
        file = path / name
        with reading(file, None, "reading the chunk rows' ids and coordinates"):
            have = set(fragment.file.schema_arrow.names)
            table = fragment.file.read(
                columns=[c for c in ("image_id", *_COLUMNS, "dtype") if c in have], use_threads=False
            )
        first = np.concatenate([[0], np.cumsum(fragment.group_rows)])
        groups = index.column("row_group_id").to_numpy()[rows].astype(np.int64)
        within = index.column("row_index_in_group").to_numpy()[rows].astype(np.int64)
        bad = (groups < 0) | (groups >= len(fragment.group_rows))
        bad[~bad] |= (within[~bad] < 0) | (within[~bad] >= fragment.group_rows[groups[~bad]])
        if bad.any():
            j = int(np.nonzero(bad)[0][0])
            raise DamagedFileError(
                f"{_row(path, parts, index_part, rows[j])} points at row {int(within[j])} of row "
                f"group {int(groups[j])} of {file}, which is not there; the dataset is damaged"
            )
        at = first[np.maximum(groups, 0)] + within
        for column in [c for c in _COLUMNS if c in have]:
            want = index.column(column).to_numpy()[rows].astype(np.int64)
            found = table.column(column).to_numpy()[at].astype(np.int64)
            _compare(path, parts, index_part, rows, file, column, want, found, groups, within)
        if "image_id" in have:
            want_ids = index.column("image_id").take(pa.array(rows)).cast(pa.string())
            found_ids = table.column("image_id").take(pa.array(at)).cast(pa.string())
            differ = pc.not_equal(want_ids, found_ids).to_numpy(zero_copy_only=False)
            _compare(
                path,
                parts,
                index_part,
                rows,
                file,
                "image_id",
                np.asarray(want_ids.to_pylist(), dtype=object),
                np.asarray(found_ids.to_pylist(), dtype=object),
                groups,
                within,
                differ,
            )
        if "dtype" in have:
            want_dt = np.array([np.dtype(v).name for v in image_dtypes[owner[rows]]], dtype=object)
            found_dt = np.array(
                [np.dtype(str(v)).name for v in table.column("dtype").take(pa.array(at)).to_pylist()], dtype=object
            )
            _compare(path, parts, index_part, rows, file, "dtype", want_dt, found_dt, groups, within)
        checked += len(rows)
    return checked


def _row(path: Path, parts: Sequence[Part], index_part: np.ndarray, r: int) -> str:
    part = int(index_part[r])
    start = int(np.searchsorted(index_part, part, side="left"))
    return f"{path} [{parts[part].index}] row {r - start}"


def _compare(
    path: Path,
    parts: Sequence[Part],
    index_part: np.ndarray,
    rows: np.ndarray,
    file: Path,
    column: str,
    want: np.ndarray,
    found: np.ndarray,
    groups: np.ndarray,
    within: np.ndarray,
    differ: np.ndarray | None = None,
) -> None:
    wrong = np.nonzero(want != found if differ is None else differ)[0]
    if len(wrong):
        j = int(wrong[0])
        what = "the dtype of its image" if column == "dtype" else column
        raise DamagedFileError(
            f"{_row(path, parts, index_part, int(rows[j]))} says {what} {_plain(want[j])!r}, but the chunk row it "
            f"points at (row {int(within[j])} of row group {int(groups[j])} of {file}) says {_plain(found[j])!r}; "
            "the index and the "
            "chunk file disagree, the dataset is damaged"
        )


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value
