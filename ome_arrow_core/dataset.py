"""Many images: OMEArrowDataset (scan, filter, random access, batched reads) and write_dataset.

A dataset is one image per row of a table plus any metadata columns (plate, well, site,
labels...). Three storages are read:

- a typed-chunk dataset directory (what :func:`write_dataset` writes): ``images.parquet``
  (then each append's ``images-NNNNN.parquet``) is the table, pixels are chunk rows found
  through ``index.parquet`` (and each append's ``index-NNNNN.parquet``);
- a Parquet file with an OME-Arrow struct column, one image per row (CytoDataFrame-style):
  the other columns are the table; opening an image reads the row group holding it;
- single-image files any reader plugin opens (``.vortex``, ``.ome.tiff``...): the table
  has ``image_id`` (the file name) and ``path``.

A directory of any of these (Parquet files, dataset directories, image files) is one
dataset, in file-name order.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .arguments import check_index, whole_numbers
from .boundary import blaming, reading, require_member, require_regular_file
from .casting import Casting, cast_pixels, check_casting, copy_cast
from .cleanup import recover
from .dataset_bounds import check_image_rows
from .dataset_format import read_manifest
from .dataset_tables import images_schema, parts_of
from .errors import LayoutError, SchemaError, SelectionTypeError
from .image import OMEArrow, resolve_selection
from .layout import AXES, ChannelPolicy, default_layout, normalize_axes
from .lazy import LazyTensorView
from .meta import ImageMeta
from .parquet_dataset import (
    IMAGES_SCHEMA,
    DatasetSource,
    is_dataset_dir,
    read_rows,
    stream_dataset,
)
from .parquet_record import RecordSource
from .progress import Progress
from .registry import Registry, default_registry
from .schema import find_ome_column, is_ome_arrow_type
from .selection import IndexSpec, Selection

__all__ = ["OMEArrowDataset", "DatasetViews", "ImageLocation", "write_dataset", "as_filter"]

Kind = Literal["chunks", "records", "file"]
#: A pyarrow expression, or a mapping of column to value (a list of values means "one of").
FilterLike: TypeAlias = "pc.Expression | Mapping[str, Any] | None"
_ROW = "__ome_arrow_row"


def as_filter(spec: FilterLike) -> pc.Expression | None:
    """A pyarrow expression from ``spec``: an expression as is, or a mapping of column to value.

    A mapping's values are compared for equality; a list, tuple or set means "one of".
    ``{"well": "A01", "site": [1, 2]}`` is ``(well == "A01") & site.isin([1, 2])``.
    """
    if spec is None or isinstance(spec, pc.Expression):
        return spec
    if not isinstance(spec, Mapping) or not spec:
        raise SchemaError(
            f"filter must be a pyarrow expression or a non-empty mapping of column to value, got {spec!r}"
        )
    expr: pc.Expression | None = None
    for name, value in spec.items():
        field = pc.field(str(name))
        term = field.isin(list(value)) if isinstance(value, (list, tuple, set, frozenset)) else field == value
        expr = term if expr is None else expr & term
    return expr


@dataclass(frozen=True)
class ImageLocation:
    """Where one image of a dataset lives; small and picklable, so any process can open it."""

    kind: Kind
    path: str
    row: int = 0
    column: str | None = None
    #: Check checksums on read (None: unless ``OME_ARROW_CORE_VERIFY=0``); see :mod:`.checksums`.
    verify: bool | None = None

    def open(self, registry: Registry | None = None) -> OMEArrow:
        """The image, lazily (metadata read; pixels when a view is executed)."""
        path = Path(self.path)
        if self.kind == "chunks":
            with reading(path, None, f"opening image {self.row}"), blaming(path):
                src: Any = DatasetSource(path, row=self.row, verify=self.verify)
        elif self.kind == "records":
            src = RecordSource(path, column=self.column, row=self.row, verify=self.verify)
        else:
            options: dict[str, Any] = {} if self.verify is None else {"verify": self.verify}
            return OMEArrow.scan(path, registry=registry, **options)
        return OMEArrow._from_parts(src, Selection.full(src.meta.sizes), True, registry)


@dataclass(frozen=True)
class _Part:
    kind: Kind
    path: str
    column: str | None = None
    #: Records without metadata columns: the table names them (``image_id``, ``path``).
    named: bool = False


def _records_part(path: Path, column: str | None) -> _Part:
    """A Parquet file of records; one record alone, without metadata columns, is an image file like any."""
    schema = pq.read_schema(path)
    find_ome_column(schema, column)  # a clear error when there is none, or several
    if any(not is_ome_arrow_type(f.type) for f in schema):
        return _Part("records", str(path), column)
    if pq.read_metadata(path).num_rows == 1:
        return _Part("file", str(path))
    return _Part("records", str(path), column, named=True)


def _scan_parquet(file: Path, expr: pc.Expression | None, columns: list[str] | None, *,
                  schema: pa.Schema | None = None, first_row: int = 0,
                  metadata: pq.FileMetaData | None = None) -> tuple[pa.Table, int, int]:
    """Rows of ``file`` matching ``expr`` (``columns`` only) with their row numbers in column ``_ROW``.

    The filter is pushed down: row groups whose statistics rule it out are not read.
    ``schema`` (columns of several files together) makes a column the file lacks null for
    the filter; row numbers start at ``first_row``. Returns (table, row groups read, row
    groups in the file). ``metadata`` is the file's footer, when the caller has read it.
    """
    require_member(file.parent, file.name)
    with reading(file.parent, file.name, "scanning the table"):
        return _scan_parquet_file(file, expr, columns, schema=schema, first_row=first_row, metadata=metadata)


def _scan_parquet_file(file: Path, expr: pc.Expression | None, columns: list[str] | None, *,
                       schema: pa.Schema | None, first_row: int,
                       metadata: pq.FileMetaData | None) -> tuple[pa.Table, int, int]:
    import pyarrow.dataset as pads

    md = metadata or pq.read_metadata(file)
    starts = np.zeros(md.num_row_groups + 1, dtype=np.int64)
    np.cumsum([md.row_group(i).num_rows for i in range(md.num_row_groups)], out=starts[1:])
    starts += first_row
    if expr is None:
        table = pq.read_table(file, columns=columns)
        rows = np.arange(first_row, first_row + table.num_rows, dtype=np.int64)
        return table.append_column(_ROW, pa.array(rows)), md.num_row_groups, md.num_row_groups
    fragment = next(iter(pads.dataset(file, format="parquet").get_fragments()))
    try:
        pieces = fragment.split_by_row_group(expr, schema=schema)
        parts = []
        for piece in pieces:
            rg = piece.row_groups[0].id
            t = piece.to_table(schema=schema, columns=columns)
            t = t.append_column(_ROW, pa.array(np.arange(starts[rg], starts[rg] + t.num_rows, dtype=np.int64)))
            parts.append(t.filter(expr))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        names = (schema or pq.read_schema(file)).names
        raise SchemaError(f"filter {expr} cannot be applied to {file} (columns: {names}): {exc}") from exc
    if not parts:
        schema = schema or pq.read_schema(file)
        if columns is not None:
            schema = pa.schema([schema.field(c) for c in columns])
        return schema.append(pa.field(_ROW, pa.int64())).empty_table(), 0, md.num_row_groups
    return pa.concat_tables(parts), len(pieces), md.num_row_groups


def _scan_images(path: Path, expr: pc.Expression | None) -> tuple[pa.Table, int, int]:
    """:func:`_scan_parquet` over the images tables of a chunk dataset (the base, then each append's), rows numbered across them."""
    parts = parts_of(path, read_manifest(path))
    check_image_rows(path, parts, lambda name: pq.read_metadata(path / name).num_rows)  # footers: a lie fails small
    if len(parts) == 1:
        return _scan_parquet(path / parts[0].images, expr, None)
    schema = images_schema(path, parts)
    tables, read, total, first = [], 0, 0, 0
    for part in parts:
        with reading(path, part.images, "reading the images table's footer"):
            md = pq.read_metadata(require_member(path, part.images))
        table, r, n = _scan_parquet(path / part.images, expr, None, schema=schema, first_row=first, metadata=md)
        tables.append(table)
        read, total, first = read + r, total + n, first + md.num_rows
    return pa.concat_tables(tables, promote_options="permissive"), read, total


def _parts_of(path: Path, column: str | None, registry: Registry) -> list[_Part]:
    if not os.path.lexists(path):
        recover(path)  # a killed overwrite may have left the old copy aside: it goes back
    if path.is_dir() and is_dataset_dir(path):
        return [_Part("chunks", str(path))]
    if path.is_file():
        if path.suffix in (".parquet", ".pq"):
            return [_records_part(path, column)]
        registry.resolve_reader(path)  # raises naming the formats that are known
        return [_Part("file", str(path))]
    if os.path.lexists(path) and not path.is_dir():
        require_regular_file(path)  # a FIFO or device: refused, never opened
    if not path.is_dir():
        raise FileNotFoundError(f"no such file or directory: {str(path)!r}")
    parts: list[_Part] = []
    for child in sorted(path.iterdir()):
        if child.name.startswith((".", "_")):
            continue
        if child.is_dir() and is_dataset_dir(child):
            parts.append(_Part("chunks", str(child)))
        elif child.is_file() and child.suffix in (".parquet", ".pq"):
            parts.append(_records_part(child, column))
        elif child.is_file():
            try:
                registry.resolve_reader(child)
            except Exception:  # not an image file: skip it
                continue
            parts.append(_Part("file", str(child)))
    if not parts:
        raise SchemaError(
            f"{path} holds no images: expected an OME-Arrow dataset directory, Parquet files with an "
            "OME-Arrow struct column, or image files a reader plugin opens (.vortex, .ome.tiff...)"
        )
    return parts


def _named_records(path: Path, expr: pc.Expression | None) -> tuple[pa.Table, int, int]:
    """The table of a Parquet file of records without metadata columns: ``image_id`` (``name#row``) and ``path``."""
    md = pq.read_metadata(path)
    table = pa.table({"image_id": [f"{path.name}#{i}" for i in range(md.num_rows)], "path": [str(path)] * md.num_rows,
                      _ROW: pa.array(np.arange(md.num_rows, dtype=np.int64))})
    return _filtered(table, expr, "records without metadata columns"), md.num_row_groups, md.num_row_groups


def _filtered(table: pa.Table, expr: pc.Expression | None, what: str) -> pa.Table:
    if expr is None:
        return table
    try:
        return table.filter(expr)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SchemaError(f"filter {expr} cannot be applied to {what} (columns: image_id, path): {exc}") from exc


def _part_table(part: _Part, expr: pc.Expression | None) -> tuple[pa.Table, int, int]:
    path = Path(part.path)
    if part.kind == "chunks":
        return _scan_images(path, expr)
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
    table = pa.table({"image_id": [path.name], "path": [str(path)], _ROW: pa.array([0], pa.int64())})
    return _filtered(table, expr, "image files"), 1, 1


class OMEArrowDataset(Sequence[OMEArrow]):
    """Many images, one per row of a metadata table; each opened lazily on access.

    ``ds[i]`` is a lazy :class:`OMEArrow` (only that image's rows are read, found through
    an index), ``ds.table`` the metadata (no pixels), ``ds.tensor_views(...)`` one
    selection applied to every image and ``ds.read(indices, ...)`` a stacked batch read in
    one pass over the files. The object holds no open files, so it pickles to worker
    processes, each of which opens its own.
    """

    def __init__(self, parts: Sequence[_Part], table: pa.Table, part_of: np.ndarray, rows: np.ndarray,
                 *, registry: Registry | None = None, row_groups: tuple[int, int] = (0, 0),
                 verify: bool | None = None) -> None:
        self._parts = list(parts)
        self._verify = verify
        self._table = table
        self._part_of = np.asarray(part_of, dtype=np.int32)
        self._rows = np.asarray(rows, dtype=np.int64)
        self._registry = registry
        self._uniform: set[int] | None = None
        #: (row groups read, row groups in the files) when the table was scanned with a filter.
        self.row_groups_scanned = row_groups

    @classmethod
    def scan(cls, path: str | os.PathLike[str], *, filter: FilterLike = None, column: str | None = None,
             registry: Registry | None = None, verify: bool | None = None) -> OMEArrowDataset:
        """Open a dataset: read its metadata table (the rows ``filter`` keeps), no pixels.

        ``filter`` is a pyarrow expression (``pc.field("well") == "A01"``) or a mapping
        (``{"well": "A01"}``); it is pushed down to the row groups of the table's Parquet file.
        ``column`` picks the OME-Arrow column of Parquet files that have several.
        ``verify=False`` skips the checksum check of every pixel read (None: check unless the
        environment sets ``OME_ARROW_CORE_VERIFY=0``).
        """
        reg = registry or default_registry()
        expr = as_filter(filter)
        tables, part_of, rows = [], [], []
        scanned = total = 0
        parts = _parts_of(Path(path), column, reg)
        for k, part in enumerate(parts):
            table, read, count = _part_table(part, expr)
            scanned, total = scanned + read, total + count
            rows.append(table.column(_ROW).to_numpy())
            part_of.append(np.full(table.num_rows, k, dtype=np.int32))
            tables.append(table.drop_columns([_ROW]).replace_schema_metadata(None))
        try:
            table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise SchemaError(f"the metadata columns of the files under {path} do not agree: {exc}") from exc
        return cls(parts, table, np.concatenate(part_of), np.concatenate(rows), registry=registry,
                   row_groups=(scanned, total), verify=verify)

    # -- the table ---------------------------------------------------------------------------
    @property
    def table(self) -> pa.Table:
        """The metadata table: one row per image, no pixels."""
        return self._table

    @property
    def column_names(self) -> list[str]:
        """Columns of :attr:`table`."""
        return list(self._table.column_names)

    @property
    def extra_columns(self) -> list[str]:
        """Columns other than the dataset's own (for a chunk dataset: those beyond IMAGES_SCHEMA)."""
        own = set(IMAGES_SCHEMA.names) if all(p.kind == "chunks" for p in self._parts) else {"image_id", "path"}
        if any(p.kind == "records" for p in self._parts):
            own = {"image_id", "path"} if all(p.named for p in self._parts if p.kind == "records") else set()
        return [n for n in self._table.column_names if n not in own]

    def metadata(self, i: int) -> dict[str, Any]:
        """Row ``i`` of :attr:`table` as a dict."""
        return self._table.slice(self._index(i), 1).to_pylist()[0]  # type: ignore[no-any-return]

    def __len__(self) -> int:
        return int(self._table.num_rows)

    def __repr__(self) -> str:
        kinds = sorted({p.kind for p in self._parts})
        return f"OMEArrowDataset({len(self)} images, {len(self._parts)} part(s) [{', '.join(kinds)}], columns={self.column_names})"

    def _index(self, i: int) -> int:
        return check_index(i, len(self))

    # -- images ------------------------------------------------------------------------------
    def locate(self, i: int) -> ImageLocation:
        """Where image ``i`` lives (a picklable handle; ``.open()`` gives the image)."""
        k = self._index(i)
        part = self._parts[int(self._part_of[k])]
        return ImageLocation(part.kind, part.path, int(self._rows[k]), part.column, self._verify)

    def __getitem__(self, i: int) -> OMEArrow:  # type: ignore[override]
        """Image ``i``, lazily: metadata now, only its own pixels when a view runs."""
        if isinstance(i, slice):
            raise SelectionTypeError("use ds.select(range(...)) for a sub-dataset; ds[i] takes one integer")
        return self.locate(i).open(self._registry)

    def __iter__(self) -> Iterator[OMEArrow]:
        for i in range(len(self)):
            yield self[i]

    def select(self, indices: Sequence[int] | np.ndarray | range) -> OMEArrowDataset:
        """The images at ``indices`` (in that order) as a dataset."""
        idx = np.array([self._index(i) for i in indices], dtype=np.int64)
        return OMEArrowDataset(self._parts, self._table.take(pa.array(idx, pa.int64())), self._part_of[idx],
                               self._rows[idx], registry=self._registry, verify=self._verify)

    def filter(self, filter: FilterLike) -> OMEArrowDataset:
        """The images whose metadata rows match ``filter`` (evaluated on :attr:`table`)."""
        expr = as_filter(filter)
        if expr is None:
            return self
        marked = self._table.append_column(_ROW, pa.array(np.arange(len(self), dtype=np.int64)))
        try:
            kept = marked.filter(expr).column(_ROW).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise SchemaError(f"filter {expr} cannot be applied (columns: {self.column_names}): {exc}") from exc
        return self.select(kept)

    def shuffled(self, seed: int) -> OMEArrowDataset:
        """The images in a random order drawn from ``seed`` (the same order for the same seed)."""
        return self.select(np.random.default_rng(seed).permutation(len(self)))

    # -- views and batched reads ---------------------------------------------------------------
    def tensor_views(
        self,
        t: IndexSpec = None,
        z: IndexSpec = None,
        c: IndexSpec = None,
        *,
        roi: Sequence[int] | None = None,
        layout: str | None = None,
        dtype: Any = None,
        channel_policy: ChannelPolicy = "error",
        casting: Casting = "checked",
    ) -> DatasetViews:
        """One selection (``t``, ``z``, ``c``, ``roi=(x, y, w, h)``, ``layout``) for every image.

        Nothing is read: items are :class:`LazyTensorView` objects, and
        :meth:`DatasetViews.read` reads many of them as one stacked array. ``dtype`` casts
        as :meth:`OMEArrow.tensor_view` does (``casting="checked"`` refuses values it
        cannot hold; ``"unsafe"`` converts as numpy does).
        """
        return DatasetViews(self, dict(t=t, z=z, c=c, roi=roi), layout, dtype, channel_policy, check_casting(casting))

    def read(
        self,
        indices: Sequence[int] | np.ndarray | range | None = None,
        *,
        t: IndexSpec = None,
        z: IndexSpec = None,
        c: IndexSpec = None,
        roi: Sequence[int] | None = None,
        rois: Sequence[Sequence[int] | None] | None = None,
        layout: str | None = None,
        channel_policy: ChannelPolicy = "error",
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Pixels of images ``indices`` (default: all) stacked on a new first axis, dtype kept.

        Every image gets the same ``t``, ``z``, ``c`` and ``layout``; ``roi=(x, y, w, h)``
        crops them all, or ``rois`` gives one crop per index. The selected shapes must
        agree. Images of a chunk dataset are read together: one Parquet read per chunk
        file for the whole batch, then one copy per chunk into the result (or ``out``, a
        writable C-contiguous array of the right shape and dtype, e.g. a pinned buffer).
        """
        idx = [self._index(i) for i in (range(len(self)) if indices is None else indices)]
        if not idx:
            raise SchemaError("read() got no indices; pass at least one image")
        if rois is not None and len(rois) != len(idx):
            raise SchemaError(f"rois has {len(rois)} entries for {len(idx)} images; give one per image")
        uniform = self._uniform_parts()
        bases: dict[tuple[int, int], tuple[Selection, str, np.dtype]] = {}
        sels: list[Selection] = []
        images: dict[int, OMEArrow] = {}  # images of other storages, opened once
        for n, k in enumerate(idx):
            part = int(self._part_of[k])
            key = (part, -1) if part in uniform else (part, int(self._rows[k]))
            base = bases.get(key)
            if base is None:
                if self._parts[part].kind == "chunks":
                    meta = self._meta(k)
                else:
                    images[k] = self[k]
                    meta = images[k].meta
                sel0 = resolve_selection(Selection.full(meta.sizes), meta, t=t, z=z, c=c, roi=roi)
                lay = normalize_axes(layout) if layout is not None else default_layout(len(sel0.t), len(sel0.z))
                if channel_policy == "first" and "C" not in lay and len(sel0.c) > 1:
                    sel0 = sel0.select(c=0)
                base = bases[key] = (sel0, lay, meta.dtype)
            crop = rois[n] if rois is not None else None
            if crop is None:
                sels.append(base[0])
            else:
                x0, y0, w, h = whole_numbers(crop, f"rois[{n}]=(x, y, w, h)")
                sels.append(base[0].select(y=range(y0, y0 + h), x=range(x0, x0 + w)))
        layouts = {b[1] for b in bases.values()}
        dtypes = {b[2] for b in bases.values()}
        if len(dtypes) > 1:
            paths = sorted({self._parts[int(self._part_of[k])].path for k in idx})
            raise SchemaError(f"the images have different dtypes {sorted(d.name for d in dtypes)} (in {', '.join(paths)}); "
                              "read them one by one")
        if len(layouts) > 1:
            raise SchemaError(f"the images' default layouts differ ({sorted(layouts)}); pass layout=")
        lay, dtype = layouts.pop(), dtypes.pop()
        shapes = {s.shape for s in sels}
        if len(shapes) > 1:
            raise SchemaError(
                f"the selected images have different shapes {sorted(shapes)} (TZCYX); crop them to a common "
                "shape with roi= (or rois=), or read them one by one"
            )
        want = (len(idx), *_layout_shape(sels[0], lay))
        if out is None:
            out = np.empty(want, dtype=dtype)
        elif out.shape != want or out.dtype != dtype or not out.flags.writeable:
            raise SchemaError(f"out must be a writable {want} {dtype} array, got {out.shape} {out.dtype}")
        canon = _canonical(out, lay, batch=True)
        by_part: dict[int, list[int]] = {}
        for n, k in enumerate(idx):
            by_part.setdefault(int(self._part_of[k]), []).append(n)
        for part_i, members in by_part.items():
            where = self._parts[part_i]
            if where.kind == "chunks":
                with reading(where.path, None, "reading pixels"), blaming(where.path):
                    read_rows(Path(where.path), [int(self._rows[idx[n]]) for n in members],
                              [sels[n] for n in members], [canon[n] for n in members], verify=self._verify)
            else:
                for n in members:
                    image = images.pop(idx[n], None) or self[idx[n]]
                    canon[n][...] = image.source.read(sels[n])
        return out

    def _meta(self, k: int) -> ImageMeta:
        """Metadata of image ``k`` of a chunk dataset, from its (cached) images table row."""
        from .dataset_reader import _meta_from_row, _open

        path = Path(self._parts[int(self._part_of[k])].path)
        with reading(path, None, "reading image metadata"), blaming(path):
            opened = _open(path)
            return _meta_from_row(opened.row(int(self._rows[k])))

    def _uniform_parts(self) -> set[int]:
        """Chunk parts whose images all share sizes and dtype (one selection serves them all)."""
        if self._uniform is None:
            self._uniform = self._find_uniform()
        return self._uniform

    def _find_uniform(self) -> set[int]:
        cols = [f"size_{a}" for a in "tczyx"] + ["dtype"]
        if not set(cols) <= set(self._table.column_names):
            return set()
        out = set()
        for part in np.unique(self._part_of).tolist():
            if self._parts[part].kind != "chunks":
                continue
            mask = pa.array(self._part_of == part)
            sub = self._table.select(cols).filter(mask)
            if all(pc.count_distinct(sub.column(c)).as_py() == 1 for c in cols):
                out.add(part)
        return out

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_registry"] = None  # plugins are found again in the receiving process
        return state


def _layout_shape(sel: Selection, layout: str) -> tuple[int, ...]:
    sizes = dict(zip(AXES, sel.shape))
    dropped = [ax for ax in AXES if ax not in layout and sizes[ax] != 1]
    if dropped:
        ax = dropped[0]
        raise LayoutError(
            f"layout {layout!r} drops non-singleton axis {ax} (size {sizes[ax]}); select one "
            f"{ax.lower()} (e.g. {ax.lower()}=0) or keep {ax} in the layout"
        )
    return tuple(sizes[ax] for ax in layout)


def _canonical(arr: np.ndarray, layout: str, *, batch: bool = False) -> np.ndarray:
    """A TZCYX view of ``arr`` (in ``layout`` order; after a batch axis with ``batch``).

    Axes missing from the layout become length 1. No copy.
    """
    lead = 1 if batch else 0
    order = layout + "".join(ax for ax in AXES if ax not in layout)
    full = np.expand_dims(arr, tuple(range(arr.ndim, 5 + lead))) if arr.ndim < 5 + lead else arr
    return full.transpose([*range(lead), *(lead + order.index(ax) for ax in AXES)])


class DatasetViews(Sequence[LazyTensorView]):
    """The same selection of every image of a dataset: lazy views, and stacked reads."""

    def __init__(self, dataset: OMEArrowDataset, select: dict[str, Any], layout: str | None, dtype: Any,
                 channel_policy: ChannelPolicy, casting: Casting = "checked") -> None:
        self.dataset = dataset
        self._select = select
        self._layout = layout
        self._dtype = dtype
        self._policy: ChannelPolicy = channel_policy
        self._casting: Casting = casting

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> LazyTensorView:  # type: ignore[override]
        view = self.dataset[i].tensor_view(**self._select, layout=self._layout, dtype=self._dtype,
                                           channel_policy=self._policy, casting=self._casting)
        assert isinstance(view, LazyTensorView)
        return view

    def __iter__(self) -> Iterator[LazyTensorView]:
        for i in range(len(self)):
            yield self[i]

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the first image's view (of every view, for a dataset of equal images)."""
        return self[0].shape

    @property
    def dtype(self) -> np.dtype:
        """Dtype of the views."""
        return self[0].dtype

    @property
    def layout(self) -> str:
        """Layout of the views."""
        return self[0].layout

    @property
    def selection(self) -> dict[str, Any]:
        """The tensor_view arguments every image gets (t, z, c, roi, layout, dtype, channel_policy, casting)."""
        return {**self._select, "layout": self._layout, "dtype": self._dtype, "channel_policy": self._policy,
                "casting": self._casting}

    def read(self, indices: Sequence[int] | np.ndarray | range | None = None, *,
             out: np.ndarray | None = None) -> np.ndarray:
        """Views ``indices`` (default: all) stacked on a new first axis (see OMEArrowDataset.read)."""
        arr = self.dataset.read(indices, **self._select, layout=self._layout, channel_policy=self._policy,
                                out=None if self._dtype is not None else out)
        if self._dtype is not None and arr.dtype != np.dtype(self._dtype):
            if out is not None:
                copy_cast(out, arr, self._casting)
                return out
            return cast_pixels(arr, np.dtype(self._dtype), self._casting)
        return arr

    def __repr__(self) -> str:
        return f"DatasetViews({len(self)} images, {self.selection})"


# -- writing -----------------------------------------------------------------------------------
#: What write_dataset takes per image: an OMEArrow, an array (or tensor), a path, or (ImageMeta, TZCYX array).
ImageLike: TypeAlias = Any


def _as_image(item: Any, dim_order: str | None, registry: Registry | None) -> OMEArrow:
    if isinstance(item, OMEArrow):
        return item
    if isinstance(item, (str, os.PathLike)):
        return OMEArrow.scan(item, registry=registry)
    # arrays are not copied into Arrow memory: the writer reads each one at once, copying it chunk by chunk
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], ImageMeta):
        from .buffers import read_only
        from .sources import ArraySource

        meta, pixels = item
        src = ArraySource(meta, read_only(np.asarray(pixels)), "memory")
        return OMEArrow._from_parts(src, Selection.full(meta.sizes), False, registry)
    return OMEArrow(item, dim_order, registry=registry, _copy=False)


