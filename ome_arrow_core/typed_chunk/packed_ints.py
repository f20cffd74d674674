"""Integer lists of the manifest packed as base64 text: a plate's per-row-group records parsed at memcpy speed.

A manifest records, per packed chunks file, three integers per row group (:mod:`.chunk_footers`): 9,400 at 100,000
images of 64x64, 94,000 at a million. As JSON numbers they cost ~1.2 ms of parsing at 100,000 images (each becomes a
Python int, then a numpy array); as one base64 string of little-endian int64 they cost ~0.05 ms. :func:`pack_ints`
writes that string, :func:`unpack_ints` reads it back, refusing (ValueError) anything that is not exactly such a
string of the expected length.
"""

from __future__ import annotations

import base64
import binascii

import numpy as np

__all__ = ["pack_ints", "unpack_ints"]


def pack_ints(values: np.ndarray | list[int]) -> str:
    """``values`` as base64 text of little-endian int64."""
    return base64.b64encode(np.ascontiguousarray(values, dtype="<i8").tobytes()).decode("ascii")


def unpack_ints(text: object, count: int) -> np.ndarray:
    """The ``count`` int64 that :func:`pack_ints` wrote as ``text``; ValueError when ``text`` is not base64 text of
    exactly ``count`` little-endian int64 (TypeError when it is not a string)."""
    if not isinstance(text, str):
        raise TypeError(f"expected base64 text, got {type(text).__name__}")
    if count < 0 or len(text) != 4 * -(-8 * count // 3):
        raise ValueError(
            f"expected base64 text of {count} int64 ({4 * -(-8 * count // 3)} characters), got {len(text)}"
        )
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"not base64 text: {exc}") from None
    if len(raw) != 8 * count:
        raise ValueError(f"expected {8 * count} bytes, got {len(raw)}")
    return np.frombuffer(raw, dtype="<i8").astype(np.int64)
