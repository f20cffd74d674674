"""Vortex chunk files of a typed-chunk dataset (``chunks.vortex``): write a chunk stream, take rows.

The file holds the dataset's chunk rows (``CHUNKS_SCHEMA``: ``image_id, chunk_id, t..x,
shape_t..shape_x, dtype, pixel_bytes``) in the order they were written; index.parquet finds
a chunk by row number (``row_group_id``), and reads push the row numbers into the scan
(``VortexFile.to_arrow(indices=...)``) on a memory-mapped file, so a read touches only the
pages of the rows it takes.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa

from ome_arrow_core import SchemaError
from ome_arrow_core.plugin_api import ArgumentError, DamagedFileError, reading

from .reader import first_line, vortex_reading
from .seal import guard, not_written_since, opened_version, seal, unchanged

__all__ = ["VortexChunkFile", "write_chunks", "COMPRESSIONS"]

#: Accepted ``compression`` values, the default first: Vortex's lightweight encodings, or zstd.
COMPRESSIONS = ("none", "zstd")
_PIXELS = "pixel_bytes"
_TAKE_SCHEMA = pa.schema([pa.field(_PIXELS, pa.large_binary())])


def write_chunks(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, path: Path, *, compression: str | None = None
) -> None:
    """Write chunk record batches of ``schema`` to the Vortex file ``path``, in order.

    ``compression=None`` keeps Vortex's default encodings (a read takes only its rows' bytes);
    ``"zstd"`` uses its compact options (smaller files; a read decompresses whole blocks).
    """
    import vortex as vx

    codec = (compression or "none").lower()
    if codec not in COMPRESSIONS:
        raise ArgumentError(f"Vortex chunk files take compression None or 'zstd', got {compression!r}")
    opts = vx.io.VortexWriteOptions.compact() if codec == "zstd" else vx.io.VortexWriteOptions.default()
    opts.write(pa.RecordBatchReader.from_batches(schema, iter(batches)), str(path))
    seal(Path(path))


class VortexChunkFile:
    """A ``chunks.vortex`` file opened (memory-mapped) once; ``take`` reads given rows' ``pixel_bytes``."""

    def __init__(self, path: Path, *, memory_map: bool = True) -> None:
        import vortex as vx

        self.path = Path(path)
        root, name = self.path.parent, self.path.name
        with reading(root, name, "checking the whole-file checksum"):
            checked = guard(root, name)  # before vortex parses a byte: it may abort the process
        with vortex_reading(root, name, "opening the chunks file"):
            try:
                self._file = vx.open(str(self.path), memory_map=memory_map)
            except Exception as exc:  # vortex raises RuntimeError for every failure
                raise DamagedFileError(
                    f"{self.path} is not a readable Vortex file ({first_line(exc)}); expected a chunk file "
                    'written by write_dataset(..., chunk_format="vortex")'
                ) from None
            stored = self._file.dtype.to_arrow_schema()
            self.num_rows = len(self._file)
        unchanged(checked, root, name)
        self._version = opened_version(checked, root, name)
        if _PIXELS not in stored.names or stored.field(_PIXELS).type not in (
            pa.binary(),
            pa.binary_view(),
            pa.large_binary(),
        ):
            raise SchemaError(
                f"{self.path} has no binary 'pixel_bytes' column (columns: {stored.names}); expected a chunk "
                'file written by write_dataset(..., chunk_format="vortex")'
            )

    def take(self, rows: np.ndarray) -> pa.ChunkedArray:
        """``pixel_bytes`` of ``rows`` (strictly increasing), as large_binary, in one scan."""
        import vortex as vx

        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) == 0:
            return pa.chunked_array([], pa.large_binary())
        indices = None if len(rows) == self.num_rows else vx.array(pa.array(rows, pa.uint64()))
        root, name = self.path.parent, self.path.name
        not_written_since(self._version, root, name)  # before vortex touches the mapped bytes, and after
        with vortex_reading(root, name, "reading chunk pixels"):
            table = self._file.to_arrow([_PIXELS], indices=indices, schema=_TAKE_SCHEMA).read_all()
        not_written_since(self._version, root, name)
        return table.column(0)


def open_chunks(path: Path) -> VortexChunkFile:
    """Open a dataset's Vortex chunk file."""
    return VortexChunkFile(path)
