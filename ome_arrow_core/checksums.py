"""Per-chunk checksums: computed when chunks are written, checked when their pixels are read.

Every chunk (a dataset chunk row, a struct record's plane, a Vortex file's tile) carries a
checksum of its stored, uncompressed bytes: XXH3-64 (``xxhash``), which runs at ~48 GB/s from
cache (zlib's CRC-32: ~3.7), so checking it costs 14-19% of the CPU of a warm local read, where
the rest is copying (docs/benchmarks.md gives the measurements).
Reads check by default; ``verify=False`` where an image is opened, or the environment
variable ``OME_ARROW_CORE_VERIFY=0``, skips the check (the file's bytes are then trusted).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

import numpy as np

from .arrow_numpy import int_values, valid_mask
from .env_switches import env_value
from .errors import ChecksumError, SchemaError

__all__ = [
    "ALGORITHM",
    "ENV",
    "FIX",
    "ChunkChecksums",
    "checksum",
    "checksums_of",
    "checker",
    "hex_digest",
    "hex_digest_of",
    "range_digest",
    "mismatch",
    "to_hex",
    "verify_enabled",
]

#: The algorithm ome-arrow-core writes (its name is stored with the checksums).
ALGORITHM: Final[str] = "xxh3_64"
#: Environment variable that, set to ``0`` (or ``false``/``no``/``off``), skips checks on read.
ENV: Final[str] = "OME_ARROW_CORE_VERIFY"
#: How to repair a damaged file, for error messages.
FIX: Final[str] = (
    "restore the file from a backup or re-create it from its source; `ome-arrow-core verify PATH` lists all damage"
)


def _xxh3_64() -> Callable[[Any], int]:
    import xxhash

    fn: Callable[[Any], int] = xxhash.xxh3_64_intdigest
    return fn


_ALGORITHMS: Final[dict[str, Callable[[], Callable[[Any], int]]]] = {"xxh3_64": _xxh3_64}
_loaded: dict[str, Callable[[Any], int]] = {}


def checker(algorithm: str | None, where: str) -> Callable[[Any], int]:
    """The function computing ``algorithm`` over a buffer (SchemaError for one this version does not know)."""
    name = algorithm or ALGORITHM
    fn = _loaded.get(name)
    if fn is None:
        make = _ALGORITHMS.get(name)
        if make is None:
            raise SchemaError(
                f"{where} was written with checksum algorithm {name!r}; this version knows "
                f"{sorted(_ALGORITHMS)}. Upgrade ome-arrow-core, or read without checks ({ENV}=0)"
            )
        fn = _loaded[name] = make()
    return fn


def checksum(data: Any) -> int:
    """The :data:`ALGORITHM` checksum of a buffer (bytes, memoryview, pa.Buffer, contiguous array): no copy."""
    return checker(ALGORITHM, "")(data)


def to_hex(value: int) -> str:
    """Checksum ``value`` as files and manifests store it: 16 lower-case hex digits."""
    return f"{value:016x}"


def hex_digest(*parts: Any) -> str:
    """The :data:`ALGORITHM` checksum of buffers ``parts`` one after another, as :func:`to_hex` writes it."""
    if len(parts) == 1:
        return to_hex(checksum(parts[0]))
    return hex_digest_of(parts)


def hex_digest_of(parts: Iterable[Any]) -> str:
    """:func:`hex_digest` of the buffers ``parts`` yields, each hashed before the next is asked for (so one reused
    buffer may hold them in turn)."""
    import xxhash

    h = xxhash.xxh3_64()
    for part in parts:
        h.update(part)
    return to_hex(h.intdigest())


def range_digest(fd: int, start: int, stop: int, buffer: memoryview) -> str:
    """:func:`hex_digest` of bytes ``start..stop`` of the file open as ``fd``, read into ``buffer`` a block (its size)
    at a time; a file that ends early hashes what it has (so the digest cannot match). Whole tables read 4 MiB
    blocks, row-group ranges 256 KiB: 256 KiB blocks cost whole-table hashing 5-10% more CPU
    (``benchmarks/hash_blocks.py``)."""
    return hex_digest_of(_range_blocks(fd, start, stop, buffer))


def _range_blocks(fd: int, start: int, stop: int, buffer: memoryview) -> Iterator[memoryview]:
    """Bytes ``start..stop`` of the file open as ``fd``, block by block in ``buffer``."""
    at = start
    while at < stop:
        got = os.preadv(fd, [buffer[: min(stop - at, len(buffer))]], at)
        if got <= 0:
            break  # short: the digest cannot match
        yield buffer[:got]
        at += got


def checksums_of(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Checksums (uint64) of the byte ranges ``offsets[i]:offsets[i + 1]`` of the uint8 array ``data``."""
    fn = checker(ALGORITHM, "")
    bounds = offsets.tolist()
    return np.array([fn(data[bounds[i] : bounds[i + 1]]) for i in range(len(bounds) - 1)], dtype=np.uint64)


