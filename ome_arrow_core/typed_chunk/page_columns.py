"""The other columns of a one-chunk row group, decoded from its bytes: what a first read audits against the index.

A chunks file we write keeps each row group's columns one after another, in CHUNKS_SCHEMA order,
``pixel_bytes`` last; with one row per group each column chunk is one data page (after a
dictionary page for the dictionary-encoded ``image_id`` and ``dtype``). :func:`row_columns`
decodes those pages (headers, codec, definition levels, PLAIN values) from the bytes of the
row group, so a read can compare the chunk's own id, image, dtype and geometry with its index
row without the file's footer.
"""

from __future__ import annotations

from typing import Any, Final

import pyarrow as pa

from .parquet_pages import DATA_PAGE, DICTIONARY_PAGE, PLAIN, page_header

__all__ = ["COLUMNS", "DECODED_PAGES", "row_columns", "defined_value_at"]

#: The columns before ``pixel_bytes`` in a chunks file, and how each is stored.
COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("image_id", "str"),
    ("chunk_id", "i64"),
    *((a, "i32") for a in "tczyx"),
    *((f"shape_{a}", "i32") for a in "tczyx"),
    ("dtype", "str"),
)
_WIDTH: Final[dict[str, int]] = {"i32": 4, "i64": 8}


def defined_value_at(body: memoryview) -> int:
    """Where the PLAIN values of a V1 data page body of one optional value start (-1: not one defined value).

    The body starts with a 4-byte length and the definition levels (RLE/bit-packed hybrid, bit width 1).
    """
    if len(body) < 6:
        return -1
    levels = int.from_bytes(body[0:4], "little")
    if levels < 2 or 4 + levels > len(body):
        return -1
    head = body[4]
    if head & 0x80:  # a run header over one byte: far more values than one
        return -1
    defined = head >> 1 >= 1 and (body[5] & 1 if head & 1 else body[5] == 1)
    return 4 + levels if defined else -1


def _plain(body: memoryview, at: int, kind: str) -> Any:
    """One PLAIN value of ``kind`` at ``at`` that ends the body (ValueError otherwise)."""
    if kind == "str":
        n = int.from_bytes(body[at : at + 4], "little")
        if at + 4 + n != len(body):
            raise ValueError("a string value does not fill its page")
        return bytes(body[at + 4 : at + 4 + n]).decode("utf-8")
    width = _WIDTH[kind]
    if at + width != len(body):
        raise ValueError("an integer value does not fill its page")
    return int.from_bytes(body[at : at + width], "little", signed=True)


def _page(span: memoryview, at: int, codec: pa.Codec | None) -> tuple[int, int, memoryview, int]:
    """(page type, value count, decompressed body, end) of the page whose header starts at ``at`` of ``span``."""
    head = page_header(span[at:])
    start = at + head.size
    end = start + head.compressed_size
    if end > len(span):
        raise ValueError("a page runs past its row group")
    body = span[start:end]
    if codec is not None:
        body = memoryview(codec.decompress(bytes(body), decompressed_size=head.uncompressed_size))
    if len(body) != head.uncompressed_size:
        raise ValueError("a page is not the size its header says")
    if head.type == DATA_PAGE and head.encoding not in (PLAIN, 8, 2):  # PLAIN, RLE_DICTIONARY, PLAIN_DICTIONARY
        raise ValueError(f"a data page has encoding {head.encoding}")
    return head.type, head.num_values, body, end


def row_columns(span: memoryview, codec: pa.Codec | None) -> tuple[dict[str, Any], int]:
    """The COLUMNS values of the one row of a row group whose bytes start ``span``, and where they end
    (the ``pixel_bytes`` page header starts there). ValueError when the bytes are not such a row group."""
    out: dict[str, Any] = {}
    at = 0
    for name, kind in COLUMNS:
        dictionary: list[Any] = []
        while True:
            kind_of_page, n, value, at = _decoded(span, at, codec, kind, not dictionary)
            if kind_of_page == DICTIONARY_PAGE:
                if n != 1 or dictionary:
                    raise ValueError(f"{name}: a dictionary of {n} values for one row")
                dictionary.append(value)
                continue
            if kind_of_page != DATA_PAGE or n != 1:
                raise ValueError(f"{name}: page type {kind_of_page} of {n} values where one data page of one is")
            if value is _NOT_ONE:
                raise ValueError(f"{name}: the value is not one defined value")
            # a dictionary-encoded page holds an index into the one-entry dictionary
            out[name] = dictionary[0] if dictionary else value
            break
    return out, at


#: Decoded pages lately seen, by their bytes (header and body) and kind: (page type, value count, value). A chunks
#: file repeats the same pages (coordinates, shapes, dtype) in every row group.
_decoded_pages: dict[tuple[bytes, str, bool, str | None], tuple[int, int, Any]] = {}
#: Pages remembered at most, each of at most this many bytes.
DECODED_PAGES: Final[int] = 4096
_REMEMBERED_BYTES: Final[int] = 1024
_NOT_ONE: Final = object()  # a data page whose value is not one defined value


def _decoded(span: memoryview, at: int, codec: pa.Codec | None, kind: str, take: bool) -> tuple[int, int, Any, int]:
    """(page type, value count, its one value of ``kind``, end) of the page whose header starts at ``at`` of
    ``span``: a dictionary page's entry; a data page's value (``take``: no dictionary page came before it; else
    None) when it holds one defined value, else ``_NOT_ONE``. The same bytes decode once (a function of them)."""
    head = page_header(span[at:])
    end = at + head.size + head.compressed_size
    if end > len(span):
        raise ValueError("a page runs past its row group")
    small = end - at <= _REMEMBERED_BYTES  # small pages only (a long string is not kept)
    key = (bytes(span[at:end]), kind, take, codec.name if codec is not None else None) if small else None
    hit = _decoded_pages.get(key) if key is not None else None
    if hit is not None:
        return (*hit, end)
    kind_of_page, n, body, end = _page(span, at, codec)
    if kind_of_page == DICTIONARY_PAGE:
        value: Any = _plain(body, 0, kind)
    else:
        value_at = defined_value_at(body)
        value = _NOT_ONE if value_at < 0 else (_plain(body, value_at, kind) if take else None)
    if key is not None:
        if len(_decoded_pages) >= DECODED_PAGES:
            _decoded_pages.clear()
        _decoded_pages[key] = (kind_of_page, n, value)
    return kind_of_page, n, value, end
