"""Walking a Parquet footer's Thrift (compact protocol) bytes: where each row group's entry lies in it.

A Parquet footer is one Thrift ``FileMetaData`` struct; its field 4 is the list of ``RowGroup`` structs, each
with a ``ColumnChunk`` per column: for a plate of a million images, 977 row groups and a few MiB that pyarrow
parses whole before it reads any row group. :func:`row_group_spans` finds the byte range of each row group's
entry (once, when the table is written); :func:`one_group_footer` splices the entries of other row groups out,
so that a reader parses a footer of one row group (see :mod:`.group_footers`). Nothing here trusts its input:
a byte string that is not such a struct raises :class:`ThriftError`.
"""

from __future__ import annotations

from typing import Final

from ..frozen_types import FrozenTuple

__all__ = ["ThriftError", "RowGroupSpans", "row_group_spans", "skip_struct", "one_group_footer"]

_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(13)
#: Deepest nesting a Parquet footer has (FileMetaData > RowGroup > ColumnChunk > ColumnMetaData > Statistics...).
_DEPTH: Final[int] = 16
#: Field id of FileMetaData.row_groups.
_ROW_GROUPS: Final[int] = 4


class ThriftError(ValueError):
    """Bytes that are not the Thrift struct they were taken for."""


class RowGroupSpans(FrozenTuple):
    """Where FileMetaData's row group list lies in its bytes: the list header's first byte, the first byte after
    the list, and the first byte of each row group's entry (each ends where the next starts; the last at ``end``)."""

    header: int
    end: int
    starts: tuple[int, ...]


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    out, shift = 0, 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ThriftError(f"a varint runs past byte {i}")
        b = buf[i]
        i += 1
        out |= (b & 0x7F) << shift
        if not b & 0x80:
            return out, i
        shift += 7


def _list_header(buf: bytes, i: int) -> tuple[int, int, int]:
    """(count, first byte of the first element, element type) of the list header at ``i``."""
    if i >= len(buf):
        raise ThriftError(f"a list header runs past byte {i}")
    count, element = buf[i] >> 4, buf[i] & 0x0F
    i += 1
    if count == 15:
        count, i = _varint(buf, i)
    return count, i, element


def _fields(
    buf: bytes, i: int, depth: int, visit: int | None = None, marks: list[int] | None = None
) -> tuple[int, tuple[int, int] | None]:
    """Skip the fields of a struct starting at ``i`` (nested ``depth`` deep): the first byte after its STOP, and
    (where field ``visit``'s value starts, its type) when it has that field. ``marks`` (when given) gets where each
    value of field ``visit``'s list starts, then where the list ends.

    One loop over the bytes with a stack of the open structs, lists and maps (a call per value took a footer walk
    1.4x the time). A struct's entry on the stack is ``[-1, -1, field id]``; a list's or a map's is ``[first kind,
    second kind, values left]``: a list's values are all of one kind, a map's alternate key, value."""
    n = len(buf)
    found = None
    open_: list[list[int]] = [[-1, -1, 0]]
    watch = False  # the value being skipped is field ``visit``'s
    listed: list[int] | None = None  # the stack entry of field ``visit``'s list, while it is open
    while True:
        top = open_[-1]
        if top[0] < 0:  # in a struct: the next field's header
            if i >= n:
                raise ThriftError(f"a struct runs past byte {i}")
            head = buf[i]
            i += 1
            if head == _STOP:
                open_.pop()
                if not open_:
                    return i, found
                continue
            kind, delta = head & 0x0F, head >> 4
            if delta:
                top[2] += delta
            else:
                raw, i = _varint(buf, i)
                top[2] = (raw >> 1) ^ -(raw & 1)
            if visit is not None and len(open_) == 1 and top[2] == visit:
                found = (i, kind)
                if marks is not None:
                    marks.clear()
                    watch = True
        else:  # in a list or map: its next value
            left = top[2]
            if top is listed:
                assert marks is not None
                marks.append(i)
            if not left:
                open_.pop()
                continue
            top[2] = left - 1
            kind = top[0] if left % 2 == 0 else top[1]
        # skip one value of ``kind`` at ``i``
        if kind in (_I16, _I32, _I64):
            if i < n and buf[i] < 0x80:
                i += 1
            else:
                i = _varint(buf, i)[1]
        elif kind == _BINARY:
            if i < n and buf[i] < 0x80:
                i += 1 + buf[i]
            else:
                size, i = _varint(buf, i)
                i += size
        elif kind == _STRUCT or kind in (_LIST, _SET, _MAP):
            if depth + len(open_) > _DEPTH:
                raise ThriftError("structs nest deeper than a Parquet footer's")
            if kind == _STRUCT:
                open_.append([-1, -1, 0])
            elif kind == _MAP:
                count, i = _varint(buf, i)
                if count:
                    if i >= n:
                        raise ThriftError(f"a map header runs past byte {i}")
                    key, value = buf[i] >> 4, buf[i] & 0x0F
                    i += 1
                    if _TRUE in (key, value) or _FALSE in (key, value):
                        raise ThriftError(f"a map of booleans at byte {i}: not a Parquet footer")
                    open_.append([key, value, 2 * count])
            else:
                count, i, element = _list_header(buf, i)
                if element in (_TRUE, _FALSE):  # a list's booleans take a byte each
                    i += count
                elif count:
                    open_.append([element, element, count])
        elif kind == _BYTE:
            i += 1
        elif kind == _DOUBLE:
            i += 8
        elif kind not in (_TRUE, _FALSE):  # a struct's booleans are in their field header
            raise ThriftError(f"unknown Thrift type {kind} at byte {i}")
        if i > n:
            raise ThriftError(f"a field runs past the end ({n} bytes)")
        if watch:  # field ``visit``'s value: a list now open, or a value already skipped
            assert marks is not None
            watch = False
            if len(open_) == 1:
                marks.append(i)
            elif kind in (_LIST, _SET):
                listed = open_[-1]


def skip_struct(buf: bytes, i: int = 0, depth: int = 0) -> int:
    """The first byte after the struct starting at ``i`` of ``buf`` (ThriftError when it is not one)."""
    return _fields(buf, i, depth)[0]


def row_group_spans(meta: bytes) -> RowGroupSpans:
    """The spans of the row groups of serialized FileMetaData ``meta`` (ThriftError when it is not one, or has no
    row group list)."""
    marks: list[int] = []  # each row group's start, then the list's end: found in the one walk
    end, found = _fields(meta, 0, 0, _ROW_GROUPS, marks)
    if end != len(meta):
        raise ThriftError(f"the footer's struct ends at byte {end} of {len(meta)}")
    if found is None or found[1] != _LIST:
        raise ThriftError("the footer has no row group list")
    header = found[0]
    _, _, element = _list_header(meta, header)
    if element != _STRUCT:
        raise ThriftError(f"the row group list holds Thrift type {element}, not structs")
    return RowGroupSpans(header, marks[-1], tuple(marks[:-1]))


def one_group_footer(head: bytes, group: bytes | None, tail: bytes) -> bytes:
    """Serialized FileMetaData of ``head`` (its bytes up to the row group list), the one row group entry ``group``
    (None: no row group) and ``tail`` (its bytes after the list)."""
    return head + (b"\x1c" + group if group is not None else b"\x0c") + tail
