"""What reads remember between calls (parsed page headers, decoded column pages, chunk layouts proved to cover
their image): a remembered answer is given only for the very bytes or layout it was computed from, so damaged
bytes or a lying layout are judged afresh, exactly as without the memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ome_arrow_core import write_dataset
from ome_arrow_core.errors import DamagedFileError
from ome_arrow_core.typed_chunk import checks, page_columns, parquet_pages
from ome_arrow_core.typed_chunk.checks import check_image_chunks
from ome_arrow_core.typed_chunk.page_columns import row_columns
from ome_arrow_core.typed_chunk.parquet_pages import PageHeader, page_header
from tests.test_page_headers import BINARY, I32, STRUCT, encode_struct, headers


def _fresh(call: Any, *args: Any) -> Any:
    """``call(*args)`` with nothing remembered: its result, or the type of the ValueError it raised."""
    parquet_pages._parsed.clear()
    page_columns._decoded_pages.clear()
    try:
        return call(*args)
    except ValueError as exc:
        return type(exc)


def _warm(call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except ValueError as exc:
        return type(exc)


def _flipped(raw: bytes, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(raw)
    for at, byte in flips:
        out[at % len(out)] = byte
    return bytes(out)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(headers(), st.data())
def test_a_remembered_header_answers_only_for_its_own_bytes(
    header: tuple[bytes, PageHeader], data: st.DataObject
) -> None:
    raw, expected = header
    assert page_header(raw) == expected and page_header(raw) == expected  # parsed, then remembered
    at = data.draw(st.integers(0, len(raw) - 1))
    mask = data.draw(st.integers(1, 255))
    for other in (_flipped(raw, [(at, raw[at] ^ mask)]), raw[:at]):
        page_header(raw)
        warm = _warm(page_header, other)  # the original is remembered: maybe the same first bytes, others after
        assert warm == _fresh(page_header, other)


def test_every_byte_of_a_long_header_is_its_own() -> None:
    """A header longer than the remembered key: each byte flipped, and each cut, parses as it would afresh."""
    sub = [(1, I32, 1), (2, I32, 0), (3, I32, 3), (4, I32, 0)]
    raw = encode_struct([(1, I32, 0), (2, I32, 90), (3, I32, 90), (9, BINARY, b"s" * 30), (5, STRUCT, sub)])
    assert len(raw) > 40
    for at in range(len(raw)):
        for other in (_flipped(raw, [(at, raw[at] ^ 0x01)]), _flipped(raw, [(at, raw[at] ^ 0x40)]), raw[:at]):
            page_header(raw)
            assert _warm(page_header, other) == _fresh(page_header, other), at


@pytest.fixture(scope="module")
def row_group(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of row group 1 of a chunks file we write, up to its pixel page's data."""
    arrs = np.random.default_rng(2).integers(0, 65535, (3, 2, 8, 6), dtype=np.uint16)
    path = write_dataset(list(arrs), tmp_path_factory.mktemp("rows") / "p", dim_order="CYX", progress=False)
    t = pq.read_table(path / "index.parquet").to_pydict()
    k = t["row_group_id"].index(1)
    start, stop = t["row_group_offset"][k], t["page_offset"][k]
    return (path / "chunks.parquet").read_bytes()[start:stop]


def test_a_rows_columns_decode_the_same_remembered(row_group: bytes) -> None:
    cold = _fresh(row_columns, memoryview(row_group), None)
    assert isinstance(cold, tuple) and cold[0]["chunk_id"] == 1 and cold[1] < len(row_group)
    assert row_columns(memoryview(row_group), None) == cold


def test_every_damaged_byte_of_a_row_decodes_as_it_would_afresh(row_group: bytes) -> None:
    for at in range(len(row_group)):
        for mask in (0x01, 0x80):
            damaged = _flipped(row_group, [(at, row_group[at] ^ mask)])
            row_columns(memoryview(row_group), None)  # the good row's pages remembered
            warm = _warm(row_columns, memoryview(damaged), None)
            assert warm == _fresh(row_columns, memoryview(damaged), None), at


def _layout(origins: list[tuple[int, ...]], shapes: list[tuple[int, ...]]) -> tuple[np.ndarray, np.ndarray]:
    return np.array(origins, dtype=np.int64).reshape(-1, 5), np.array(shapes, dtype=np.int64).reshape(-1, 5)


def test_a_layout_remembered_as_covering_does_not_excuse_another() -> None:
    checks._covered.clear()
    sizes = [1, 2, 1, 8, 6]
    good = _layout([(0, 0, 0, 0, 0), (0, 1, 0, 0, 0)], [(1, 1, 1, 8, 6)] * 2)
    rows = np.arange(2)
    for _ in range(2):
        check_image_chunks("here", "img", sizes, *good, rows)
    assert len(checks._covered) == 1
    overlapping = _layout([(0, 0, 0, 0, 0), (0, 0, 0, 0, 0)], [(1, 1, 1, 8, 6)] * 2)  # same pixel count
    with pytest.raises(DamagedFileError):
        check_image_chunks("here", "img", sizes, *overlapping, rows)
    with pytest.raises(DamagedFileError):  # the good layout, for an image of other sizes
        check_image_chunks("here", "img", [1, 2, 1, 8, 7], *good, rows)
    with pytest.raises(DamagedFileError):  # a chunk missing
        check_image_chunks("here", "img", sizes, good[0][:1], good[1][:1], rows[:1])
    assert len(checks._covered) == 1


def test_what_is_remembered_stays_bounded(tmp_path: Path) -> None:
    checks._covered.clear()
    rows = np.arange(1)
    for n in range(1, checks.COVERED + 10):
        check_image_chunks("here", "img", [1, 1, 1, 1, n], *_layout([(0,) * 5], [(1, 1, 1, 1, n)]), rows)
    assert 0 < len(checks._covered) <= checks.COVERED
    for k in range(parquet_pages.PARSED_HEADERS + 10):
        page_header(encode_struct([(1, I32, 0), (2, I32, k), (3, I32, k)]))
    assert 0 < len(parquet_pages._parsed) <= parquet_pages.PARSED_HEADERS
