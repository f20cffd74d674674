"""Measuring a table's row-group segments when it is written (see :mod:`.group_sums`): where they lie, their
XXH3-64 digests, where its footer lists each row group; the ``table_groups`` entries of a write or a swap.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from ..checksums import hex_digest, range_digest
from .footer_pieces import piece_sums
from .group_records import Segments

__all__ = ["measure", "record_groups", "swapped_groups", "footer_spans_of", "footer_piece_sums", "digest_of"]

#: Bytes hashed at a time, read into one buffer reused for the whole range (a fresh 4 MiB ``bytes`` per read cost
#: a first open of a plate ~3 ms of page faults for a 3.7 MB footer; hashing it costs 0.1 ms).
_BLOCK: Final[int] = 256 << 10


#: Each thread's hashing buffer, made once (a fresh zero-filled 256 KiB buffer per digest cost a plate's first image
#: ~1.3 M instructions of memset for its five digests).
_buffers = threading.local()


def _digest(fd: int, start: int, stop: int) -> str:
    """XXH3-64 of bytes ``start..stop`` of the file open as ``fd``, read through this thread's buffer."""
    view: memoryview | None = getattr(_buffers, "view", None)
    if view is None:
        view = _buffers.view = memoryview(bytearray(_BLOCK))
    return range_digest(fd, start, stop, view)


def measure(file: Path, digest: str, data: bytes | None = None) -> Segments | None:
    """The segments of Parquet table ``file`` (just written by us; its whole-file ``digest`` given), or None when
    its row groups do not lie one after another (the table is then checked whole). ``data``: the table's bytes, as
    read back from ``file`` for ``digest`` (:func:`~.table_sums.record`): measured without reading it again."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    md = pq.read_metadata(file if data is None else pa.BufferReader(data))
    size = file.stat().st_size if data is None else len(data)
    bounds = [0]
    end = 4
    for g in range(md.num_row_groups):
        group = md.row_group(g)
        spans = []
        for c in range(group.num_columns):
            col = group.column(c)
            first = col.data_page_offset
            if col.has_dictionary_page and col.dictionary_page_offset:
                first = min(first, col.dictionary_page_offset)
            spans.append((first, first + col.total_compressed_size))
        if not spans:
            continue
        lo, hi = min(s for s, _ in spans), max(e for _, e in spans)
        if lo < end or hi > size:
            return None
        if g:
            bounds.append(lo)
        end = hi
    if md.num_row_groups:
        bounds.append(end)
    if len(bounds) != md.num_row_groups + 1 or any(b >= a for a, b in zip(bounds[1:], bounds)):
        return None
    if data is not None:
        view = memoryview(data)
        sums = [hex_digest(view[a:b]) for a, b in zip(bounds, [*bounds[1:], size])]
        listed = _spans(lambda n, at: data[at : at + n], size, md.num_row_groups)
    else:
        fd = os.open(file, os.O_RDONLY)
        try:
            sums = [_digest(fd, a, b) for a, b in zip(bounds, [*bounds[1:], size])]
            listed = _footer_spans(fd, size, md.num_row_groups)
        finally:
            os.close(fd)
    rows = tuple(int(md.row_group(g).num_rows) for g in range(md.num_row_groups))
    return Segments(digest, size, tuple(bounds), tuple(sums), int(md.num_rows), rows, listed)


def footer_piece_sums(fd: int, spans: tuple[int, ...]) -> str:
    """The ``footer_sums`` (see :mod:`.footer_pieces`) of the Parquet file open as ``fd``, its ``footer_spans``
    given."""
    return piece_sums(os.pread(fd, spans[1], spans[0]), spans)


def digest_of(fd: int, start: int, stop: int) -> str:
    """XXH3-64 (16 hex digits) of bytes ``start..stop`` of the file open as ``fd``."""
    return _digest(fd, start, stop)


def footer_spans_of(fd: int, size: int, groups: int) -> tuple[int, ...] | None:
    """The ``footer_spans`` of the Parquet file open as ``fd`` (``size`` bytes, ``groups`` row groups), or None when
    its footer cannot be walked (then readers parse it whole)."""
    return _footer_spans(fd, size, groups)


def _footer_spans(fd: int, size: int, groups: int) -> tuple[int, ...] | None:
    """The ``footer_spans`` of the Parquet file open as ``fd`` (``size`` bytes, ``groups`` row groups), or None when
    its footer cannot be walked (then readers parse it whole)."""
    return _spans(lambda n, at: os.pread(fd, n, at), size, groups)


def _spans(pread: Callable[[int, int], bytes], size: int, groups: int) -> tuple[int, ...] | None:
    """:func:`_footer_spans` of the file whose bytes ``pread(n, at)`` reads."""
    from .thrift_walk import ThriftError, row_group_spans

    tail = pread(8, size - 8)
    length = int.from_bytes(tail[:4], "little")
    if tail[4:] != b"PAR1" or not 0 < length <= size - 12:
        return None
    at = size - 8 - length
    try:
        found = row_group_spans(pread(length, at))
    except ThriftError:
        return None
    if len(found.starts) != groups:
        return None
    return (at, length, found.header, found.end, *found.starts)


def record_groups(
    root: Path,
    tables: Mapping[str, list[str]],
    keep: Mapping[str, Any] | None = None,
    held: Mapping[str, bytes] | None = None,
) -> dict[str, dict[str, Any]]:
    """The ``table_groups`` entries of the tables ``tables`` records (the manifest's ``tables``, just computed):
    kept from ``keep`` (the previous manifest's entries) where the table is unchanged, measured otherwise (from
    ``held``'s bytes of it, those its digest is of, when it has them: see :func:`~.table_sums.record`)."""
    out: dict[str, dict[str, Any]] = {}
    kept = keep if isinstance(keep, Mapping) else {}
    for name, digests in tables.items():
        if len(digests) != 1:
            continue
        old = kept.get(name)
        if isinstance(old, Mapping) and old.get("digest") == digests[0]:
            out[name] = dict(old)
            continue
        data = (held or {}).get(name)
        found = measure(root / name, digests[0], data) if data is not None or (root / name).is_file() else None
        if found is not None:
            out[name] = found.to_json()
    return out


def swapped_groups(root: Path, new: Path, tables: Mapping[str, list[str]]) -> dict[str, dict[str, Any]]:
    """The ``table_groups`` entries once a swap is done: of ``new / name`` when the swap writes it, else of
    ``root / name`` (``tables``: their digests, as :func:`~.table_sums.swapped_digest` gives them)."""
    out: dict[str, dict[str, Any]] = {}
    for name, digests in tables.items():
        file = new / name if (new / name).exists() else root / name
        found = measure(file, digests[0]) if len(digests) == 1 else None
        if found is not None:
            out[name] = found.to_json()
    return out
