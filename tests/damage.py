"""Damage helpers shared by the read-path tests: flip a byte of a file, find a chunk's page, open a source whose
first read has audited every row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ome_arrow_core.selection import Selection
from ome_arrow_core.typed_chunk import DatasetSource
from ome_arrow_core.typed_chunk.grouped_reads import ranged_piece


def flip_byte(file: Path, at: int, mask: int = 0x01) -> None:
    """XOR the byte at offset ``at`` of ``file`` with ``mask``, in place."""
    with open(file, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ mask]))


def lie_in_length(file: Path, page: int, length: int = 77) -> None:
    """Overwrite the 4-byte length prefix of the one PLAIN value of the page at ``page`` of ``file`` (after its
    4 + 2 level bytes) with ``length``, in place."""
    with open(file, "r+b") as f:
        f.seek(page + 6)
        f.write(length.to_bytes(4, "little"))


def chunk_page(src: DatasetSource, group: int) -> tuple[int, int]:
    """(offset, compressed size) of row group ``group``'s page in ``src``'s one page-ranged chunks file (a plate's
    aligned index reads it by pieces, each a PageFragment: the one holding ``group``)."""
    found = ranged_piece(src._opened.fragment(0), np.array([group], dtype=np.int64))
    assert found is not None
    frag, first = found
    return int(frag.offset[group - first]), int(frag.compressed[group - first])


def audited(out: Path, **options: Any) -> DatasetSource:
    """A source on dataset ``out`` after one full read: the first read audits every row, later reads stream."""
    src = DatasetSource(out, **options)
    src.read(Selection.full(src.meta.sizes))
    return src
