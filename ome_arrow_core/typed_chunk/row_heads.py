"""A row group's head (its other columns, then its pixel page's header) matched against a shape seen before.

A first read audits each chunk's row group: :func:`~.page_columns.row_columns` decodes its
column pages (about 18 Thrift headers, bodies, values) in Python. The row groups of one chunks
file differ only in their values (ids, coordinates, the statistics that repeat them) and in each
page's crc, so :func:`row_head` remembers the *shape* of a head it decoded: its bytes with each
crc's varint cut out, and which of those bytes are values (free) rather than structure (fixed).
The shape is taken from the general decoder's own parse (:func:`~.parquet_pages.marked_header`):
free are the payloads of binary fields (skipped by their lengths, which are fixed) and the PLAIN
values of the pages (whose lengths are fixed). A head whose fixed bytes equal the shape's, whose
crcs are well-formed varints and whose length matches parses exactly as the shape's did, so its
values are read straight from the same places. Any other head (damaged, another writer's, a
compressed file) is decoded by the general path, which says what is wrong.
"""

from __future__ import annotations

import re
from typing import Any, Final

import numpy as np
import pyarrow as pa

from ..frozen_types import frozen
from .page_columns import COLUMNS, defined_value_at, row_columns
from .parquet_pages import DICTIONARY_PAGE, Marks, marked_header, page_header

__all__ = ["Head", "row_head", "shaped_heads", "general_head", "SHAPES"]

#: Shapes remembered at most (a file whose image ids differ in length has one per length).
SHAPES: Final[int] = 8
#: Bytes a crc's varint takes at most (an i32, zigzag-encoded); a longer one is left to the general path.
_CRC_BYTES: Final[int] = 5


@frozen
class _Shape:
    """A head's shape as a pattern: its fixed bytes literally, its free bytes as any bytes of the same count, each
    crc as a varint of at most :data:`_CRC_BYTES` bytes; a group for each value (in ``values``: column name and
    kind)."""

    pattern: re.Pattern[bytes]
    values: tuple[tuple[str, str], ...]
    #: The pixel page's compressed and uncompressed sizes.
    pixel: tuple[int, int]


#: What a head says: its row's COLUMNS values, its pixel page's compressed and uncompressed sizes.
Head = tuple[dict[str, Any], int, int]
_shapes: list[_Shape] = []
#: Shapes that may be taken before one matches a head (each costs a general decode again and a pattern);
#: heads decoded without taking their shape since the budget ran out, and how many make it one again.
_budget = SHAPES
_unshaped = 0
_RETRY: Final[int] = 64


def row_head(head: memoryview, codec: pa.Codec | None) -> Head:
    """The COLUMNS values of the one row of a row group whose bytes up to its pixel page's data are ``head``, and
    that page's compressed and uncompressed sizes (ValueError when they are not such a row group's, or the pixel
    page's header does not end them).

    The same as :func:`general_head`, faster for a head of a shape seen before.
    """
    global _budget, _unshaped
    if codec is None:
        data = bytes(head)
        for shape in tuple(_shapes):
            got = _match(shape, data)
            if got is not None:
                _budget = SHAPES
                return got
    got = general_head(head, codec)
    if codec is None:
        if not _budget:  # shapes taken lately matched nothing since: take one now and then only
            _unshaped += 1
            if _unshaped < _RETRY:
                return got
            _budget, _unshaped = 1, 0
        _budget -= 1
        taken = _shape_of(data, got)
        if taken is not None:
            _shapes.insert(0, taken)
            del _shapes[SHAPES:]
    return got


def general_head(head: memoryview, codec: pa.Codec | None) -> Head:
    """:func:`row_head` by the general decoder, page by page."""
    row, end = row_columns(head, codec)
    page = page_header(head[end:])
    if end + page.size != len(head):
        raise ValueError("the pixel page's header does not end where its data starts")
    return row, page.compressed_size, page.uncompressed_size


