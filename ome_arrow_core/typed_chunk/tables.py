"""The images and index tables of a typed-chunk dataset: the base pair, then one pair per append.

A dataset written once has ``images.parquet`` and ``index.parquet`` (an ome-arrow 0.1.0
dataset may lack the index: it is then derived from chunks.parquet). Each append adds its
own ``images-NNNNN.parquet`` and ``index-NNNNN.parquet`` and lists them in the manifest
(``ome_arrow_core.appends``); readers take only the listed files, so replacing the manifest
commits an append. The images of all parts, in order, are the dataset's rows; the chunk
rows of an image are those of its own part's index.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa

from .. import parquet_lite as pq
from ..boundary import blaming, reading, require_member
from ..errors import DamagedFileError, SchemaError
from ..frozen_types import frozen
from .checks import check_member, check_unlisted_appends
from .footers import footer
from .group_sums import check_footers, check_whole
from .spec import MANIFEST

__all__ = [
    "Part",
    "BASE",
    "appends_of",
    "parts_of",
    "read_images",
    "images_schema",
    "read_index",
    "read_indexes",
    "own_rows",
    "max_chunk_id",
    "UNFILTERED",
    "statistics_columns",
]


@frozen
class Part:
    """One images table and the index table of its images' chunks (file names in the dataset)."""

    images: str
    index: str

    def to_json(self) -> dict[str, str]:
        """The manifest entry of an append's tables."""
        return {"images": self.images, "index": self.index}


#: The tables a dataset is written with.
BASE: Final = Part("images.parquet", "index.parquet")
#: Images-table columns written without Parquet statistics: long text no filter prunes row groups by (the image's
#: OME-XML alone can add 8 KiB of min/max to every row group's footer entry) and the storage facts of each image.
UNFILTERED: Final = frozenset(
    {"channels_json", "ome_xml", "acquisition_datetime", "layout", "compression"}
    | {f"chunk_{a}" for a in "tczyx"}
    | {f"physical_size_{a}_unit" for a in "xyz"}
)
_INDEX_COLS: Final = ["image_id", "chunk_id", "t", "c", "z", "y", "x", *[f"shape_{a}" for a in "tczyx"]]


def statistics_columns(schema: pa.Schema) -> list[str]:
    """The columns of images table ``schema`` written with Parquet statistics: those filters name (image ids, names,
    sizes, physical sizes, every metadata column of the user's) and that readers take from the footer (the sizes
    and dtype tell a plate of equal images); not :data:`UNFILTERED`. Tables written before this have statistics
    on every column and read the same."""
    return [n for n in schema.names if n not in UNFILTERED]


def appends_of(manifest: Mapping[str, Any], root: Path = Path(".")) -> list[Part]:
    """The append tables the manifest lists (``ome_arrow_core.appends``), in append order.

    Their names must be plain file names inside ``root`` (DamagedFileError otherwise).
    """
    source = str(root / MANIFEST)
    listed = (manifest.get("ome_arrow_core") or {}).get("appends") or []
    out = []
    for entry in listed:
        if not (
            isinstance(entry, Mapping) and isinstance(entry.get("images"), str) and isinstance(entry.get("index"), str)
        ):
            raise DamagedFileError(
                f"{source} lists append tables as {entry!r}; expected {{'images': 'images-NNNNN.parquet', "
                "'index': 'index-NNNNN.parquet'}: the manifest is damaged"
            )
        out.append(
            Part(
                check_member(root, entry["images"], source, "an append's images table"),
                check_member(root, entry["index"], source, "an append's index table"),
            )
        )
    return out


