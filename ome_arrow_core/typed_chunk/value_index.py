"""Where each value of a plate's string columns lies: a mapping filter (``{"well": "B03"}``) reads the rows of the
values it names, not the images table's footer and every row group.

At a million images with the wells interleaved, no row group's statistics rule a well out: a filter parsed the
images table's footer whole (2.7 MB, ~25 ms) and decoded every row group's ``well``. Writers now record, per images
table, the rows of each value of its string columns beyond the dataset's own and its pixel locators (a plate's
``well``, ``plate``, ``treatment``; at most :data:`MAX_VALUES` distinct values a column), in a file beside it,
``_ome_arrow_values.<table stem>.<table digest>.bin``::

    b"OAVI" | header length (uint32 LE) | header (JSON) | row numbers (int32 LE, ascending within each value)

The header: ``{"rows": R, "columns": {name: {"values": [...], "at": [...], "counts": [...], "sums": "<16 hex
digits a value>"}}}``; value ``k``'s rows are ``counts[k]`` int32 from byte ``at[k]`` of the row numbers, their
XXH3-64 ``sums[k]``. The manifest records, under ``ome_arrow_core.value_index``::

    "value_index": {"images.parquet": {"file": "_ome_arrow_values.images.<digest>.bin", "table": "<the table's digest>",
                                       "rows": R, "size": S, "header": H, "head": "<XXH3-64 of the header>"}}

A filter uses an entry only while ``table`` is the one digest ``tables`` records for that table (a rewritten
table, a compaction's swap, an older write: the statistics path, as before) and its file exists; with checks on
it hashes the header and each value's rows it reads, against the digests the manifest chains to, and refuses
(ChecksumError) a file of another size or a mismatch; rows that are not ascending, or past the table's rows, are
a damaged file. A filter then reads O(its result): the images it keeps are checked as ever when they are read.
Readers that do not know the key (ome-arrow 0.1.0, older ome-arrow-core) ignore it and the file.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np

from ..boundary import open_regular
from ..checksums import ALGORITHM, ENV, FIX, hex_digest, verify_enabled
from ..errors import ChecksumError, DamagedFileError
from .spec import IMAGES_SCHEMA, LOCATOR_COLUMNS, MANIFEST
from .table_sums import recorded

__all__ = ["VALUES_KEY", "VALUES_FILE", "MAX_VALUES", "build_values", "record_values", "value_rows", "check_values"]

#: Key of the value index records in the manifest's ``ome_arrow_core`` section.
VALUES_KEY: Final[str] = "value_index"
#: Columns with more distinct values than this (ids, names) are not indexed.
MAX_VALUES: Final[int] = 4096
_MAGIC: Final[bytes] = b"OAVI"
#: The files' names begin so (``_ome_arrow*``: a dataset's own files, replaced with it by an overwrite).
_PREFIX: Final[str] = "_ome_arrow_values."
#: Exactly the names :func:`_file_name` gives (an images table's stem, its 16-hex-digit digest): what cleanup may
#: remove when the manifest names it no longer.
VALUES_FILE: Final[re.Pattern[str]] = re.compile(r"^_ome_arrow_values\.images(?:-\d{5,})?\.[0-9a-f]{16}\.bin$")


def _file_name(table: str, digest: str) -> str:
    return f"{_PREFIX}{table.removesuffix('.parquet')}.{digest}.bin"


def build_values(table_file: Path, digest: str, out_dir: Path) -> dict[str, Any] | None:
    """Write the value index of images table ``table_file`` (whole-file ``digest``) into ``out_dir`` (atomically);
    its manifest entry, or None when no column is indexed."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from ..safe_write import atomic_path

    pf = pq.ParquetFile(table_file)
    rows = int(pf.metadata.num_rows)
    own = {*IMAGES_SCHEMA.names, *LOCATOR_COLUMNS}  # the dataset's own columns (and its pixel locators)
    names = [f.name for f in pf.schema_arrow if f.name not in own and pa.types.is_string(f.type)]
    if not names or rows >= 2**31:
        return None
    columns: dict[str, Any] = {}
    blobs: list[bytes] = []
    at = 0
    for name in names:
        encoded = pf.read(columns=[name]).column(name).combine_chunks().dictionary_encode()
        values = encoded.dictionary.to_pylist()
        if len(values) > MAX_VALUES:
            continue
        codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        order = np.argsort(codes, kind="stable").astype("<i4")
        counts = np.bincount(codes[codes >= 0], minlength=len(values))
        start = int((codes < 0).sum())
        entry: dict[str, Any] = {"values": values, "at": [], "counts": counts.tolist(), "sums": ""}
        for count in counts.tolist():
            blob = order[start : start + count].tobytes()
            entry["at"].append(at)
            entry["sums"] += hex_digest(blob)
            blobs.append(blob)
            at += len(blob)
            start += count
        columns[name] = entry
    if not columns:
        return None
    header = json.dumps({"rows": rows, "columns": columns}, separators=(",", ":")).encode()
    name = _file_name(table_file.name, digest)
    with atomic_path(out_dir / name) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(_MAGIC + len(header).to_bytes(4, "little") + header)
            for blob in blobs:
                fh.write(blob)
    size = 8 + len(header) + at
    return {
        "file": name,
        "table": digest,
        "rows": rows,
        "size": size,
        "header": len(header),
        "head": hex_digest(header),
    }


