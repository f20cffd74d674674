"""How a chunk table handed to a chunks-file writer says where its row groups are.

With ``table_groups`` (Parquet chunks files, :func:`~.fragments.write_fragment`) each table the packer yields is
one row group, except a table marked :func:`one_group_per_row`: a run of one-row groups (an image's chunks, a
group each, the default) sent as one table instead of a one-row slice each. The mark is schema metadata under
:data:`ROW_GROUPS_KEY`; writers take their schema's metadata from the file's schema, so it never reaches a file.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa

__all__ = ["ROW_GROUPS_KEY", "one_group_per_row", "rows_are_groups"]

#: The schema metadata key of the mark.
ROW_GROUPS_KEY: Final[bytes] = b"ome_arrow_core.row_groups"
_PER_ROW: Final[bytes] = b"row"


def one_group_per_row(table: pa.Table) -> pa.Table:
    """``table``, marked: each of its rows is a row group of its own."""
    return table.replace_schema_metadata({**(table.schema.metadata or {}), ROW_GROUPS_KEY: _PER_ROW})


def rows_are_groups(table: pa.Table) -> bool:
    """Whether ``table`` is marked :func:`one_group_per_row`."""
    meta = table.schema.metadata
    return meta is not None and meta.get(ROW_GROUPS_KEY) == _PER_ROW