def _match(shape: _Shape, data: bytes) -> Head | None:
    """``data`` read by ``shape``, or None when it is not of that shape."""
    found = shape.pattern.fullmatch(data)
    if found is None:
        return None
    row: dict[str, Any] = {}
    try:
        for (name, kind), raw in zip(shape.values, found.groups()):
            row[name] = raw.decode("utf-8") if kind == "str" else int.from_bytes(raw, "little", signed=True)
    except UnicodeDecodeError:
        return None
    return row, *shape.pixel


def shaped_heads(heads: list[bytes]) -> tuple[dict[str, list[str] | np.ndarray], tuple[int, int]] | None:
    """What :func:`row_head` says of each of ``heads`` (uncompressed row groups' heads), column by column, when all
    are of one shape remembered: each COLUMNS name's values (a list of strings, or an int64 array), and the pixel
    page's compressed and uncompressed sizes (the same for all); None otherwise (:func:`row_head` then reads each).

    The same patterns and values as :func:`_match`, with each integer column taken from its values' joined bytes
    at once instead of one ``int.from_bytes`` per value."""
    global _budget
    if not heads:
        return None
    for shape in tuple(_shapes):
        if shape.pattern.fullmatch(heads[0]) is not None:
            break
    else:
        return None
    match = shape.pattern.fullmatch
    found = [match(h) for h in heads]
    if None in found:
        return None
    values = list(zip(*(f.groups() for f in found if f is not None)))
    columns: dict[str, list[str] | np.ndarray] = {}
    try:
        for (name, kind), raws in zip(shape.values, values):
            if kind == "str":
                columns[name] = [raw.decode("utf-8") for raw in raws]
            elif len(raws[0]) in (4, 8):  # every value of a group is as long (a pattern of a fixed count)
                columns[name] = np.frombuffer(b"".join(raws), dtype=f"<i{len(raws[0])}").astype(np.int64)
            else:
                return None
    except UnicodeDecodeError:
        return None
    _budget = SHAPES
    return columns, shape.pixel


def _shape_of(data: bytes, got: Head) -> _Shape | None:
    """The shape of head ``data``, which the general decoder read as ``got`` (None: a head whose shape would not
    read it back the same, or with a header holding two crcs)."""
    spans: list[tuple[int, int, bytes]] = []  # (start, stop, pattern) of each free, crc and value span
    values: list[tuple[str, str]] = []
    view = memoryview(data)
    at = 0
    try:
        for name, kind in COLUMNS:
            dictionary = False
            while True:
                head, marks = marked_header(view[at:])
                if not _note(spans, at, marks):
                    return None
                body, at = at + head.size, at + head.size + head.compressed_size
                if head.type == DICTIONARY_PAGE or not dictionary:
                    start = body if head.type == DICTIONARY_PAGE else body + defined_value_at(view[body:at])
                    spans.append((start + 4 if kind == "str" else start, at, b"(.{%d})"))
                    values.append((name, kind))
                if head.type != DICTIONARY_PAGE:
                    break
                dictionary = True
        page, marks = marked_header(view[at:])
    except ValueError:
        return None
    if at + page.size != len(data) or not _note(spans, at, marks):
        return None
    parts: list[bytes] = []
    done = 0
    for start, stop, pattern in sorted(spans):
        parts += [re.escape(data[done:start]), pattern % (stop - start) if b"%d" in pattern else pattern]
        done = stop
    parts.append(re.escape(data[done:]))
    shape = _Shape(
        re.compile(b"".join(parts), re.DOTALL), tuple(values), (page.compressed_size, page.uncompressed_size)
    )
    return shape if _match(shape, data) == got else None


#: A crc's varint: at most :data:`_CRC_BYTES` bytes, the last one under 0x80.
_CRC: Final[bytes] = b"[\\x80-\\xff]{0,%d}[\\x00-\\x7f]" % (_CRC_BYTES - 1)


def _note(spans: list[tuple[int, int, bytes]], at: int, marks: Marks) -> bool:
    """Add the free spans and crc of a header starting at ``at`` to ``spans`` (False: it holds two crcs)."""
    if len(marks.crcs) > 1:
        return False
    spans += [(at + s, at + e, b".{%d}") for s, e in marks.payloads if e > s]
    spans += [(at + s, at + e, _CRC) for s, e in marks.crcs]
    return True
