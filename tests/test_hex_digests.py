"""The one form of a stored checksum: XXH3-64 as 16 lower-case hex digits (manifests, footers, records, XML)."""

from __future__ import annotations

from collections.abc import Iterator

import xxhash
from hypothesis import given
from hypothesis import strategies as st

from ome_arrow_core.checksums import hex_digest, hex_digest_of, to_hex


def test_to_hex_is_sixteen_lower_case_digits() -> None:
    assert to_hex(0) == "0" * 16
    assert to_hex(7) == "0000000000000007"
    assert to_hex(0xABC) == "0000000000000abc"
    assert to_hex(2**64 - 1) == "f" * 16


def test_the_empty_digest_is_xxh3_64s() -> None:
    # XXH3_64bits("") with seed 0, from the XXH3 specification's test vectors: strings written by earlier versions
    # keep matching
    assert hex_digest(b"") == hex_digest_of([]) == "2d06800538d394c2"


@given(st.lists(st.binary(max_size=300), max_size=6))
def test_parts_hash_as_their_concatenation(parts: list[bytes]) -> None:
    whole = f"{xxhash.xxh3_64_intdigest(b''.join(parts)):016x}"
    assert hex_digest(*parts) == hex_digest_of(iter(parts)) == whole
    assert hex_digest(memoryview(b"".join(parts))) == whole


@given(st.binary(max_size=2000), st.integers(1, 64))
def test_parts_of_one_reused_buffer_are_hashed_before_the_next(data: bytes, block: int) -> None:
    buf = bytearray(block)

    def blocks() -> Iterator[memoryview]:
        for at in range(0, len(data), block):
            n = len(data[at : at + block])
            buf[:n] = data[at : at + block]
            yield memoryview(buf)[:n]

    assert hex_digest_of(blocks()) == f"{xxhash.xxh3_64_intdigest(data):016x}"
