"""The metadata table of a dataset's members: their tables joined, each row's member and row in it."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from ..errors import SchemaError
from ..registry import Registry
from .scan import ROW_COLUMN, Member, member_table

if TYPE_CHECKING:
    import pyarrow.compute as pc

__all__ = ["joined_tables", "MemberTables"]


def joined_tables(
    parts: Sequence[Member],
    expr: pc.Expression | None,
    verify: bool | None,
    path: object,
    registry: Registry | None = None,
) -> tuple[pa.Table, np.ndarray, np.ndarray, int, int]:
    """The rows of ``parts`` that ``expr`` keeps as one table (no row column), the member and row of each, and
    (row groups read, row groups in the files); ``registry`` reads the members that are collections."""
    tables, part_of, rows = [], [], []
    scanned = total = 0
    for k, part in enumerate(parts):
        table, read, count = member_table(part, expr, verify, registry)
        scanned, total = scanned + read, total + count
        rows.append(table.column(ROW_COLUMN).to_numpy())
        part_of.append(np.full(table.num_rows, k, dtype=np.int32))
        tables.append(table.drop_columns([ROW_COLUMN]).replace_schema_metadata(None))
    try:
        table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SchemaError(f"the metadata columns of the files under {path} do not agree: {exc}") from exc
    return table, np.concatenate(part_of), np.concatenate(rows), scanned, total


class MemberTables:
    """The whole table of a dataset's members, read once on first use (shared by the datasets derived from it)."""

    def __init__(self, parts: Sequence[Member], verify: bool | None, path: object) -> None:
        self._parts, self._verify, self._path = list(parts), verify, path
        self._table: pa.Table | None = None
        self._lock = threading.Lock()

    def table(self) -> pa.Table:
        """Every row of every member, in order (the table an unfiltered scan would have read)."""
        with self._lock:
            if self._table is None:
                self._table = joined_tables(self._parts, None, self._verify, self._path)[0]
            return self._table

    def __getstate__(self) -> dict[str, object]:
        return {"_parts": self._parts, "_verify": self._verify, "_path": self._path, "_table": None}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