def parts_of(
    root: Path, manifest: Mapping[str, Any], verify: bool | None = None, *, lazy: bool = False, footers: bool = True
) -> list[Part]:
    """The parts of the dataset at ``root``, in order: the base tables, then each listed append's.

    Before any table is parsed, every table the manifest lists is checked against the digest it
    records (see :mod:`.table_sums`; ``verify=False`` or ``OME_ARROW_CORE_VERIFY=0`` skips it);
    ``lazy``: only their footers where the manifest records row-group digests (see :mod:`.group_sums`),
    the caller checking each row group before it reads it. ``footers=False`` (with ``lazy``): not even those when the
    manifest lists no appends (nothing here parses a table then): the caller checks them before it parses one.

    When images.parquet alone holds the manifest's ``image_count`` images, a compaction merged
    the appends into the base tables and was stopped before it replaced the manifest: the
    listed appends are already there, so they are not read again. Append tables the manifest
    does not list are refused (see :func:`~.checks.check_unlisted_appends`).
    """
    with blaming(root, MANIFEST):
        listed = appends_of(manifest, root)
    parts = [BASE, *listed]
    names = [n for p in parts for n in (p.images, p.index)]
    if footers or listed or not lazy:
        (check_footers if lazy else check_whole)(root, manifest, names, verify)
    if listed:
        file = _file(root, BASE.images, "images table")
        with reading(root, BASE.images, "reading the images table's footer"):
            rows = pq.read_metadata(file).num_rows
        if rows == _int(manifest.get("image_count", -1), root):
            parts = [BASE]

    def ids() -> pa.ChunkedArray:  # every listed images table is read whole: checked whole first
        check_whole(root, manifest, [p.images for p in parts], verify)
        return read_images(root, parts, ["image_id"])[0].column("image_id")

    check_unlisted_appends(root, [p.images for p in listed], ids, MANIFEST)
    return parts


def _int(value: Any, root: Path) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DamagedFileError(
            f"{root} [_ome_arrow_dataset.json]: image_count is {value!r}, expected an integer; the manifest is damaged"
        ) from None


def _file(root: Path, name: str, what: str) -> Path:
    """``root / name``, which must be a regular file (a missing one is a damaged dataset)."""
    file = root / name
    if not os.path.lexists(file):
        raise DamagedFileError(
            f"the manifest of {root} lists {what} {name!r}, but it is missing; the dataset is damaged"
        )
    return require_member(root, name)


def images_schema(root: Path, parts: Sequence[Part], by_group: Sequence[Any] | None = None) -> pa.Schema:
    """The columns of all parts' images tables together (footers only; a column some lack is null there;
    ``by_group``: each part's :class:`~.group_footers.GroupFooters` where its footer is not parsed whole)."""
    schemas = []
    for k, p in enumerate(parts):
        _file(root, p.images, "images table")
        known = by_group[k] if by_group is not None else None
        if known is not None:
            schemas.append(known.schema)
            continue
        md = footer(root, p.images)
        with reading(root, p.images, "reading the images table's schema"):
            schemas.append(md.schema.to_arrow_schema())
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SchemaError(f"the images tables of {root} have columns of different types: {exc}") from exc


def read_images(
    root: Path, parts: Sequence[Part], columns: list[str] | None = None, *, dictionary: Sequence[str] = ()
) -> tuple[pa.Table, np.ndarray]:
    """The images tables of ``parts`` as one table (rows in part order) and the part of each row.

    Columns named in ``dictionary`` are read dictionary-encoded (repeated strings stored once).
    """
    tables = []
    for p in parts:
        file = _file(root, p.images, "images table")
        with reading(root, p.images, "reading the images table"):
            if not dictionary:
                tables.append(pq.read_table(file, columns=columns))
                continue
            pf = pq.ParquetFile(file)  # not read_table: that imports pyarrow.dataset (54 MiB resident)
            have = set(pf.schema_arrow.names)
            # opened again for its dictionary columns, with the footer just parsed (not read and parsed twice)
            pf = pq.ParquetFile(
                file, metadata=pf.metadata, read_dictionary=[n for n in dictionary if n in have] or None
            )
            tables.append(pf.read(columns=columns, use_threads=False))
    return _concat(tables, root, "images")


