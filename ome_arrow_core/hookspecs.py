"""The hooks a plugin implements. Each returns the handlers the plugin provides.

A plugin is a module (or object) with functions marked ``@hookimpl``; it is found through
the ``ome_arrow_core.plugins`` entry-point group or registered in code. Hooks must not
import heavy frameworks: handlers import them when they run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .handlers import ChunkStore, Exporter, Ingester, Reader, Writer

__all__ = ["PROJECT", "hookspec", "hookimpl"]

PROJECT = "ome_arrow_core"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def ome_arrow_ingesters() -> Sequence[Ingester]:
    """Ingesters: turn an in-memory array (numpy, torch, jax, cupy...) into pixels."""
    raise NotImplementedError


@hookspec
def ome_arrow_readers() -> Sequence[Reader]:
    """Readers: open a file or directory as a pixel source, eagerly or lazily."""
    raise NotImplementedError


@hookspec
def ome_arrow_writers() -> Sequence[Writer]:
    """Writers: write an image to a file format (``export(how=...)``)."""
    raise NotImplementedError


@hookspec
def ome_arrow_exporters() -> Sequence[Exporter]:
    """Exporters: hand a tensor view to a device as a DLPack-capable object."""
    raise NotImplementedError


@hookspec
def ome_arrow_chunk_stores() -> Sequence[ChunkStore]:
    """Chunk stores: file formats (other than Parquet) for the chunk files of a dataset."""
    raise NotImplementedError
