"""``pyarrow.parquet`` for reading local files, without importing it: ``from .. import parquet_lite as pq``.

Importing ``pyarrow.parquet`` imports ``pyarrow.fs``, which loads the S3, GCS, Azure and HDFS filesystems and
``ssl`` (libssl, libcrypto, the AWS SDK): ~40 M instructions, 15 ms of CPU and 30-45 ms of wall time of a fresh
process, more than reading its first plane. The reader itself lives in ``pyarrow._parquet`` (1 ms), which
``pyarrow.parquet`` re-exports. Here :class:`ParquetFile`, :func:`read_metadata` and :func:`read_schema` open a
local path, a pyarrow ``NativeFile`` or a file object with that reader, as ``pyarrow.parquet`` does (the same
reader, options and results); a URI, a ``filesystem=`` or an option not listed goes to ``pyarrow.parquet``
itself. Every other name (``write_table``, ``ParquetWriter``, ``read_table``...) is ``pyarrow.parquet``'s,
imported on first use.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

try:  # the names pyarrow.parquet re-exports from its extension module (the same classes)
    from pyarrow._parquet import (
        ColumnChunkMetaData,
        FileMetaData,
        ParquetReader,
        ParquetSchema,
        RowGroupMetaData,
        Statistics,
    )
except ImportError:  # pragma: no cover - a pyarrow that moved them: the public module then
    from pyarrow.parquet import (
        ColumnChunkMetaData,
        FileMetaData,
        ParquetReader,
        ParquetSchema,
        RowGroupMetaData,
        Statistics,
    )

__all__ = [
    "ColumnChunkMetaData",
    "FileMetaData",
    "ParquetFile",
    "ParquetReader",
    "LOCAL_READS",
    "ParquetSchema",
    "RowGroupMetaData",
    "Statistics",
    "read_metadata",
    "read_schema",
]

#: Options :class:`ParquetFile` passes to the reader itself (any other goes to ``pyarrow.parquet``).
OWN_OPTIONS: Final[frozenset[str]] = frozenset(
    {"metadata", "read_dictionary", "memory_map", "buffer_size", "pre_buffer"}
)
#: Options for a local file read one row group of a few columns at a time (the tables' own footers, images, index
#: and chunks row groups): no pre-buffering. Pre-buffering coalesces the column chunks' reads through pyarrow's IO
#: thread pool, whose start cost a fresh process's first image ~1 ms of CPU; a local file gains nothing from it.
LOCAL_READS: Final[Mapping[str, Any]] = MappingProxyType({"pre_buffer": False})
#: Whether the reader takes ``arrow_extensions_enabled`` (pyarrow >= 19, whose ParquetFile passes True): None
#: until the first open finds out.
_extensions: bool | None = None


def __getattr__(name: str) -> Any:
    """Any other name: ``pyarrow.parquet``'s (imported now)."""
    if name.startswith("__"):
        raise AttributeError(name)
    import pyarrow.parquet

    return getattr(pyarrow.parquet, name)


def _own(source: Any, options: dict[str, Any]) -> bool:
    """True when this module opens ``source`` itself: no URI, no filesystem, only options it passes on."""
    if not options.keys() <= OWN_OPTIONS:
        return False
    if isinstance(source, (str, os.PathLike)):
        return "://" not in os.fspath(source)  # a URI: pyarrow.parquet resolves its filesystem
    return True  # a NativeFile or a file object: pyarrow.parquet gives it to the reader as it is


def _open(reader: Any, source: Any, options: dict[str, Any]) -> None:
    global _extensions
    kwargs = {
        "use_memory_map": options.get("memory_map", False),
        "buffer_size": options.get("buffer_size", 0),
        "pre_buffer": options.get("pre_buffer", True),
        "read_dictionary": options.get("read_dictionary"),
        "metadata": options.get("metadata"),
    }
    if _extensions is None:
        try:
            reader.open(source, arrow_extensions_enabled=True, **kwargs)
        except TypeError as exc:
            if "arrow_extensions_enabled" not in str(exc):
                raise
            _extensions = False
        else:
            _extensions = True
            return
    if _extensions:
        reader.open(source, arrow_extensions_enabled=True, **kwargs)
    else:
        reader.open(source, **kwargs)


