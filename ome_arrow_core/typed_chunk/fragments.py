"""The chunk files (fragments) of a typed-chunk dataset: Parquet built in, other formats through chunk stores.

To the reader a fragment is a sequence of row groups: it knows how many rows each holds and
reads the ``pixel_bytes`` of given groups in one call. A chunk-store fragment (``chunks.vortex``)
has one group per row: index.parquet's ``row_group_id`` is the row number and
``row_index_in_group`` is 0, so reading an image's chunks takes exactly its rows.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

import numpy as np
import pyarrow as pa

from .. import parquet_lite as pq
from ..boundary import reading, require_member
from ..errors import ArgumentError, DamagedFileError, SchemaError
from ..handlers import ChunkFile, ChunkStore
from ..parquet_files import PARQUET_CODECS
from ..remote import refuse_placeholder, remote_chunk
from .checks import check_member
from .parquet_pages import PageRanges, page_ranges
from .readcheck import AUDITED
from .spec import CHUNKS_SCHEMA, FILE_METADATA

if TYPE_CHECKING:
    from ..registry import Registry

__all__ = [
    "PARQUET",
    "DEFAULT_COMPRESSION",
    "Fragment",
    "open_fragment",
    "chunk_writer",
    "write_fragment",
    "chunk_store",
    "suffix_of",
    "fragment_codec",
    "format_version_for",
]

#: The built-in chunk format.
PARQUET: Final[str] = "parquet"
#: Whether uncompressed chunks files with a row group per chunk (the default) are written page by page
#: (:mod:`.direct_chunks`) rather than by pyarrow's writer; tests set False to compare the two.
DIRECT = True
#: ``compression`` value meaning "this chunk format's default" (none for Parquet: see docs/format.md, Chunking).
DEFAULT_COMPRESSION: Final[str] = "default"


class Fragment(Protocol):
    """One chunks file, as row groups."""

    #: Rows of each row group.
    group_rows: np.ndarray
    #: Most pixel bytes each row group can hold (None or -1: unknown), to refuse lying sizes before allocating.
    group_bytes: np.ndarray | None
    #: What the file is, for ``info()`` (``"parquet"``, ``"vortex"``...).
    format: str

    def read(self, groups: np.ndarray, audit: bool = False) -> pa.Table:
        """``pixel_bytes`` of row groups ``groups`` (ascending), concatenated in that order, and the
        ``chunk_id`` of those rows where the format reads it cheaply (with ``audit``, also their
        dtype, image id, coordinates and shapes), to check them against the index."""
        ...


class ParquetFragment:
    """A Parquet chunks file: its footer parsed once, row groups read by number."""

    format = PARQUET

    def __init__(self, file: Path) -> None:
        self.path = file
        remote = remote_chunk(file)
        #: Where messages say the file is: the object's URI for a remote dataset's placeholder, not the mirror's.
        named: tuple[Path | str, str | None] = (file.parent, file.name)
        self._named = named if remote is None else (remote.location.uri, None)
        with reading(*self._named, "reading the chunks file's footer"):
            self.file = pq.ParquetFile(file if remote is None else remote.native())
            md = self.file.metadata
            groups = [md.row_group(i) for i in range(md.num_row_groups)]
            self.group_rows = np.array([g.num_rows for g in groups], dtype=np.int64)
            at = md.schema.to_arrow_schema().get_field_index("pixel_bytes")
            # pixel_bytes values are at most their column chunk's uncompressed bytes (pages, lengths and all);
            # -1 where a dictionary page may hold repeated values once (ome-arrow 0.1.0 writes those)
            self.group_bytes = (
                np.array(
                    [-1 if g.column(at).has_dictionary_page else g.column(at).total_uncompressed_size for g in groups],
                    dtype=np.int64,
                )
                if at >= 0
                else None
            )
            names = set(self.file.schema_arrow.names)
        self._columns = [c for c in ("chunk_id",) if c in names] + ["pixel_bytes"]
        self._audited = [c for c in AUDITED if c in names] + self._columns

    def read(self, groups: np.ndarray, audit: bool = False) -> pa.Table:
        """``pixel_bytes`` and ``chunk_id`` of row groups ``groups`` (one Parquet read; with ``audit``
        also ``dtype``, ``image_id``, the coordinates and the shapes)."""
        with reading(*self._named, "reading chunk pixels"):
            table = self.file.read_row_groups(
                [int(g) for g in groups], columns=self._audited if audit else self._columns, use_threads=False
            )
        if not pa.types.is_large_binary(table.schema.field("pixel_bytes").type):
            raise DamagedFileError(
                f"{self.path.parent} [{self.path.name}]: pixel_bytes is "
                f"{table.schema.field('pixel_bytes').type}, expected large_binary; the chunks "
                "file is damaged or not ours"
            )
        return table


class StoreFragment:
    """A chunk-store file (Vortex...): one group per row, rows taken by number."""

    def __init__(self, file: ChunkFile, format: str, path: Path) -> None:
        self.file = file
        self.format = format
        self.path = path
        self.group_rows = np.ones(int(file.num_rows), dtype=np.int64)
        self.group_bytes: np.ndarray | None = None

    def read(self, groups: np.ndarray, audit: bool = False) -> pa.Table:
        """``pixel_bytes`` of rows ``groups`` (one scan that takes only those rows; nothing else to audit)."""
        with reading(self.path.parent, self.path.name, "reading chunk pixels"):
            col = self.file.take(np.asarray(groups, dtype=np.int64))
        if len(col) != len(groups):
            raise DamagedFileError(
                f"{self.path}: asked for {len(groups)} chunk rows, got {len(col)}; the file is damaged"
            )
        return pa.table({"pixel_bytes": col})


def chunk_store(name: str, registry: Registry) -> ChunkStore:
    """The chunk store of ``registry`` for format or file name ``name`` (BackendUnavailableError naming the pip
    install; PluginError when ``registry`` blocks it)."""
    return registry.resolve_chunk_store(name)


def suffix_of(chunk_format: str, registry: Registry) -> str:
    """The file suffix of chunk files in ``chunk_format`` (``.parquet``, ``.vortex``...)."""
    return ".parquet" if chunk_format == PARQUET else chunk_store(chunk_format, registry).suffix


def format_version_for(fragments: Iterable[str], appends: int = 0) -> int:
    """The format_version of a dataset with chunk files ``fragments`` and ``appends`` append tables.

    1 if all chunk files are Parquet and there are no append tables, else 2: version 1
    readers (and ome-arrow 0.1.0) read only Parquet chunks and the base images and index
    tables, and 2 makes older ome-arrow-core versions refuse the dataset with an upgrade hint.
    """
    return 1 if appends == 0 and all(str(f).lower().endswith(".parquet") for f in fragments) else 2


def fragment_codec(
    chunk_format: str, compression: str | None, compression_level: int | None, rows_per_group: int, registry: Registry
) -> str | None:
    """The codec chunk files in ``chunk_format`` get (None: none), checking the options suit the format."""
    if compression is not None and not isinstance(compression, str):
        raise ArgumentError(f"compression takes a codec name or None, got {compression!r}")
    if isinstance(rows_per_group, bool) or not isinstance(rows_per_group, (int, np.integer)) or rows_per_group < 1:
        raise ArgumentError(f"rows_per_group must be >= 1, got {rows_per_group!r}; pass an integer such as 1")
    if compression_level is not None and (
        isinstance(compression_level, bool) or not isinstance(compression_level, (int, np.integer))
    ):
        raise ArgumentError(f"compression_level takes an integer or None, got {compression_level!r}")
    if chunk_format == PARQUET:
        codec = None if compression == DEFAULT_COMPRESSION else compression
        if codec is not None and codec.lower() not in PARQUET_CODECS:
            raise ArgumentError(
                f"compression={compression!r} is not a Parquet codec; pass one of {sorted(PARQUET_CODECS)} "
                "(or None, or leave the default, none)"
            )
        return None if codec is None or codec.lower() == "none" else codec.lower()
    store = chunk_store(chunk_format, registry)
    codec = store.compressions[0] if compression == DEFAULT_COMPRESSION else (compression or "none")
    if codec not in store.compressions:
        raise ArgumentError(
            f"chunk_format={chunk_format!r} takes compression in {list(store.compressions)}, got {compression!r}; "
            f"pass one of those (or leave the default, {store.compressions[0]!r})"
        )
    if compression_level is not None:
        raise ArgumentError(f"compression_level applies to Parquet chunks; chunk_format={chunk_format!r} takes none")
    if rows_per_group != 1:
        raise ArgumentError(
            f"rows_per_group applies to Parquet chunks; chunk_format={chunk_format!r} addresses each chunk row "
            "by its number, so leave rows_per_group=1"
        )
    return None if codec == "none" else codec


def open_fragment(root: Path, name: str, registry: Registry | None) -> Fragment:
    """Open chunks file ``name`` of the dataset at ``root``, dispatching on its suffix (other than
    ``.parquet``: to a chunk store of ``registry``, None: the shared one).

    ``name`` must be a plain file name inside ``root`` (DamagedFileError otherwise) and a regular file.
    """
    file = root / check_member(root, name, f"the index of {root}", "chunk file")
    if not os.path.lexists(file):
        raise DamagedFileError(
            f"{root} lists chunk fragment {name!r} in its index, but it is missing; the dataset is damaged"
        )
    require_member(root, name)
    if name.lower().endswith(".parquet"):
        return ParquetFragment(file)
    if registry is None:
        from ..registry import default_registry

        registry = default_registry()
    refuse_placeholder(file, f"the {name.rsplit('.', 1)[-1]} chunk store")
    store = chunk_store(name, registry)
    if store.open is None:
        raise SchemaError(f"the chunk store {store.name!r} of plugin {store.plugin!r} cannot open files (no open=)")
    with reading(root, name, "opening the chunks file"):
        return StoreFragment(store.open(file), store.name, file)


def chunk_writer(file: Path, schema: pa.Schema, codec: str | None, level: int | None = None) -> pq.ParquetWriter:
    """A Parquet writer for a chunks file: ``codec`` (None: uncompressed), dictionary-encoded ids
    and dtypes, statistics for every column but the pixels (they keep the footer small)."""
    return pq.ParquetWriter(
        file,
        schema,
        compression=codec or "none",
        compression_level=level if codec else None,
        use_dictionary=["image_id", "dtype"],
        write_statistics=[c for c in schema.names if c != "pixel_bytes"],
        data_page_size=1 << 20,
        write_page_checksum=True,
    )


def write_fragment(
    tables: Iterable[pa.Table],
    file: Path,
    chunk_format: str,
    *,
    compression: str | None,
    compression_level: int | None,
    rows_per_group: int,
    registry: Registry,
    table_groups: bool = False,
) -> PageRanges | None:
    """Write chunk tables (CHUNKS_SCHEMA, in order) to ``file`` in ``chunk_format``.

    Parquet starts a row group at each table and cuts it every ``rows_per_group`` rows (with
    ``table_groups``, each table is one row group: the packer cut them); a chunk store consumes
    the tables as one stream of record batches. An exception raised
    while producing the tables reaches the caller as itself, not wrapped by the store.
    Returns where each row group's ``pixel_bytes`` page lies (Parquet with one chunk per
    row group, each in one page; else None), read from the file's footer once (or known to the writer:
    uncompressed files with ``rows_per_group=1`` are written by :mod:`.direct_chunks`).
    """
    if chunk_format == PARQUET and DIRECT and compression is None and rows_per_group == 1:
        from .direct_chunks import write_chunks_direct  # a writer's module (and its Thrift encoder): not for reads

        return write_chunks_direct(tables, file, table_groups)
    if chunk_format == PARQUET:
        from .chunk_groups import rows_are_groups  # a writer's: a read never loads it

        writer = chunk_writer(file, CHUNKS_SCHEMA.with_metadata(FILE_METADATA), compression, compression_level)
        try:
            for table in tables:
                if rows_are_groups(table):
                    size = 1
                else:  # with table_groups, the table is one row group
                    size = max(1, table.num_rows) if table_groups else rows_per_group
                writer.write_table(table, row_group_size=size)
        finally:
            writer.close()
        return page_ranges(file) if rows_per_group == 1 else None
    store = chunk_store(chunk_format, registry)
    if store.write is None:
        raise SchemaError(f"the chunk store {store.name!r} of plugin {store.plugin!r} cannot write files (no write=)")
    failure: list[BaseException] = []

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            for table in tables:
                yield from table.to_batches()
        except BaseException as exc:
            failure.append(exc)
            raise

    try:
        store.write(batches(), CHUNKS_SCHEMA.with_metadata(FILE_METADATA), file, compression=compression)
    except Exception:
        if failure:
            raise failure[0] from None
        raise
    if failure:  # the store swallowed it
        raise failure[0]
    return None
