"""Write an image as an ``ome-arrow-core.vortex/1`` file (atomically)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from ome_arrow_core.plugin_api import ArgumentError, PlaneBlocks, atomic_path, checksums_of

from .format import CHECKSUM, INDEX_COLUMNS, META, PIXELS, Grid, chunk_shape_for, meta_to_json
from .seal import seal

if TYPE_CHECKING:
    from ome_arrow_core import ImageMeta, OMEArrow

__all__ = ["SCHEMA", "write_vortex", "record_batches"]

#: Arrow schema of the stream handed to Vortex (Vortex stores ``pixels`` as its binary dtype).
SCHEMA = pa.schema(
    [pa.field(n, pa.int32(), nullable=False) for n in INDEX_COLUMNS]
    + [
        pa.field(PIXELS, pa.large_binary(), nullable=False),
        pa.field(META, pa.string()),
        pa.field(CHECKSUM, pa.uint64()),
    ]
)

#: Pixel bytes per record batch handed to Vortex (bounds the writer's extra memory).
BATCH_BYTES = 64 << 20


#: ``plane(t, z, c)``: one YX plane of the image written.
PlaneReader = Callable[[int, int, int], np.ndarray]


def record_batches(plane: PlaneReader, meta: ImageMeta, chunk: tuple[int, int]) -> Iterator[pa.RecordBatch]:
    """The file's rows, in (t, z, c, y, x) order, as record batches, from the planes ``plane`` reads (each once:
    a plane's rows are consecutive)."""
    le = np.dtype(meta.dtype).newbyteorder("<")
    grid = Grid(meta.sizes, chunk)
    n_rows = grid.n_rows
    row_bytes = chunk[0] * chunk[1] * le.itemsize
    step = max(1, BATCH_BYTES // max(row_bytes, 1))
    meta_json = meta_to_json(meta, chunk)
    for start in range(0, n_rows, step):
        stop = min(n_rows, start + step)
        idx = grid.chunks(np.arange(start, stop))
        sizes = idx[:, 5].astype(np.int64) * idx[:, 6] * le.itemsize
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        data = np.empty(int(offsets[-1]), dtype=np.uint8)
        for k, (t, z, c, y, x, h, w) in enumerate(idx.tolist()):
            dst = data[offsets[k] : offsets[k + 1]].view(le).reshape(h, w)
            dst[...] = plane(t, z, c)[y : y + h, x : x + w]
        blob = pa.Array.from_buffers(pa.large_binary(), len(idx), [None, pa.py_buffer(offsets), pa.py_buffer(data)])
        meta_col = pa.array([meta_json if start + k == 0 else None for k in range(len(idx))], pa.string())
        cols = [pa.array(idx[:, j]) for j in range(7)]
        sums = pa.array(checksums_of(data, offsets))
        yield pa.record_batch([*cols, blob, meta_col, sums], schema=SCHEMA)


def write_vortex(
    image: OMEArrow,
    out: Path,
    *,
    layout: str = "chunks",
    chunk_shape: Sequence[int] | None = None,
    compression: str | None = None,
    column: str = "ome_arrow",
) -> Path:
    """Write ``image`` to ``out`` as a Vortex file, atomically; return ``out``.

    ``layout="chunks"`` (default): our chunk rows, read lazily (``ome-arrow-core.vortex/1``);
    ``layout="record"``: one row, its column ``column`` the image as an OME-Arrow record, as ome-arrow 0.1.0
    writes and reads it (read whole; takes neither ``chunk_shape`` nor ``compression``).

    ``chunk_shape=(h, w)`` sets the 2-D chunk (default: the plane up to 512x512, else 512x512
    tiles). ``compression=None`` (or ``"none"``) keeps Vortex's default lightweight encodings:
    a lazy read touches only the rows it needs. ``"zstd"`` uses Vortex's compact options (zstd
    on the pixel column): smaller files, but any read decompresses the whole pixel block. The image is
    read a block of planes at a time (``PlaneBlocks``), but the vortex library (0.93) holds about twice the
    file's bytes until it is written: for an image larger than memory, write Parquet or OME-Zarr. An error
    raised while reading the image (a damaged source, Ctrl-C) reaches the caller as itself, not wrapped by Vortex.
    """
    import vortex as vx

    if layout == "record":
        if chunk_shape is not None or compression is not None:
            raise ArgumentError(
                "layout='record' writes the image as one OME-Arrow record, unchunked and with Vortex's own "
                "encodings: drop chunk_shape= and compression=, or use layout='chunks'"
            )
        from .records import write_record_vortex

        return write_record_vortex(image, out, column)
    if layout != "chunks":
        raise ArgumentError(f"layout must be 'chunks' or 'record', got {layout!r}")
    codec = (compression or "none").lower()
    if codec not in ("none", "zstd"):
        raise ArgumentError(
            f"the vortex writer supports compression=None or 'zstd', got {compression!r}; "
            "use 'zstd' for smaller files or None for fast partial reads"
        )
    meta = image.meta
    chunk = chunk_shape_for(meta.sizes["Y"], meta.sizes["X"], chunk_shape)
    opts = vx.io.VortexWriteOptions.compact() if codec == "zstd" else vx.io.VortexWriteOptions.default()
    out = Path(out)
    failure: list[BaseException] = []

    def batches() -> Iterator[pa.RecordBatch]:  # Vortex turns what they raise into a RuntimeError: kept here
        try:
            yield from record_batches(PlaneBlocks(image).plane, meta, chunk)
        except BaseException as exc:  # a damaged source, Ctrl-C (the rows are pulled in this thread)
            failure.append(exc)
            raise

    with atomic_path(out) as tmp:
        try:
            opts.write(pa.RecordBatchReader.from_batches(SCHEMA, batches()), str(tmp))
        except Exception:
            if failure:
                raise failure[0] from None
            raise
        if failure:  # Vortex swallowed it
            raise failure[0]
        seal(Path(tmp))
    return out
