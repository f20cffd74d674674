"""Vortex backend for ome-arrow-core.

File layout (format ``ome-arrow-core.vortex/1``), one Vortex file per image:

- one row per 2-D chunk of a plane, rows ordered by ``(t, z, c, y, x)`` over the dense chunk
  grid, so the row of a chunk is arithmetic:
  ``row = (((t * Z + z) * C + c) * GY + y // h0) * GX + x // w0`` with ``GY = ceil(Y / h0)``,
  ``GX = ceil(X / w0)`` for the chunk shape ``(h0, w0)``;
- columns ``t, z, c, y, x, h, w: int32`` (plane indices, chunk origin, chunk size; edge chunks
  are smaller) and ``pixels: binary`` (the raw little-endian bytes of the ``h x w`` chunk in C
  order);
- a ``meta: utf8`` column holding, in row 0 only (null elsewhere), a JSON object
  ``{"format": "ome-arrow-core.vortex/1", "chunk_shape": [h0, w0], "image": {...}}`` with the
  ImageMeta (sizes, dtype name, physical sizes and units, channels, name, id, ...).

Whole-file seal (``seal.py``): the writer inserts a 32-byte XXH3-64 of the file's other bytes
between Vortex's footer and its postscript; readers check it with plain Python before
``vortex.open`` (vortex-data 0.93 aborts the process on some damaged files). Files without a
seal are first read by vortex in a child process (``probe.py``).

Why a metadata column: vortex-data 0.93 has no key-value file metadata in its Python API
(Arrow schema metadata is dropped on write), so the metadata travels in the file itself as a
single-row column; reading it is a one-row, one-column scan that touches no pixels.

Reads push projection and row selection into Vortex: the reader computes the rows of the chunks
a selection intersects and scans only those (``VortexFile.to_arrow(indices=...)``). Vortex 0.93
packs up to 8192 rows into one block, so the pixel column of an image is usually one segment;
the file is therefore memory-mapped (``vortex.open(path, memory_map=True)``) so that taking a
few rows touches only their pages (``open_vortex(path, memory_map=False)`` turns that off). A
mapped file must not be truncated while a lazy image reads it; export(how="vortex") replaces
files atomically, so rewriting an image never does that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .format import FORMAT_VERSION

__version__ = "0.1.0"

__all__ = ["FORMAT_VERSION", "__version__"]


def __getattr__(name: str) -> Any:
    """FORMAT_VERSION loads :mod:`.format` on first use (loading the plugin, e.g. to read a Parquet file, does not)."""
    if name == "FORMAT_VERSION":
        from .format import FORMAT_VERSION

        return FORMAT_VERSION
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
