"""typed_chunk.page_crcs.crc32 is zlib's CRC-32 whichever implementation computes it (ISA-L where installed)."""

from __future__ import annotations

import sys
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ome_arrow_core.typed_chunk import page_crcs


@given(st.binary(max_size=3000), st.integers(0, 2**32 - 1), st.integers(0, 3000))
def test_crc32_is_zlibs(data: bytes, value: int, cut: int) -> None:
    assert page_crcs.crc32(data, value) == zlib.crc32(data, value)
    head, tail = data[:cut], data[cut:]  # continued over pieces, as pages are
    assert page_crcs.crc32(tail, page_crcs.crc32(memoryview(head))) == zlib.crc32(data)


def test_zlib_is_used_without_isal(monkeypatch: pytest.MonkeyPatch) -> None:
    page_crcs._crc32.cache_clear()
    monkeypatch.setitem(sys.modules, "isal.isal_zlib", None)  # the import fails
    try:
        assert page_crcs._crc32() is zlib.crc32
        assert page_crcs.crc32(b"pixels", 7) == zlib.crc32(b"pixels", 7)
    finally:
        page_crcs._crc32.cache_clear()


def test_isal_is_used_where_installed() -> None:
    isal_zlib = pytest.importorskip("isal.isal_zlib")
    page_crcs._crc32.cache_clear()
    assert page_crcs._crc32() is isal_zlib.crc32
    data = bytes(range(256)) * 999
    assert page_crcs.crc32(data, 12345) == zlib.crc32(data, 12345)
