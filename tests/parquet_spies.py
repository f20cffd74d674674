"""Spies on the library's Parquet reads: they go through ``pyarrow.parquet`` or, for the typed-chunk tables, through
:mod:`ome_arrow_core.parquet_lite` (pyarrow's reader without importing ``pyarrow.parquet``); a spy patches both."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow.parquet as pq
import pytest

from ome_arrow_core import parquet_lite

#: The classes that open a Parquet file for the library.
PARQUET_FILES: tuple[Any, ...] = (pq.ParquetFile, parquet_lite.ParquetFile)
#: The modules whose ``read_metadata``, ``read_schema``, ``ParquetFile``... the library calls.
PARQUET_MODULES: tuple[Any, ...] = (pq, parquet_lite)


def spy_on(monkeypatch: pytest.MonkeyPatch, owners: tuple[Any, ...], name: str, wrap: Callable[[Any], Any]) -> None:
    """Replace ``name`` of each of ``owners`` by ``wrap(its real one)``."""
    for owner in owners:
        monkeypatch.setattr(owner, name, wrap(getattr(owner, name)))
