"""The images-table rows of images being written, kept as Arrow tables a batch at a time, and the table they make.

A writer of a million images holds their rows as columns (a few hundred bytes an image), not as a
dict per image (about 2 KiB each): each :data:`ROWS_PER_BATCH` rows become Arrow tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import pyarrow as pa

from ..errors import ArgumentError, SchemaError
from .column_types import conform
from .spec import FILE_METADATA, IMAGES_SCHEMA, LOCATOR_COLUMNS

__all__ = ["ImageRowBatches", "ROWS_PER_BATCH", "check_metadata_names"]

#: Rows kept as Python dicts before they become Arrow tables.
ROWS_PER_BATCH: Final[int] = 1024


def check_metadata_names(names: Iterable[str]) -> None:
    """ArgumentError when metadata column ``names`` include one of the images table's own columns."""
    clash = sorted(set(names) & {*IMAGES_SCHEMA.names, *LOCATOR_COLUMNS})
    if clash:
        raise ArgumentError(
            f"metadata columns {clash} collide with the dataset's own columns; rename them "
            f"(reserved: {', '.join([*IMAGES_SCHEMA.names, *LOCATOR_COLUMNS])})"
        )


class ImageRowBatches:
    """The images-table rows (core columns and extra metadata columns) of the images written so far."""

    def __init__(self) -> None:
        self._core: list[dict[str, Any]] = []
        self._extra: list[Mapping[str, Any]] = []
        #: (core columns, extra columns or None when the batch has none, rows) of each full batch.
        self._batches: list[tuple[pa.Table, pa.Table | None, int]] = []
        self._count = 0
        #: The first image's core row (None: no image yet), for the manifest's ``choice``.
        self.first: dict[str, Any] | None = None

    def append(self, core: dict[str, Any], extra: Mapping[str, Any]) -> None:
        """Add one image's core row (IMAGES_SCHEMA columns) and its extra metadata columns."""
        if self.first is None:
            self.first = core
        self._core.append(core)
        self._extra.append(dict(extra))
        self._count += 1
        if len(self._core) >= ROWS_PER_BATCH:
            self._flush()

    def __len__(self) -> int:
        return self._count

    def _flush(self) -> None:
        if not self._core:
            return
        core = pa.Table.from_pylist(self._core, schema=IMAGES_SCHEMA)
        names: list[str] = []
        for row in self._extra:
            names += [k for k in row if k not in names]
        extra = None
        if names:
            try:
                extra = pa.Table.from_pylist([{k: r.get(k) for k in names} for r in self._extra])
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise SchemaError(f"metadata values do not form columns of one type each: {exc}") from exc
        self._batches.append((core, extra, len(self._core)))
        self._core, self._extra = [], []

    def table(self, existing: pa.Schema | None) -> pa.Table:
        """The images table: the IMAGES_SCHEMA columns first (the reference reader's), then extra columns.

        ``existing`` (the dataset's columns, for an append): a column it has is stored in its type where
        the values are of its kind and it holds them exactly, else refused (see :mod:`.column_types`).
        """
        self._flush()
        batches = self._batches
        table = (
            pa.concat_tables([c for c, _, _ in batches]) if batches else IMAGES_SCHEMA.empty_table()
        ).combine_chunks()
        extras = [e for _, e, _ in batches if e is not None]
        names: list[str] = []
        for e in extras:
            names += [k for k in e.column_names if k not in names]
        check_metadata_names(names)
        if names:
            try:
                schema = pa.unify_schemas([e.schema for e in extras], promote_options="permissive")
                columns = {
                    name: pa.chunked_array(
                        [_column(e, n, name, schema.field(name).type) for _, e, n in batches],
                        schema.field(name).type,
                    )
                    for name in names
                }
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                raise SchemaError(f"metadata values do not form columns of one type each: {exc}") from exc
            for name in names:
                table = table.append_column(name, columns[name])
        if existing is not None:
            table = conform(table, existing)
        order = [n for n in IMAGES_SCHEMA.names if n in table.column_names]
        order += [n for n in table.column_names if n not in order]
        return table.select(order).replace_schema_metadata(FILE_METADATA)


def _column(extra: pa.Table | None, rows: int, name: str, type_: pa.DataType) -> pa.Array:
    """Column ``name`` of one batch's extra columns as ``type_`` (nulls where the batch lacks it)."""
    if extra is None or name not in extra.column_names:
        return pa.nulls(rows, type_)
    return extra.column(name).combine_chunks().cast(type_)