def read_index(
    path: Path,
    pf: pq.ParquetFile | None = None,
    group_rows: np.ndarray | None = None,
    *,
    name: str = BASE.index,
    dictionary: bool = False,
) -> pa.Table:
    """Index table ``name`` of a dataset (the base one derived from chunks.parquet's own order when absent).

    Columns: the INDEX_SCHEMA ones but ``row_index_in_group``'s neighbours in the same order;
    ``fragment_path`` is filled with ``chunks.parquet`` where absent (dictionary-encoded with
    ``dictionary``: then reading it needs no pyarrow compute kernel).
    """
    index_path = path / name if name == BASE.index else _file(path, name, "index table")
    if os.path.lexists(index_path):
        require_member(path, name)
        with reading(path, name, "reading the index table"):
            # one open: its schema names the optional columns (dictionary decoding changes types, not names)
            with pq.ParquetFile(index_path, read_dictionary=["fragment_path"] if dictionary else None) as file:
                have = file.schema_arrow.names
                cols = [*_INDEX_COLS, "row_group_id", "row_index_in_group"]
                optional = [c for c in ("fragment_path", "checksum") if c in have]
                index = file.read(columns=[*cols, *optional], use_threads=False)
    else:  # no index: derive row positions from the chunk file's own order (coordinates only)
        with reading(path, "chunks.parquet", "deriving the index from the chunks file"):
            pf = pf or pq.ParquetFile(_file(path, "chunks.parquet", "chunks file"))
            if group_rows is None:
                group_rows = np.array(
                    [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)], dtype=np.int64
                )
            index = pf.read(columns=_INDEX_COLS)
        rows = np.arange(index.num_rows)
        starts = np.concatenate([[0], np.cumsum(group_rows)])
        rg = np.searchsorted(starts, rows, side="right") - 1
        index = index.append_column("row_group_id", pa.array(rg.astype(np.int32))).append_column(
            "row_index_in_group", pa.array((rows - starts[rg]).astype(np.int32))
        )
    if "fragment_path" not in index.column_names:
        main = (
            pa.DictionaryArray.from_arrays(pa.array(np.zeros(index.num_rows, np.int32)), pa.array(["chunks.parquet"]))
            if dictionary
            else pa.array(["chunks.parquet"] * index.num_rows, pa.string())
        )
        index = index.append_column("fragment_path", main)
    if "checksum" not in index.column_names:  # written before checksums: nothing to check
        index = index.append_column("checksum", pa.nulls(index.num_rows, pa.uint64()))
    return index


def read_indexes(root: Path, parts: Sequence[Part], *, dictionary: bool = False) -> tuple[pa.Table, np.ndarray]:
    """The index tables of ``parts`` as one table (rows in part order) and the part of each row
    (``dictionary``: ``fragment_path`` dictionary-encoded, see :func:`read_index`)."""
    tables = [read_index(root, name=p.index, dictionary=dictionary) for p in parts]
    return _concat(tables, root, "index")


def _concat(tables: list[pa.Table], root: Path, what: str) -> tuple[pa.Table, np.ndarray]:
    """``tables`` (one per part) as one table, and the part of each row."""
    part = np.repeat(np.arange(len(tables), dtype=np.int32), [t.num_rows for t in tables])
    if len(tables) == 1:
        return tables[0], part
    try:
        return pa.concat_tables(tables, promote_options="permissive"), part
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SchemaError(f"the {what} tables of {root} have columns of different types: {exc}") from exc


def own_rows(images: pa.Table, image_part: np.ndarray, index: pa.Table, index_part: np.ndarray) -> pa.Table:
    """The rows of ``index`` whose image is in their own part's images (others were left by an interrupted write)."""
    import pyarrow.compute as pc  # imported where used: reading one image needs no compute kernels

    pieces = []
    for k in range(int(max(image_part.max(initial=-1), index_part.max(initial=-1))) + 1):
        rows = np.nonzero(index_part == k)[0]
        if not len(rows):
            continue
        piece = index.slice(int(rows[0]), len(rows))
        ids = images.column("image_id").filter(pa.array(image_part == k)).combine_chunks()
        pieces.append(piece.filter(pc.is_in(piece.column("image_id"), value_set=ids)))
    return pa.concat_tables(pieces) if pieces else index.slice(0, 0)


def _column_max(file: Path, column: str) -> int:
    """The largest value of integer ``column`` of a Parquet file (-1 if empty), from its statistics where it has them."""
    with reading(file.parent, file.name, f"reading the largest {column}"):
        return _column_max_of(file, column)


def _column_max_of(file: Path, column: str) -> int:
    md = pq.read_metadata(file)
    at = md.schema.to_arrow_schema().get_field_index(column)
    best = -1
    for g in range(md.num_row_groups):
        stats = md.row_group(g).column(at).statistics
        if md.row_group(g).num_rows == 0:
            continue
        if stats is None or not stats.has_min_max:  # no statistics: read the column
            import pyarrow.compute as pc

            values = pq.read_table(file, columns=[column]).column(column)
            return int(pc.max(values).as_py() if len(values) else -1)
        best = max(best, int(stats.max))
    return best


def max_chunk_id(root: Path, parts: Sequence[Part]) -> int:
    """The largest chunk id of the dataset's parts (-1 if none), read from the footers of their index tables."""
    best = -1
    for p in parts:
        file = root / p.index
        if not file.exists() and p == BASE:
            file = root / "chunks.parquet"  # an ome-arrow 0.1.0 dataset without an index
        best = max(best, _column_max(_file(root, file.name, "index table"), "chunk_id"))
    return best