class ParquetFile:
    """``pyarrow.parquet.ParquetFile`` for a local path or an open file (``ParquetFile(...)`` gives pyarrow's
    own class for a URI, a ``filesystem=`` or another option): the same reader, columns and results."""

    def __new__(cls, source: Any, **options: Any) -> Any:
        if not _own(source, options):
            import pyarrow.parquet

            return pyarrow.parquet.ParquetFile(source, **options)
        return super().__new__(cls)

    def __init__(self, source: Any, **options: Any) -> None:
        path = isinstance(source, (str, os.PathLike))
        self._close_source = path or getattr(source, "closed", True)
        self.reader = ParquetReader()
        _open(self.reader, os.fspath(source) if path else source, options)
        self.common_metadata = None
        self._nested: dict[str, list[int]] | None = None

    def __enter__(self) -> ParquetFile:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()

    @property
    def metadata(self) -> FileMetaData:
        """The file's parsed footer."""
        return self.reader.metadata

    @property
    def schema(self) -> ParquetSchema:
        """The Parquet schema."""
        return self.metadata.schema

    @property
    def schema_arrow(self) -> Any:
        """The Arrow schema the reader reads to."""
        return self.reader.schema_arrow

    @property
    def num_row_groups(self) -> int:
        """Row groups of the file."""
        return int(self.reader.num_row_groups)

    def close(self, force: bool = False) -> None:
        """Close the file when this object opened it (or ``force``)."""
        if self._close_source or force:
            self.reader.close()

    @property
    def closed(self) -> bool:
        """Whether the reader's file is closed."""
        return bool(self.reader.closed)

    def read(self, columns: Any = None, use_threads: bool = True) -> Any:
        """The whole file (``columns`` only) as an Arrow table."""
        return self.reader.read_all(column_indices=self._indices(columns), use_threads=use_threads)

    def read_row_group(self, i: int, columns: Any = None, use_threads: bool = True) -> Any:
        """Row group ``i`` (``columns`` only) as an Arrow table."""
        return self.reader.read_row_group(i, column_indices=self._indices(columns), use_threads=use_threads)

    def read_row_groups(self, row_groups: Any, columns: Any = None, use_threads: bool = True) -> Any:
        """Row groups ``row_groups`` (``columns`` only) as one Arrow table."""
        return self.reader.read_row_groups(row_groups, column_indices=self._indices(columns), use_threads=use_threads)

    def iter_batches(
        self,
        batch_size: int = 65536,
        row_groups: Any = None,
        columns: Any = None,
        use_threads: bool = True,
    ) -> Any:
        """Record batches of up to ``batch_size`` rows of ``row_groups`` (default all; ``columns`` only)."""
        if batch_size <= 0:
            raise ValueError("batch_size must be greater than zero")
        if row_groups is None:
            row_groups = range(self.metadata.num_row_groups)
        return self.reader.iter_batches(
            batch_size,
            row_groups=row_groups,
            column_indices=self._indices(columns),
            use_threads=use_threads,
        )

    def _indices(self, columns: Any) -> list[int] | None:
        """The leaf column indices of ``columns`` (names or dotted prefixes; unknown names select nothing)."""
        if columns is None:
            return None
        paths = self._paths()
        out: list[int] = []
        for name in columns:
            out += paths.get(name, ())
        return out

    def _paths(self) -> dict[str, list[int]]:
        """Every column path and path prefix ("a", "a.b") -> its leaf column indices."""
        if self._nested is None:
            nested: dict[str, list[int]] = {}
            for i, path in enumerate(self.reader.column_paths):
                key = path[0]
                nested.setdefault(key, []).append(i)
                for part in path[1:]:
                    key = f"{key}.{part}"
                    nested.setdefault(key, []).append(i)
            self._nested = nested
        return self._nested


def read_metadata(where: Any, memory_map: bool = False, **options: Any) -> FileMetaData:
    """``pyarrow.parquet.read_metadata``: the parsed footer of ``where``."""
    return _read_footer("read_metadata", "metadata", where, memory_map, options)


def read_schema(where: Any, memory_map: bool = False, **options: Any) -> Any:
    """``pyarrow.parquet.read_schema``: the Arrow schema of ``where``."""
    return _read_footer("read_schema", "schema_arrow", where, memory_map, options)


def _read_footer(function: str, attribute: str, where: Any, memory_map: bool, options: dict[str, Any]) -> Any:
    """``ParquetFile(where).<attribute>`` of a file this module opens itself (closed after), else what
    ``pyarrow.parquet.<function>`` returns."""
    if options or not _own(where, {}):
        import pyarrow.parquet

        return getattr(pyarrow.parquet, function)(where, memory_map=memory_map, **options)
    pf = ParquetFile(where, memory_map=memory_map)
    try:
        return getattr(pf, attribute)
    finally:
        pf.close()
