"""Conformance kit for plugin authors: check a reader or a chunk store against the core's contract.

Models: bioio-base's ``run_image_file_checks`` (one call checks a reader on a file) and
zarr-python's ``StoreTests`` (a base class a store's test suite subclasses).

- :func:`check_reader` opens a file through a registry, as ``OMEArrow(path)`` does, and checks
  metadata, every kind of selection against the expected pixels, repeat and threaded reads,
  that outputs are not aliased to shared state, and that a missing, truncated or garbage file
  raises our errors.
- :func:`check_chunk_store` writes chunk rows with a :class:`~ome_arrow_core.ChunkStore`, reopens
  them and checks ``take`` returns every row's bytes exactly, in any subset, from threads, and
  that truncated or garbage files raise our errors. :class:`ChunkStoreTests` runs the same checks
  as separate pytest tests: subclass it as ``TestMyStore`` and set ``store_name``.

A failed check raises :class:`ConformanceError` (an ``AssertionError``) saying which check failed
and how. Importing this module loads no test framework and no backend library.
"""

from __future__ import annotations

from .chunk_stores import ChunkStoreTests, check_chunk_store
from .conformance import ConformanceError
from .readers import check_reader, selections_for

__all__ = ["ChunkStoreTests", "ConformanceError", "check_chunk_store", "check_reader", "selections_for"]
