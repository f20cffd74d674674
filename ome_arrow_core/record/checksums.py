"""Checksums of struct-record files: one per plane, in the Parquet file's key-value metadata.

A record file ome-arrow-core writes (``layout="record"``) holds under the key
``ome_arrow_core.checksums`` a JSON object ``{"algorithm": "xxh3_64", "column": NAME,
"rows": [[plane checksums of row 0], ...]}``; each checksum covers the stored bytes of one
plane's ``pixels`` values. Readers that do not know the key (ome-arrow 0.1.0) ignore it.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from typing import Any, Final

import pyarrow as pa

from ..arrow_numpy import int_values
from ..checksums import ALGORITHM, checker, mismatch
from ..errors import ChecksumError, DamagedFileError

__all__ = ["KEY", "plane_checksums", "checksum_metadata", "stored_checksums", "verify_record"]

KEY: Final[bytes] = b"ome_arrow_core.checksums"


def _planes(records: pa.StructArray, row: int) -> pa.StructArray | None:
    """The plane items of record ``row`` (None when it stores chunks, or no planes)."""
    if records.type.get_field_index("planes") < 0:
        return None
    lists = records.field("planes")
    if not lists[row].is_valid:  # a scalar's validity: is_valid() would load the compute kernels
        return None
    start, stop = lists.offsets[row].as_py(), lists.offsets[row + 1].as_py()
    return lists.values.slice(start, stop - start) if stop > start else None


def plane_checksums(records: pa.StructArray, row: int, algorithm: str | None = None, where: str = "") -> list[int]:
    """The checksum of each plane's stored ``pixels`` bytes of record ``row`` (no copy), in stored order."""
    planes = _planes(records, row)
    if planes is None:
        return []
    fn = checker(algorithm or ALGORITHM, where)
    lists = planes.field("pixels")
    values = lists.values
    width = values.type.bit_width // 8
    data = values.buffers()[1]
    offsets = int_values(lists.offsets).tolist()  # to_numpy would import pandas
    base = values.offset
    view = memoryview(data)
    return [fn(view[(base + a) * width : (base + b) * width]) for a, b in itertools.pairwise(offsets)]


def checksum_metadata(column: str, rows: list[list[int]], dtypes: list[str] | None = None) -> dict[bytes, bytes]:
    """The key-value metadata entry recording ``rows`` (each row's plane checksums) of ``column``, and
    the dtype each row's pixels were written as (``dtypes``: bytes read as another dtype are other pixels)."""
    doc: dict[str, Any] = {"algorithm": ALGORITHM, "column": column, "rows": rows}
    if dtypes is not None:
        doc["dtypes"] = dtypes
    return {KEY: json.dumps(doc).encode()}


def stored_dtype(metadata: Mapping[bytes, bytes] | None, column: str, row: int) -> str | None:
    """The dtype row ``row`` of ``column`` was written as (None when the file does not say)."""
    raw = (metadata or {}).get(KEY)
    try:
        doc: Any = json.loads(raw) if raw is not None else {}
        if doc.get("column") != column or row >= len(doc.get("dtypes") or []):
            return None
        return str(doc["dtypes"][row])
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def stored_checksums(
    metadata: Mapping[bytes, bytes] | None, column: str, row: int, where: str
) -> tuple[str, list[int]] | None:
    """(algorithm, plane checksums) stored for ``row`` of ``column`` (None: the file stores none for it)."""
    raw = (metadata or {}).get(KEY)
    if raw is None:
        return None
    try:
        doc: Any = json.loads(raw)
        if doc.get("column") != column or row >= len(doc["rows"]):
            return None
        sums = [int(v) for v in doc["rows"][row]]
        return str(doc["algorithm"]), sums
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise DamagedFileError(
            f"{where}: the {KEY.decode()} metadata is damaged ({exc}); read with verify=False to skip checksums"
        ) from None


def verify_record(records: pa.StructArray, row: int, stored: tuple[str, list[int]], where: str, file_row: int) -> None:
    """Raise ChecksumError unless the planes of record ``row`` match ``stored`` (see :func:`stored_checksums`)."""
    algorithm, expected = stored
    actual = plane_checksums(records, row, algorithm, where)
    if len(actual) != len(expected):
        raise ChecksumError(
            f"{where}: row {file_row} holds {len(actual)} planes; {len(expected)} were written "
            "with checksums; the file is damaged"
        )
    for i, (a, e) in enumerate(zip(actual, expected)):
        if a != e:
            raise mismatch(where, f"plane {i} of row {file_row}", e, a)
