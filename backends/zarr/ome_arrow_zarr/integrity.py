"""Chunk checksums of the OME-Zarr stores we write: recorded as chunks are stored, checked as they are read.

Our writer records an XXH3-64 checksum of every stored chunk (its bytes as they lie in the
store: compressed, if compressed) and writes them into each level array's attributes, under
``ome_arrow.chunk_checksums``: the algorithm, the array's shape, chunk shape and dtype, and
the NGFF axis names, and the digests (little-endian uint64, base64) in C order of the chunk grid. The group's
``ome_arrow.chunk_checksums`` names the algorithm: a store that says it has checksums and an
array without them is damaged.

On read (unless ``verify=False`` or ``OME_ARROW_CORE_VERIFY=0``) every chunk fetched is checked;
whatever ``verify`` says, a chunk the checksums list that is absent is an error (Zarr would
read it as the fill value), and an array whose metadata disagrees with the recorded shape,
chunks or dtype is damaged. Stores other writers made have no checksums: their missing
chunks read as the fill value (or fail with ``missing="error"``).
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from ome_arrow_core.plugin_api import CHECKSUM_ALGORITHM, ChecksumError, DamagedFileError, checksums_of, to_hex

if TYPE_CHECKING:
    from zarr.core.buffer import Buffer

__all__ = ["KEY", "ChunkManifest", "checksum_attrs", "digest", "recording_store"]

#: Where the checksums sit, inside our attribute namespace (``ome_arrow``).
KEY: Final[str] = "chunk_checksums"
#: Most chunks one array may list (a lying digest blob is refused before it is decoded).
_MAX_CHUNKS: Final[int] = 1 << 26


def digest(data: Any) -> int:
    """The checksum of a buffer's bytes."""
    arr = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    return int(checksums_of(arr, np.array([0, arr.size], dtype=np.int64))[0])


def _cells(arr: Any) -> list[tuple[int, ...]]:
    grid = [-(-n // c) for n, c in zip(arr.shape, arr.chunks, strict=True)]
    return list(itertools.product(*(range(g) for g in grid)))


def recording_store(root: Path, digests: dict[str, int]) -> Any:
    """A writable local store of ``root`` recording the checksum of every chunk stored into ``digests``."""
    from zarr.storage import LocalStore, WrapperStore

    from .store import is_meta

    class RecordingStore(WrapperStore[LocalStore]):
        """Records chunk checksums as chunks are written."""

        def _with_store(self, store: LocalStore) -> RecordingStore:
            return RecordingStore(store)

        async def set(self, key: str, value: Buffer) -> None:
            if not is_meta(key):
                digests[key] = digest(value.as_numpy_array())
            await self._store.set(key, value)

    return RecordingStore(LocalStore(root))


def checksum_attrs(arr: Any, prefix: str, digests: Mapping[str, int], axes: str) -> dict[str, Any]:
    """The ``chunk_checksums`` attribute of array ``arr`` (at store path ``prefix``, NGFF ``axes`` names in
    order) from recorded ``digests``."""
    keys = [f"{prefix}/{arr.metadata.encode_chunk_key(cell)}" for cell in _cells(arr)]
    missing = [k for k in keys if k not in digests]
    if missing:  # pragma: no cover - every chunk is written (write_empty_chunks)
        raise DamagedFileError(f"chunks {missing[:3]} of {prefix} were not written; the store is incomplete")
    blob = np.array([digests[k] for k in keys], dtype="<u8").tobytes()
    return {
        "algorithm": CHECKSUM_ALGORITHM,
        "axes": axes,
        "shape": list(arr.shape),
        "chunks": list(arr.chunks),
        "dtype": str(np.dtype(arr.dtype)),
        "digests": base64.b64encode(blob).decode("ascii"),
    }


class ChunkManifest:
    """The chunks one opened array must hold and their checksums; checks each chunk the store returns."""

    def __init__(self, root: PurePath, verify: bool) -> None:
        self.root = root
        self.verify = verify
        self.expected: dict[str, int] = {}

    def load(self, arr: Any, prefix: str, entry: Any, here: str, axes: str) -> None:
        """Take the checksums ``entry`` of array ``arr`` at store path ``prefix`` (checked against its metadata,
        and ``axes``, the NGFF axis names the group declares)."""
        if not isinstance(entry, Mapping) or not isinstance(entry.get("digests"), str):
            raise DamagedFileError(
                f"{here}: the store was written with chunk checksums but this array's "
                f"ome_arrow.{KEY} is {type(entry).__name__}; its metadata was rewritten or lost"
            )
        if entry.get("algorithm") != CHECKSUM_ALGORITHM:
            raise DamagedFileError(
                f"{here}: chunk checksums use {entry.get('algorithm')!r}; this version "
                f"checks {CHECKSUM_ALGORITHM!r}. Read with verify=False to skip the checks"
            )
        facts = {"axes": axes, "shape": list(arr.shape), "chunks": list(arr.chunks), "dtype": str(np.dtype(arr.dtype))}
        for name, have in facts.items():
            if entry.get(name) != have:
                raise DamagedFileError(
                    f"{here}: the array's metadata says {name} {have} but the store was "
                    f"written with {name} {entry.get(name)}; the metadata is damaged or edited"
                )
        cells = _cells(arr)
        blob = entry["digests"]
        if len(cells) > _MAX_CHUNKS or len(blob) != 4 * -(-8 * len(cells) // 3):
            raise DamagedFileError(
                f"{here}: ome_arrow.{KEY} lists the wrong number of chunks "
                f"(the array has {len(cells)}); its metadata is damaged"
            )
        try:
            sums = np.frombuffer(base64.b64decode(blob, validate=True), dtype="<u8")
        except ValueError as exc:
            raise DamagedFileError(f"{here}: ome_arrow.{KEY} digests are not base64 ({exc})") from exc
        for cell, s in zip(cells, sums.tolist(), strict=True):
            self.expected[f"{prefix}/{arr.metadata.encode_chunk_key(cell)}"] = s

    def check(self, key: str, buf: Buffer | None, whole: bool) -> None:
        """Raise unless chunk ``key``'s bytes ``buf`` (None: absent) are what the writer stored."""
        want = self.expected.get(key)
        if want is None:
            return
        if buf is None:
            raise DamagedFileError(
                f"{self.root} [{key}]: the chunk is missing, but the store's checksums list it "
                "(ome-arrow-core wrote it); the store is damaged. Missing chunks of stores we "
                "wrote are never read as the fill value; restore the store from a backup"
            )
        if not self.verify or not whole:
            return
        got = digest(buf.as_numpy_array())
        if got != want:
            raise ChecksumError(
                f"{self.root} [{key}]: the chunk's bytes do not match their checksum (stored "
                f"{to_hex(want)}, computed {to_hex(got)}); the store is damaged and its pixels are "
                "not served. Read with verify=False (or OME_ARROW_CORE_VERIFY=0) to skip the check"
            )
