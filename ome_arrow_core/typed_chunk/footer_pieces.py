"""A table's footer checked in pieces: its head and tail once, each block of row group entries as a read needs it.

A footer is hashed whole before pyarrow parses any of it (see :mod:`.group_sums`): at a million images the images
table's is 2.2 MB, the index's 1.1 MB, and a plate of 100,000 images of 64x64 has a chunks footer of 3.7 MB, ~0.4 ms
of a fresh process's first image, growing with the images. A read through one-group footers (see
:mod:`.group_footers`) parses only the footer's head (schema, metadata, up to the row group list), its tail (after
the list, with the length and magic that end the file) and one row group's entry. Entries written with them record,
beside ``footer_spans``::

    "footer_block": 16, "footer_sums": "<16 hex digits a piece>"

piece 0 the XXH3-64 of the head, then the tail and the file's last 8 bytes; piece ``1 + b`` that of the entries of
row groups ``b * block`` to ``(b + 1) * block - 1`` (the last block: to the list's end). A reader with checks on
hashes the head and tail when it opens the table and each block before it parses an entry in it; the footer's whole
digest, still recorded, is checked before anything parses the footer whole. Entries without them (older writers,
another tool's rewrite) are checked whole, as before; readers that do not know them ignore them (the format version
is unchanged).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from ..checksums import hex_digest

__all__ = ["FOOTER_BLOCK", "block_span", "head_digest", "piece_sums", "parse_pieces"]

#: Row group entries hashed together (an images entry of 27 columns is ~2.3 KB: a block is ~37 KB, ~10 us).
FOOTER_BLOCK: Final[int] = 16
_HEX = re.compile(r"[0-9a-f]*")


def head_digest(footer: bytes, header: int, end: int) -> str:
    """The digest of piece 0 of serialized FileMetaData ``footer`` (its bytes, then the file's 8 last)."""
    return hex_digest(footer[:header], footer[end:], len(footer).to_bytes(4, "little") + b"PAR1")


def block_span(starts: Sequence[int], end: int, block: int, b: int) -> tuple[int, int]:
    """Offsets in the FileMetaData of entry block ``b`` (``starts``: each entry's first byte; ``end``: the list's)."""
    first = b * block
    last = (b + 1) * block
    return int(starts[first]), int(starts[last]) if last < len(starts) else end


def piece_sums(footer: bytes, spans: Sequence[int], block: int = FOOTER_BLOCK) -> str:
    """The ``footer_sums`` of serialized FileMetaData ``footer`` whose ``footer_spans`` are ``spans``."""
    _, _, header, end, *starts = spans
    out = [head_digest(footer, header, end)]
    for b in range(-(-len(starts) // block)):
        lo, hi = block_span(starts, end, block, b)
        out.append(hex_digest(footer[lo:hi]))
    return "".join(out)


def parse_pieces(entry: Mapping[str, Any], groups: int) -> tuple[str, int] | None:
    """(``footer_sums``, ``footer_block``) of a manifest ``entry`` of a table of ``groups`` row groups, None when it
    records none; ValueError when they do not fit it."""
    text, block = entry.get("footer_sums"), entry.get("footer_block")
    if text is None and block is None:
        return None
    if not isinstance(text, str) or type(block) is not int or block < 1:
        raise ValueError("footer_sums must be text and footer_block a positive count")
    text = text.lower()
    if len(text) != 16 * (1 + -(-groups // block)) or not _HEX.fullmatch(text):
        raise ValueError(f"footer_sums must hold 16 hex digits for the head and each block of {block} entries")
    return text, block
