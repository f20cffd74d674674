"""ome-arrow-core plugin: the Vortex reader and writer (vortex is imported only when they run)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ome_arrow_core import ChunkFile, ChunkStore, PixelSource, Reader, Writer, hookimpl

__all__ = ["ome_arrow_readers", "ome_arrow_writers", "ome_arrow_chunk_stores", "MAX_FILE_BYTES"]

#: Pixel bytes per dataset chunk file: vortex-data 0.93's writer holds a file's data in memory
#: until it ends (peak ~1.3-3x the file), so a dataset's chunks roll over to a new file here.
MAX_FILE_BYTES = 64 << 20


def _open(path: Path, column: str | None = None, row: int = 0, **kw: Any) -> PixelSource:
    from .reader import open_vortex

    return open_vortex(path, column, row, **kw)


def _sniff(path: Path) -> bool:
    from .seal import sniff_vortex

    return sniff_vortex(path)


def _collection(path: Path, column: str | None = None) -> Any:
    from .records import record_collection

    return record_collection(path, column)


def _write(image: Any, out: Path, **options: Any) -> Any:
    from .writer import write_vortex

    return write_vortex(image, out, **options)


def _write_chunks(batches: Any, schema: Any, path: Path, **options: Any) -> None:
    from .chunk_store import write_chunks

    write_chunks(batches, schema, path, **options)


def _open_chunks(path: Path) -> ChunkFile:
    from .chunk_store import open_chunks

    return open_chunks(path)


@hookimpl
def ome_arrow_readers() -> Sequence[Reader]:
    return [
        Reader(
            name="vortex",
            requires=("vortex",),
            extra="vortex",
            suffixes=(".vortex",),
            open=_open,
            sniff=_sniff,
            collection=_collection,
            description="Vortex files (ome-arrow-core.vortex/1), lazy reads push row selection down",
        ),
    ]


@hookimpl
def ome_arrow_writers() -> Sequence[Writer]:
    return [
        Writer(
            name="vortex",
            requires=("vortex",),
            extra="vortex",
            formats=("vortex",),
            suffixes=(".vortex",),
            write=_write,
            description="Vortex file, one row per 2-D chunk (ome-arrow-core.vortex/1)",
        ),
    ]


@hookimpl
def ome_arrow_chunk_stores() -> Sequence[ChunkStore]:
    return [
        ChunkStore(
            name="vortex",
            requires=("vortex",),
            extra="vortex",
            suffix=".vortex",
            compressions=("none", "zstd"),
            max_file_bytes=MAX_FILE_BYTES,
            write=_write_chunks,
            open=_open_chunks,
            description="dataset chunk files in Vortex (chunks.vortex), rows taken by number",
        ),
    ]
