"""Scanning a path into a dataset's members (chunk directories, record files, image files) and their tables.

A member's table is its metadata rows (no pixels), with each row's number in the member in
column :data:`ROW_COLUMN`; a filter is pushed down to the row groups of Parquet tables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..arrow_numpy import int_array, int_values
from ..boundary import blaming, reading, require_member, require_regular_file
from ..checksums import verify_enabled
from ..errors import ArgumentError, DamagedFileError, NotFoundError, SchemaError
from ..record import find_ome_column, is_ome_arrow_type
from ..registry import Registry, default_registry
from ..safe_write import recover
from ..typed_chunk import (
    check_image_rows,
    check_table_footers,
    check_whole_tables,
    images_schema,
    is_dataset_dir,
    parts_of,
    recorded_rows,
    records_uniform,
    shared_manifest,
    table_footer,
    table_rows,
)
from .column_filter import arrow_values, mapping_rows
from .filter_nulls import FILTER_ERRORS, filtered, is_many, refused_filter, term_values
from .reader_members import collection_table, file_member, reader_member

if TYPE_CHECKING:
    import pyarrow.compute as pc

__all__ = [
    "Kind",
    "FilterLike",
    "ROW_COLUMN",
    "Member",
    "as_filter",
    "members_of",
    "member_table",
    "member_count",
    "uniform_member",
]

Kind = Literal["chunks", "records", "file", "collection"]
#: A pyarrow expression, or a mapping of column to value (a list of values means "one of").
FilterLike: TypeAlias = "pc.Expression | Mapping[str, Any] | None"
#: Column of a scanned table holding each row's number in its member (dropped once the tables are joined).
ROW_COLUMN = "__ome_arrow_row"


def as_filter(spec: FilterLike) -> pc.Expression | None:
    """A pyarrow expression from ``spec``: an expression as is, or a mapping of column to value.

    A mapping's values are compared for equality; a list, tuple, set, range or 1-d numpy array means "one of".
    ``{"well": "A01", "site": [1, 2]}`` is ``(well == "A01") & is_in(site, [1, 2], skip_nulls=True)``: a null
    row matches no value and None matches no row (see :mod:`.filter_nulls`).
    """
    if spec is None:
        return None
    import pyarrow.compute as pc  # only with a filter: a plain scan loads no compute kernels

    if isinstance(spec, pc.Expression):
        return spec
    if not isinstance(spec, Mapping) or not spec:
        raise ArgumentError(
            f"filter must be a pyarrow expression or a non-empty mapping of column to value, got {spec!r}"
        )
    expr: pc.Expression | None = None
    for name, value in spec.items():
        field = pc.field(str(name))
        values = term_values(value, name)
        if not values:  # one of nothing (or None, which equals nothing): keeps nothing
            term = pc.scalar(pa.Array.from_buffers(pa.bool_(), 1, [None, pa.py_buffer(b"\0")])[0])
        else:
            try:
                wanted = arrow_values(values)
            except FILTER_ERRORS as exc:
                raise ArgumentError(
                    f"filter {{{name!r}: {value!r:.60}}}: {exc}; a term is one value (str, int, float, bool, date) "
                    "or a list, tuple, set, range or 1-d numpy array of values of one type"
                ) from exc
            term = pc.is_in(field, value_set=wanted, skip_nulls=True) if is_many(value) else field == wanted[0]
        expr = term if expr is None else expr & term
    return expr


@dataclass(frozen=True)
class Member:
    """One storage a dataset path holds: a typed-chunk directory, a Parquet file of records, or an image file."""

    kind: Kind
    path: str
    column: str | None = None
    #: Records without metadata columns: the table names them (``image_id``, ``path``).
    named: bool = False


def _records_member(path: Path, column: str | None) -> Member:
    """A Parquet file of records; one record alone, without metadata columns, is an image file like any.

    Bytes that are not Parquet are a :class:`DamagedFileError` naming ``path``, as ``OMEArrow.scan`` says."""
    with reading(path, None, "reading the Parquet schema"):
        schema = pq.read_schema(path)
    try:
        find_ome_column(schema, column)  # a clear error when there is none, or several
    except SchemaError as exc:
        raise SchemaError(f"{path}: {exc}") from exc
    if any(not is_ome_arrow_type(f.type) for f in schema):
        return Member("records", str(path), column)
    with reading(path, None, "reading the Parquet footer"):
        rows = pq.read_metadata(path).num_rows
    if rows == 1:
        return Member("file", str(path), column)
    return Member("records", str(path), column, named=True)


def _scan_parquet(
    file: Path,
    expr: pc.Expression | None,
    columns: list[str] | None,
    *,
    schema: pa.Schema | None = None,
    first_row: int = 0,
    metadata: pq.FileMetaData | None = None,
) -> tuple[pa.Table, int, int]:
    """Rows of ``file`` matching ``expr`` (``columns`` only) with their row numbers in column ``ROW_COLUMN``.

    The filter is pushed down: row groups whose statistics rule it out are not read.
    ``schema`` (columns of several files together) makes a column the file lacks null for
    the filter; row numbers start at ``first_row``. Returns (table, row groups read, row
    groups in the file). ``metadata`` is the file's footer, when the caller has read it.
    """
    require_member(file.parent, file.name)
    with reading(file.parent, file.name, "scanning the table"):
        return _scan_parquet_file(file, expr, columns, schema=schema, first_row=first_row, metadata=metadata)


def _scan_parquet_file(
    file: Path,
    expr: pc.Expression | None,
    columns: list[str] | None,
    *,
    schema: pa.Schema | None,
    first_row: int,
    metadata: pq.FileMetaData | None,
) -> tuple[pa.Table, int, int]:
    md = metadata or pq.read_metadata(file)
    starts = np.zeros(md.num_row_groups + 1, dtype=np.int64)
    np.cumsum([md.row_group(i).num_rows for i in range(md.num_row_groups)], out=starts[1:])
    starts += first_row
    if expr is None:
        table = pq.ParquetFile(file).read(columns=columns, use_threads=False)  # read_table imports pandas
        rows = np.arange(first_row, first_row + table.num_rows, dtype=np.int64)
        return table.append_column(ROW_COLUMN, int_array(rows)), md.num_row_groups, md.num_row_groups
    import pyarrow.dataset as pads  # (imports pandas: only for an expression)

    fragment = next(iter(pads.dataset(file, format="parquet").get_fragments()))
    try:
        pieces = fragment.split_by_row_group(expr, schema=schema)
        parts = []
        for piece in pieces:
            rg = piece.row_groups[0].id
            t = piece.to_table(schema=schema, columns=columns)
            t = t.append_column(ROW_COLUMN, int_array(np.arange(starts[rg], starts[rg] + t.num_rows, dtype=np.int64)))
            parts.append(t.filter(expr))
    except FILTER_ERRORS as exc:
        full = schema or md.schema.to_arrow_schema()
        if not any(pa.types.is_null(f.type) for f in full):
            raise refused_filter(expr, f" to {file}", full.names, exc) from exc
        whole = fragment.to_table(schema=schema, columns=columns)  # a column of type null: read whole, then
        whole = whole.append_column(
            ROW_COLUMN, int_array(np.arange(first_row, first_row + whole.num_rows, dtype=np.int64))
        )
        try:  # ... filtered as an all-null column of the type the filter wants (filter_nulls)
            return filtered(whole, expr), md.num_row_groups, md.num_row_groups
        except FILTER_ERRORS as again:
            raise refused_filter(expr, f" to {file}", full.names, exc) from again
    if not parts:
        schema = schema or pq.read_schema(file)
        if columns is not None:
            schema = pa.schema([schema.field(c) for c in columns])
        return schema.append(pa.field(ROW_COLUMN, pa.int64())).empty_table(), 0, md.num_row_groups
    return pa.concat_tables(parts), len(pieces), md.num_row_groups


def _scan_images(
    path: Path, expr: pc.Expression | None, verify: bool | None = None, columns: list[str] | None = None
) -> tuple[pa.Table, int, int]:
    """:func:`_scan_parquet` over the images tables of a chunk dataset (the base, then each append's), rows numbered
    across them (the tables checked against the manifest's digests first unless ``verify`` is False; ``columns``
    only, when given): the index tables' footers only, their row groups are checked when an image reads them."""
    manifest = shared_manifest(path)
    parts = parts_of(path, manifest, verify, lazy=True)
    check_whole_tables(path, manifest, [p.images for p in parts], verify)  # read whole (the columns asked for)
    check_image_rows(path, parts, lambda name: table_footer(path, name).num_rows)  # footers: a lie fails small
    if len(parts) == 1:
        return _scan_parquet(path / parts[0].images, expr, columns)
    schema = images_schema(path, parts)
    tables, read, total, first = [], 0, 0, 0
    for part in parts:
        with reading(path, part.images, "reading the images table's footer"):
            md = pq.read_metadata(require_member(path, part.images))
        table, r, n = _scan_parquet(path / part.images, expr, columns, schema=schema, first_row=first, metadata=md)
        tables.append(table)
        read, total, first = read + r, total + n, first + md.num_rows
    return pa.concat_tables(tables, promote_options="permissive"), read, total


def kept_rows(part: Member, spec: FilterLike, verify: bool | None = None) -> np.ndarray | None:
    """Rows of chunk dataset ``part`` that filter ``spec`` keeps, reading only the columns it names, or None when
    that cannot be told (another kind of member; a column it names that the tables lack, or spells otherwise):
    then the whole table decides. A mapping is evaluated column by column (pyarrow.dataset, which an expression
    needs, imports pandas: ~0.4 s); an expression is pushed down to the row groups."""
    expr = as_filter(spec)
    if part.kind != "chunks" or expr is None:
        return None
    path = Path(part.path)
    try:
        if isinstance(spec, Mapping):  # streamed: the named columns a batch of row groups at a time
            manifest = shared_manifest(path)
            return mapping_rows(path, manifest, parts_of(path, manifest, verify, lazy=True), spec, verify)
        have = images_schema(path, parts_of(path, shared_manifest(path), False, lazy=True)).names
        named = [n for n in have if n in str(expr)]
        if not named:
            return None
        return int_values(_scan_images(path, expr, verify, named)[0].column(ROW_COLUMN))
    except DamagedFileError:
        raise  # damage is refused here, not left to the whole table
    except (SchemaError, pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None  # the whole table decides (and says what is wrong)


def member_count(part: Member, verify: bool | None = None) -> tuple[int, int] | None:
    """(images, row groups of its tables) of chunk dataset ``part`` from its tables' footers, checked as
    :func:`_scan_images` checks them (digests first); None for other kinds (their table is read to count)."""
    if part.kind != "chunks":
        return None
    path = Path(part.path)
    manifest = shared_manifest(path)
    # no footer hashed yet (a million images: 3.8 MB): the first read checks each before it parses it
    parts = parts_of(path, manifest, verify, lazy=True, footers=False)
    names = [n for p in parts for n in (p.images, p.index)]
    if verify_enabled(verify):  # the counts the manifest records beside the footers' digests
        shapes = [recorded_rows(path, manifest, n) for n in names]
        if all(s is not None for s in shapes):
            images = [s for s in shapes[0::2] if s is not None]
            count = sum(s[0] for s in images)
            if count <= sum(s[0] for s in shapes[1::2] if s is not None) and count == manifest.get("image_count"):
                return count, sum(s[1] for s in images)
    check_table_footers(path, manifest, names, verify)  # the footers count: checked before they are parsed
    rows, groups = 0, 0
    for p in parts:
        rows += table_rows(path, p.images)
        groups += table_footer(path, p.images).num_row_groups
    check_image_rows(path, parts, lambda name: table_footer(path, name).num_rows)  # footers: a lie fails small
    return rows, groups


def uniform_member(part: Member) -> bool:
    """True when every image of chunk dataset ``part`` has the same sizes and dtype, by its images tables' footer
    statistics (False when a statistic is missing: then the rows decide, image by image)."""
    path = Path(part.path)
    cols = [f"size_{a}" for a in "tczyx"] + ["dtype"]
    seen: dict[str, object] = {}
    manifest = shared_manifest(path)
    parts = parts_of(path, manifest, None, lazy=True, footers=False)  # no footer parsed where no append is listed
    by_records = records_uniform(manifest, [p.images for p in parts], cols)  # the variants: no footer parsed
    if by_records is not None:
        return by_records
    # the footers parts_of left unchecked (it checks them with appends listed; once per process either way)
    check_table_footers(path, manifest, [n for p in parts for n in (p.images, p.index)])
    for p in parts:
        md = table_footer(path, p.images)  # parsed once per file version (the scan parsed it)
        names = md.schema.to_arrow_schema().names
        if not set(cols) <= set(names):
            return False
        for g in range(md.num_row_groups):
            group = md.row_group(g)
            for c in cols:
                st = group.column(names.index(c)).statistics
                if st is None or not st.has_min_max or st.null_count != 0 or st.min != st.max:
                    return False
                if seen.setdefault(c, st.min) != st.min:
                    return False
    return True


def members_of(path: Path, column: str | None, registry: Registry | None) -> list[Member]:
    """The members of ``path``: itself, or the dataset directories, Parquet and image files in it (by name;
    ``registry`` None: the shared one, loaded only when a file is not a dataset or Parquet)."""
    if not os.path.lexists(path):
        recover(path)  # a killed overwrite may have left the old copy aside: it goes back
    if path.is_dir() and is_dataset_dir(path):
        return [Member("chunks", str(path))]
    if path.is_dir() and (found := reader_member(path, registry or default_registry(), column)) is not None:
        return [Member(found, str(path), column)]  # an OME-Zarr image or plate
    if path.is_file():
        if path.suffix in (".parquet", ".pq"):
            return [_records_member(path, column)]
        (registry or default_registry()).resolve_reader(path)  # raises naming the formats that are known
        return [Member(file_member(path, registry or default_registry(), column), str(path), column)]
    if os.path.lexists(path) and not path.is_dir():
        require_regular_file(path)  # a FIFO or device: refused, never opened
    if not path.is_dir():
        raise NotFoundError(f"no such file or directory: {str(path)!r}")
    parts: list[Member] = []
    for child in sorted(path.iterdir()):
        if child.name.startswith((".", "_")):
            continue
        if child.is_dir() and is_dataset_dir(child):
            parts.append(Member("chunks", str(child)))
        elif child.is_file() and child.suffix in (".parquet", ".pq"):
            try:
                parts.append(_records_member(child, column))
            except SchemaError as exc:  # one file of many: which one
                if str(child) in str(exc):
                    raise
                raise type(exc)(f"{child}: {exc}") from exc
        elif child.is_file():
            try:
                (registry or default_registry()).resolve_reader(child)
            except Exception:  # not an image file: skip it
                continue
            parts.append(Member(file_member(child, registry or default_registry(), column), str(child), column))
        elif child.is_dir():
            try:
                found = reader_member(child, registry or default_registry(), column)
            except Exception:  # not an image directory a reader opens: skip it
                continue
            if found is not None:
                parts.append(Member(found, str(child), column))
    if not parts:
        raise SchemaError(
            f"{path} holds no images: expected an OME-Arrow dataset directory, Parquet files with an "
            "OME-Arrow struct column, or image files a reader plugin opens (.vortex, .ome.tiff...)"
        )
    return parts


def _named_records(path: Path, expr: pc.Expression | None) -> tuple[pa.Table, int, int]:
    """The table of a Parquet file of records without metadata columns: ``image_id`` (``name#row``) and ``path``."""
    with reading(path, None, "reading the Parquet footer"):
        md = pq.read_metadata(path)
    table = pa.table(
        {
            "image_id": [f"{path.name}#{i}" for i in range(md.num_rows)],
            "path": [str(path)] * md.num_rows,
            ROW_COLUMN: pa.array(np.arange(md.num_rows, dtype=np.int64)),
        }
    )
    return _filtered(table, expr, "records without metadata columns"), md.num_row_groups, md.num_row_groups


def _filtered(table: pa.Table, expr: pc.Expression | None, what: str) -> pa.Table:
    if expr is None:
        return table
    try:
        return table.filter(expr)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise refused_filter(expr, f" to {what}", ["image_id", "path"], exc) from exc


def member_table(
    part: Member, expr: pc.Expression | None, verify: bool | None = None, registry: Registry | None = None
) -> tuple[pa.Table, int, int]:
    """The rows of ``part`` that ``expr`` keeps (row numbers in :data:`ROW_COLUMN`), row groups read, row groups
    (``verify``: see :func:`_scan_images`)."""
    path = Path(part.path)
    if part.kind == "collection":
        return collection_table(part.path, expr, ROW_COLUMN, registry, part.column)
    if part.kind == "chunks":
        return _scan_images(path, expr, verify)
    if part.kind == "records":
        require_regular_file(path)
        with reading(path, None, "reading the Parquet schema"):
            schema = pq.read_schema(path)
        with blaming(path):
            find_ome_column(schema, part.column)  # a clear error when there is none, or several
        if part.named:
            return _named_records(path, expr)
        meta_cols = [f.name for f in schema if not is_ome_arrow_type(f.type)]
        return _scan_parquet(path, expr, meta_cols)
    table = pa.table({"image_id": [path.name], "path": [str(path)], ROW_COLUMN: pa.array([0], pa.int64())})
    return _filtered(table, expr, "image files"), 1, 1
