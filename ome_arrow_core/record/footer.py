"""The Parquet footer of a remote file in one ranged read (two when it is larger than the first guess).

pyarrow reads a 64 KiB tail, then the whole footer again when it is larger; here the tail's
trailer gives the footer's length and only the missing front part is fetched.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import DamagedFileError

__all__ = ["remote_footer"]

_TAIL = 64 << 10
_MAGIC = b"PAR1"


def remote_footer(fh: Any, size: int, where: str) -> pq.FileMetaData:
    """The metadata of the ``size``-byte Parquet file open as ``fh`` (a pyarrow random-access file)."""
    if size < 12:
        raise DamagedFileError(
            f"{where}: {size} bytes is too short for a Parquet file; the file is damaged or truncated"
        )
    tail = fh.read_at(min(size, _TAIL), size - min(size, _TAIL))
    if tail[-4:] != _MAGIC:
        raise DamagedFileError(
            f"{where}: no Parquet magic bytes at the end; the file is damaged, truncated or not Parquet"
        )
    length = int.from_bytes(tail[-8:-4], "little") + 8
    if length + 4 > size:
        raise DamagedFileError(f"{where}: its footer claims {length} bytes of a {size}-byte file; the file is damaged")
    if length > len(tail):
        tail = fh.read_at(length - len(tail), size - length) + tail
    return pq.read_metadata(pa.BufferReader(_MAGIC + tail[-length:]))