def verify_enabled(verify: bool | None = None) -> bool:
    """Whether reads check checksums: ``verify`` when given, else unless ``OME_ARROW_CORE_VERIFY`` is 0/false/no/off."""
    if verify is not None:
        return bool(verify)
    value = env_value(ENV)
    return value is None or value.strip().lower() not in ("0", "false", "no", "off")


def mismatch(where: str, what: str, stored: int, actual: int) -> ChecksumError:
    """The error for bytes whose checksum differs from the stored one."""
    return ChecksumError(
        f"{where}: the bytes of {what} do not match their checksum (stored {to_hex(stored)}, computed "
        f"{to_hex(actual)}); the file is damaged and its pixels are not served. Fix: {FIX}. To read it "
        f"anyway, pass verify=False or set {ENV}=0"
    )


class ChunkChecksums:
    """The stored checksums of a dataset's index rows, and the check of one chunk's bytes against them.

    ``column`` is the index's ``checksum`` column (null where a chunk was written without one:
    such a chunk is not checked); ``algorithm`` the manifest's ``ome_arrow_core.checksum``.
    """

    def __init__(self, column: Any, algorithm: str | None, where: str) -> None:
        self.where = where
        self.values: np.ndarray | None = None
        self.present: np.ndarray | None = None
        self._fn: Callable[[Any], int] | None = None
        if column is not None and len(column) and column.null_count < len(column):
            self.values = int_values(column).astype(np.uint64, copy=False)  # no pandas, no compute kernels
            self.present = valid_mask(column)
            self._fn = checker(algorithm, where)

    @classmethod
    def of_arrays(cls, values: np.ndarray, present: np.ndarray, algorithm: str | None, where: str) -> ChunkChecksums:
        """The checksums ``values`` (uint64 by index row; ``present`` False where a chunk has none), read in place:
        rows filled in later are checked too."""
        out = cls(None, algorithm, where)
        out.values, out.present, out._fn = values, present, checker(algorithm, where)
        return out

    @property
    def hasher(self) -> Callable[[Any], int] | None:
        """The function computing the algorithm over a buffer (None when no row has a checksum)."""
        return self._fn

    def compare(self, row: int, data: Any, start: int, nbytes: int) -> tuple[int, int] | None:
        """(stored, computed) checksum of bytes ``start:start + nbytes`` of buffer ``data`` for index row
        ``row`` (no copy); None when the row has no checksum."""
        if self.values is None or self.present is None or self._fn is None or not self.present[row]:
            return None
        return int(self.values[row]), self._fn(memoryview(data)[start : start + nbytes])

    def check(self, row: int, data: Any, start: int, nbytes: int, what: Callable[[], tuple[str, str]]) -> None:
        """Raise ChecksumError unless bytes ``start:start + nbytes`` of buffer ``data`` match index row ``row``.

        ``what()`` names the damaged chunk as (file, description), built only on a mismatch.
        """
        pair = self.compare(row, data, start, nbytes)
        if pair is not None and pair[0] != pair[1]:
            where, desc = what()
            raise mismatch(where, desc, *pair)
