"""The typed-chunk Parquet dataset layout: file names, schemas, format version.

The public OME-Arrow dataset (``layout: typed-chunk-dataset``) that ``ome-arrow`` 0.1.0 writes
and reads: a directory of images.parquet (one row per image), chunks.parquet (one row per chunk,
raw little-endian C-order TCZYX bytes in ``pixel_bytes``) and index.parquet (chunk -> row group).
ome-arrow-core adds physical sizes and a format version of its own (see docs/format.md).
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any, Final

import pyarrow as pa

from ..boundary import path_mode, reading, require_member
from ..errors import DamagedFileError

MANIFEST: Final[str] = "_ome_arrow_dataset.json"
#: Version of ome-arrow-core's additions; readers refuse newer versions. A dataset whose chunk
#: files are all Parquet and that has no append tables is written as version 1; one with
#: chunk-store files (``.vortex``) or with append tables (``images-NNNNN.parquet``) as 2.
FORMAT_VERSION: Final[int] = 2
# Optional manifest keys added without a version change (readers that do not know them ignore them; see
# docs/format.md): ``ome_arrow_core.tables`` (whole-table digests), ``ome_arrow_core.page_ranges``, and
# ``ome_arrow_core.table_groups`` (row-group digests: a footer is checked at open, each row group when first read),
# and in its entries ``group_rows`` and ``footer_spans`` (row groups read through one-group footers), and
# ``ome_arrow_core.chunk_footers`` (packed Parquet chunks files read so too; see typed_chunk/chunk_footers.py), written
# now as ``ome_arrow_core.chunk_footers_packed`` (its integer lists as base64 int64; typed_chunk/packed_ints.py), and
# ``ome_arrow_core.pixel_locators`` (the chunks files the images tables' pixel locators point into; locators.py),
# ``ome_arrow_core.table_groups_packed`` (``table_groups`` with its lists as base64 int64; group_records.py) and
# ``ome_arrow_core.value_index`` (each images table's values and their rows, for filters; value_index.py), and
# ``ome_arrow_core.group_lists`` (a large dataset's two packed keys above moved to a sidecar file; group_lists.py).
#: Key of the row-group lists' sidecar record in the manifest's ``ome_arrow_core`` section (see group_lists.py).
GROUP_LISTS_KEY: Final[str] = "group_lists"
#: The sidecar's name, exactly (what cleanup may remove and remote mirrors never stand in for).
GROUP_LISTS_FILE: Final[re.Pattern[str]] = re.compile(r"^_ome_arrow_groups\.[0-9a-f]{16}\.json$")
#: The ``layout`` the manifest and every file's metadata name.
LAYOUT_NAME: Final[str] = "typed-chunk-dataset"
#: Key-value metadata of every Parquet file of a dataset (as ome-arrow 0.1.0 writes it).
FILE_METADATA: Final[dict[bytes, bytes]] = {
    b"ome.arrow.type": b"ome.arrow",
    b"ome.arrow.version": b"0.1.0",
    b"ome.arrow.layout": LAYOUT_NAME.encode(),
}
#: The chunks file of the base (an append adds ``chunks-NNNNN.<suffix>``).
BASE_CHUNKS: Final[str] = "chunks.parquet"
_I32 = pa.int32()
_COORDS = [(a, _I32) for a in ("t", "c", "z", "y", "x")]
_SHAPES = [(f"shape_{a}", _I32) for a in ("t", "c", "z", "y", "x")]

IMAGES_SCHEMA: Final = pa.schema(
    [
        ("image_id", pa.string()),
        ("name", pa.string()),
        ("image_type", pa.string()),
        ("dtype", pa.string()),
        *[(f"size_{a}", _I32) for a in ("t", "c", "z", "y", "x")],
        ("layout", pa.string()),
        *[(f"chunk_{a}", _I32) for a in ("t", "c", "z", "y", "x")],
        ("compression", pa.string()),
        ("channels_json", pa.string()),
        # ome-arrow-core additions (ignored by readers that do not know them)
        *[(f"physical_size_{a}", pa.float64()) for a in "xyz"],
        *[(f"physical_size_{a}_unit", pa.string()) for a in "xyz"],
        ("acquisition_datetime", pa.string()),
        ("ome_xml", pa.string()),  # the image's source OME-XML (see ome_arrow_core.ome_xml), null without
    ]
)
#: Images-table columns ome-arrow-core adds after IMAGES_SCHEMA's: a one-chunk image's pixel locator (see
#: typed_chunk/locators.py; null where an image has none). Reserved: not metadata columns of yours.
LOCATOR_COLUMNS: Final[tuple[str, ...]] = ("pixels_file", "pixels_offset", "pixels_length", "pixels_checksum")
CHUNKS_SCHEMA: Final = pa.schema(
    [
        ("image_id", pa.string()),
        ("chunk_id", pa.int64()),
        *_COORDS,
        *_SHAPES,
        ("dtype", pa.string()),
        ("pixel_bytes", pa.large_binary()),
    ]
)
INDEX_SCHEMA: Final = pa.schema(
    [
        ("image_id", pa.string()),
        ("chunk_id", pa.int64()),
        ("row_group_id", _I32),
        ("row_index_in_group", _I32),
        ("fragment_path", pa.string()),
        *_COORDS,
        *_SHAPES,
        # ome-arrow-core addition: checksum (ome_arrow_core.checksum of the manifest) of the chunk's
        # stored bytes; null in datasets written before checksums (nothing to check there)
        ("checksum", pa.uint64()),
    ]
)


def is_dataset_dir(path: Path) -> bool:
    """True for a directory holding a typed-chunk dataset."""
    mode = path_mode(path)
    return mode is not None and stat.S_ISDIR(mode) and has_dataset_files(path)


def has_dataset_files(path: Path) -> bool:
    """True when directory ``path`` holds the files of a typed-chunk dataset (``exists`` asked of strings, without
    a ``Path`` each: every scan of a dataset asks)."""
    root = os.fspath(path)

    def exists(name: str) -> bool:
        return path_mode(f"{root}{os.sep}{name}") is not None

    return exists(MANIFEST) or exists("chunks.parquet") or (exists("images.parquet") and exists("index.parquet"))


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the dataset at ``path`` ({} when it has none, as some ome-arrow 0.1.0 datasets)."""
    file = path / MANIFEST
    if not os.path.lexists(file):
        return {}
    require_member(path, MANIFEST)
    with reading(path, MANIFEST, "reading the manifest"):
        text = file.read_bytes()
    try:
        manifest = json.loads(text.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError too
        raise DamagedFileError(
            f"{file} is not valid UTF-8 JSON ({exc}); the dataset is damaged: restore the file"
        ) from exc
    if not isinstance(manifest, dict):
        raise DamagedFileError(
            f"{file} holds a {type(manifest).__name__}, expected a JSON object; the dataset is damaged"
        )
    return manifest
