"""Dataset members that reader plugins open: image directories (an OME-Zarr store), image files, and collections
(an HCS plate, a multi-series OME-TIFF).

A directory a reader accepts (by suffix or sniffing) is one member of a dataset. When that
reader has a :attr:`~ome_arrow_core.handlers.Reader.collection` hook and the hook returns a
table, the directory holds many images (kind ``"collection"``): the table is their metadata
(one row per image; the plugin reads metadata only), and image ``i`` is the reader's
``open(path, row=i)``. Otherwise the directory is one image (kind ``"file"``). An image file is asked the
same (:func:`file_member`): a multi-series OME-TIFF is a collection of its series.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyarrow as pa

from ..boundary import reading
from ..errors import OMEArrowError, PluginError, SchemaError
from ..handlers import require
from ..registry import Registry, default_registry
from .filter_nulls import FILTER_ERRORS, filtered, refused_filter

if TYPE_CHECKING:
    import pyarrow.compute as pc

    from ..handlers import Reader

__all__ = ["reader_member", "file_member", "collection_table"]


def _reader(path: Path, registry: Registry) -> Reader | None:
    """The reader of directory ``path`` (None when no reader accepts it; raises when its library is missing)."""
    if not any(r.accepts(path) for r in registry.readers()):
        return None
    reader = registry.resolve_reader(path)
    reader.ensure_available()
    return reader


def reader_member(path: Path, registry: Registry, column: str | None = None) -> Literal["collection", "file"] | None:
    """The member kind of directory ``path``: "collection" (many images), "file" (one image), or None when no
    reader accepts it (``column``: the OME-Arrow column of a table of several, for hooks that take it)."""
    reader = _reader(path, registry)
    if reader is None:
        return None
    if reader.collection is not None and _table(reader, path, column) is not None:
        return "collection"
    return "file"


def file_member(path: Path, registry: Registry, column: str | None = None) -> Literal["collection", "file"]:
    """The member kind of image file ``path``: "collection" when its reader finds several images in it (the
    series of a multi-series OME-TIFF), else "file"; a reader that cannot tell (its library missing, the file
    damaged) leaves it one image, whose opening says what is wrong."""
    try:
        return reader_member(path, registry, column) or "file"
    except OMEArrowError:
        return "file"


def _takes_column(hook: object) -> bool:
    """Whether a collection hook takes ``column=`` (hooks written before it was passed take ``path`` alone)."""
    try:
        params = inspect.signature(hook).parameters  # type: ignore[arg-type]
    except (TypeError, ValueError):  # a callable without a signature: given the path alone
        return False
    return "column" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _table(reader: Reader, path: Path, column: str | None) -> pa.Table | None:
    """The collection hook's table of ``path``, given ``column=`` when one is named and the hook takes it (an
    option every reader may ignore, as ``open`` does)."""
    collection = require(reader, reader.collection, "collection")
    with reading(path, None, "reading the collection's metadata"):
        table = (
            collection(path, column=column) if column is not None and _takes_column(collection) else collection(path)
        )
    if table is not None and (not isinstance(table, pa.Table) or "image_id" not in table.column_names):
        raise PluginError(
            f"the {reader.name!r} reader's collection hook returned {type(table).__name__} for "
            f"{path}, expected a pyarrow Table with an image_id column; its plugin is broken"
        )
    return table


def collection_table(
    path: str,
    expr: pc.Expression | None,
    row_column: str,
    registry: Registry | None = None,
    column: str | None = None,
) -> tuple[pa.Table, int, int]:
    """The metadata rows of collection ``path`` (its OME-Arrow ``column``, where it has several) that ``expr``
    keeps, each row's image number in ``row_column``."""
    reader = _reader(Path(path), registry or default_registry())
    table = None if reader is None or reader.collection is None else _table(reader, Path(path), column)
    if table is None:
        raise SchemaError(f"{path} no longer holds a collection of images (its metadata changed since the scan)")
    table = table.append_column(row_column, pa.array(np.arange(table.num_rows, dtype=np.int64)))
    if expr is not None:
        try:
            table = filtered(table, expr)
        except FILTER_ERRORS as exc:
            raise refused_filter(expr, f" to {path}", table.column_names[:-1], exc) from exc
    return table, 1, 1