def _band_reader(img: OMEArrow) -> Any:
    full = Selection.full(img.sizes)

    def read(sel: Selection) -> np.ndarray:
        if sel == full:
            return img.to_numpy()
        view = img.tensor_view(t=sel.t, z=sel.z, c=sel.c, roi=(sel.x.start, sel.y.start, len(sel.x), len(sel.y)),
                               layout="TZCYX")
        return view.to_numpy()

    return read


def _metadata_rows(metadata: Any, count: int | None) -> Iterator[Mapping[str, Any]]:
    """One dict per image from columns (a mapping of sequences, a table) or rows (dicts)."""
    if metadata is None:
        while True:
            yield {}
    if isinstance(metadata, (pa.Table, pa.RecordBatch)):
        metadata = metadata.to_pylist()
    elif hasattr(metadata, "to_dict") and hasattr(metadata, "columns"):  # a pandas DataFrame
        metadata = metadata.to_dict("records")
    if isinstance(metadata, Mapping):
        cols = {str(k): list(v) for k, v in metadata.items()}
        lengths = {len(v) for v in cols.values()}
        if len(lengths) > 1 or (count is not None and lengths and lengths != {count}):
            raise SchemaError(
                f"metadata columns must each have one value per image ({count} images); "
                f"got lengths {{{', '.join(f'{k}: {len(v)}' for k, v in cols.items())}}}"
            )
        n = lengths.pop() if lengths else 0
        for i in range(n):
            yield {k: v[i] for k, v in cols.items()}
        return
    if isinstance(metadata, Sequence) and count is not None and len(metadata) != count:
        raise SchemaError(f"metadata has {len(metadata)} rows for {count} images; give one row per image")
    for row in metadata:
        if not isinstance(row, Mapping):
            raise SchemaError(f"metadata rows must be mappings of column to value, got {type(row).__name__}")
        yield row