def record_values(
    root: Path, tables: Mapping[str, list[str]], keep: Any = None, out_dir: Path | None = None
) -> dict[str, dict[str, Any]]:
    """The ``value_index`` entries of the images tables ``tables`` records (the manifest's ``tables``, just
    computed): kept from ``keep`` (the previous manifest's) where the table and its file are unchanged, built
    otherwise (into ``out_dir``, default ``root``; the tables read from there when they are there)."""
    out: dict[str, dict[str, Any]] = {}
    kept = keep if isinstance(keep, Mapping) else {}
    where = out_dir or root
    for name, digests in tables.items():
        if not name.startswith("images") or len(digests) != 1:
            continue
        old = kept.get(name)
        if isinstance(old, Mapping) and old.get("table") == digests[0] and (root / str(old.get("file"))).is_file():
            out[name] = dict(old)
            continue
        file = where / name if (where / name).is_file() else root / name
        if file.is_file():
            found = build_values(file, digests[0], where)
            if found is not None:
                out[name] = found
    return out


def _entry(root: Path, manifest: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """Table ``name``'s value index entry when it describes the table the manifest records (None otherwise);
    DamagedFileError when malformed."""
    ours = manifest.get("ome_arrow_core") or {}
    listed = ours.get(VALUES_KEY) if isinstance(ours, Mapping) else None
    if not isinstance(listed, Mapping) or name not in listed:
        return None
    entry = listed[name]
    keys = {"file": str, "table": str, "rows": int, "size": int, "header": int, "head": str}
    if not isinstance(entry, Mapping) or not all(type(entry.get(k)) is t for k, t in keys.items()):
        raise DamagedFileError(
            f"{root} [{MANIFEST}]: ome_arrow_core.{VALUES_KEY}[{name!r}] is {str(entry)[:300]!r}; expected "
            f"{{file, table, rows, size, header, head}}: the manifest is damaged. Fix: {FIX}"
        )
    file = str(entry["file"])
    if "/" in file or os.sep in file or not file.startswith(_PREFIX) or file != os.path.basename(file):
        raise DamagedFileError(f"{root} [{MANIFEST}]: ome_arrow_core.{VALUES_KEY}[{name!r}] names {file!r}")
    return dict(entry) if recorded(root, manifest).get(name) == [entry["table"]] else None


def _refuse(root: Path, file: str, what: str) -> ChecksumError:
    return ChecksumError(
        f"{root} [{file}]: {what} do not match the checksum the manifest records ({ALGORITHM}); the value index is "
        f"damaged (or the manifest lies) and was not used. Fix: {FIX}. To read it anyway pass verify=False or set "
        f"{ENV}=0"
    )


def value_rows(
    root: Path, manifest: Mapping[str, Any], name: str, spec: Mapping[str, Any], verify: bool | None = None
) -> tuple[np.ndarray, int] | None:
    """(rows of images table ``name`` whose columns match ``spec``, ascending; the table's rows) from its value
    index, or None when it cannot answer (no usable entry or file, a column it does not index, a value that is not
    text: the caller filters as before). Each piece read is checked against its recorded digest (checks on)."""
    entry = _entry(root, manifest, name)
    wanted: dict[str, list[Any]] = {}
    for column, value in spec.items():
        values = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
        if not all(isinstance(v, str) for v in values):
            return None
        wanted[str(column)] = values
    if entry is None or not wanted:
        return None
    checked = verify_enabled(verify)
    try:
        fd = open_regular(root, entry["file"])  # a FIFO refused, not waited on
    except FileNotFoundError:
        return None
    try:
        if checked and os.fstat(fd).st_size != entry["size"]:
            raise _refuse(root, entry["file"], f"its {os.fstat(fd).st_size} bytes (recorded {entry['size']})")
        head = os.pread(fd, 8 + entry["header"], 0)
        header = head[8:]
        if checked and (head[:4] != _MAGIC or hex_digest(header) != entry["head"]):
            raise _refuse(root, entry["file"], "its header's bytes")
        columns = _header(root, entry, header)
        if not all(c in columns for c in wanted):
            return None
        found: np.ndarray | None = None
        for column, values in wanted.items():
            listed = columns[column]
            picks = [listed["values"].index(v) for v in dict.fromkeys(values) if v in listed["values"]]
            parts = [_rows_of(root, fd, entry, listed, k, checked) for k in picks]
            rows = np.sort(np.concatenate(parts)) if len(parts) > 1 else parts[0] if parts else np.zeros(0, np.int64)
            found = rows if found is None else np.intersect1d(found, rows, assume_unique=True)
    finally:
        os.close(fd)
    assert found is not None
    return found, int(entry["rows"])


def _header(root: Path, entry: Mapping[str, Any], header: bytes) -> dict[str, Any]:
    """The parsed header; DamagedFileError when it is not what :func:`build_values` writes."""
    blob = int(entry["size"]) - 8 - int(entry["header"])
    try:
        parsed = json.loads(header.decode())
        columns = parsed["columns"]
        ok = parsed["rows"] == entry["rows"] and isinstance(columns, dict)
        for listed in columns.values():
            n = len(listed["values"])
            at, counts = np.asarray(listed["at"], dtype=np.int64), np.asarray(listed["counts"], dtype=np.int64)
            ok = ok and len(at) == len(counts) == n and len(listed["sums"]) == 16 * n
            ok = ok and bool((counts >= 0).all() and (at >= 0).all() and (at + 4 * counts <= blob).all())
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
        ok = False
    if not ok:
        raise DamagedFileError(f"{root} [{entry['file']}]: its header is not a value index's; the file is damaged")
    out: dict[str, Any] = columns
    return out


def _rows_of(root: Path, fd: int, entry: Mapping[str, Any], listed: Mapping[str, Any], k: int, checked: bool) -> Any:
    """The rows of value ``k`` of a column's header entry ``listed``, checked (digest, ascending, in the table)."""
    count = int(listed["counts"][k])
    raw = os.pread(fd, 4 * count, 8 + int(entry["header"]) + int(listed["at"][k]))
    if checked and hex_digest(raw) != listed["sums"][16 * k : 16 * k + 16]:
        raise _refuse(root, entry["file"], f"the rows of value {listed['values'][k]!r}")
    rows = np.frombuffer(raw, dtype="<i4").astype(np.int64)
    if len(rows) != count or (count and (rows[0] < 0 or rows[-1] >= int(entry["rows"]) or (np.diff(rows) <= 0).any())):
        raise DamagedFileError(f"{root} [{entry['file']}]: the rows of value {listed['values'][k]!r} are damaged")
    return rows


def check_values(root: Path, manifest: Mapping[str, Any]) -> list[str]:
    """What is wrong with the dataset's value index files (``verify``): each used entry's file read whole (header
    and every value's rows against their digests) and compared with the table's own values; [] when all is well."""
    import pyarrow.parquet as pq

    problems: list[str] = []
    ours = manifest.get("ome_arrow_core") or {}
    listed = ours.get(VALUES_KEY) if isinstance(ours, Mapping) else None
    for name in listed if isinstance(listed, Mapping) else {}:
        try:
            entry = _entry(root, manifest, name)
            if entry is None:
                continue
            if not (root / entry["file"]).is_file():
                problems.append(f"{root / entry['file']}: the value index the manifest lists is missing")
                continue
            columns = _header(root, entry, (root / entry["file"]).read_bytes()[8 : 8 + entry["header"]])
            table = pq.read_table(root / name, columns=list(columns))
            for column, header in columns.items():
                got = np.asarray(table.column(column).to_pylist(), dtype=object)
                if set(header["values"]) != {v for v in got.tolist() if v is not None}:
                    problems.append(f"{root / entry['file']}: the values of {column} are not the table's")
                    continue
                for value in header["values"]:
                    answer = value_rows(root, manifest, name, {column: value}, True)
                    if answer is None or not np.array_equal(answer[0], np.flatnonzero(got == value)):
                        problems.append(
                            f"{root / entry['file']}: the rows of {column} == {value!r} are not the table's"
                        )
                        break
        except (ChecksumError, DamagedFileError, OSError) as exc:
            problems.append(str(exc))
    return problems