def write_dataset(
    images: Iterable[ImageLike] | OMEArrowDataset,
    out: str | os.PathLike[str],
    *,
    metadata: Any = None,
    mode: Literal["create", "append", "overwrite"] = "create",
    image_ids: Iterable[str] | None = None,
    chunk_format: str | None = None,
    chunk_shape: Sequence[int] | None = None,
    compression: str | None = "default",
    compression_level: int | None = None,
    rows_per_group: int = 1,
    images_per_group: int = 1024,
    dim_order: str | None = None,
    progress: bool | None = None,
    registry: Registry | None = None,
) -> Path:
    """Stream images into a typed-chunk dataset directory at ``out``; memory holds one image,
    plus up to 16 MiB of packed chunk rows waiting to be written together.

    ``images`` is any iterable (a generator is fine) of OMEArrow images, numpy arrays (axes
    from ``dim_order``), paths of image files (read lazily, one at a time), ``(ImageMeta,
    TZCYX array)`` pairs, or an :class:`OMEArrowDataset` (whose extra columns come along).
    ``metadata`` adds columns to the images table: a mapping of column to values, a
    pyarrow Table or DataFrame, or an iterable of dicts, one per image, in order.

    ``mode="create"`` (default) refuses an existing ``out``; ``"append"`` adds to it (its
    new chunks go to a new file; nothing already written is rewritten but the small images
    and index tables); ``"overwrite"`` replaces it. Every mode is atomic: a failure leaves
    the previous dataset as it was. ``progress`` shows a bar (default: when stderr is a
    terminal). Image ids default to ``image-00000``, ``image-00001``... continuing on append.

    ``chunk_format`` picks the chunk files' format: ``"parquet"`` (built in; readable by
    ome-arrow 0.1.0) or a chunk store's, such as ``"vortex"`` (``pip install
    "ome-arrow-core[vortex]"``); the images table and index stay Parquet either way, so
    filters are still pushed down. None (default) is Parquet for a new dataset and the
    dataset's own format on append. ``compression="default"`` is lz4 for Parquet and the
    store's default for others (Vortex: ``None`` or ``"zstd"``).
    """
    target = Path(out)
    count = len(images) if isinstance(images, Sized) else None
    if isinstance(images, OMEArrowDataset):
        if metadata is None and images.extra_columns:
            metadata = images.table.select(images.extra_columns)
        images = iter(images)
    rows = _metadata_rows(metadata, count)
    ids = iter(image_ids) if image_ids is not None else None
    bar = Progress(count, "write_dataset", unit="img", enabled=progress)
    done = [0]

    def items() -> Iterator[tuple[str | None, ImageMeta, Any, Mapping[str, Any]]]:
        for item in images:
            img = _as_image(item, dim_order, registry)
            try:
                extra = next(rows)
            except StopIteration:
                raise SchemaError(f"metadata ran out after {done[0]} rows; give one row per image") from None
            image_id = next(ids, None) if ids is not None else None
            if ids is not None and image_id is None:
                raise SchemaError(f"image_ids ran out after {done[0]} ids; give one id per image")
            done[0] += 1
            yield (None if image_id is None else str(image_id)), img.meta, _band_reader(img), extra

    try:
        stream_dataset(items(), target, mode=mode, chunk_format=chunk_format, chunk_shape=chunk_shape,
                       compression=compression, compression_level=compression_level, rows_per_group=rows_per_group,
                       images_per_group=images_per_group, on_image=lambda image_id, _: bar.update(1, image_id))
    finally:
        bar.close()
    return target
