"""A mapping filter (``{"well": "A01", "site": [1, 2]}``) on a chunk dataset: the columns it names, streamed.

The images tables' footers are checked against the manifest's digests first. Row groups whose statistics (min,
max, null count) rule out a term are skipped, and those whose statistics say every row matches (min == max among
the wanted values, no null: a plate written well by well, ``{"well": "B03"}``) are kept by their row count; both
without being read. The statistics decide only where the footer was checked (or checks are off). The rest are
checked against their digests (through one open file), then read a block of row groups at a time (up to
:data:`BATCH_ROWS` rows), only the named columns, strings dictionary-encoded: the block's dictionaries are unified,
each term is compared on that dictionary (a plate's 96 wells, not its million rows) and picked by the block's
codes, one numpy pass a block (not one a row group). What is held at once is one block and the kept row numbers,
whatever the number of images; the footer is parsed for the read and not kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..arrow_numpy import int_values, valid_mask
from ..boundary import reading, require_member
from ..errors import DamagedFileError
from ..typed_chunk import (
    Part,
    check_image_rows,
    check_table_footers,
    check_table_groups,
    check_whole_tables,
    footer_statistics_trusted,
    table_footer,
    value_index_rows,
)
from .filter_nulls import term_values

__all__ = ["BATCH_ROWS", "mapping_rows", "arrow_values"]

#: Rows decoded at once (at most: a batch never spans row groups), and compared at once.
BATCH_ROWS: Final[int] = 1 << 16
#: Batches (row groups) compared at once, at most.
BLOCK_BATCHES: Final[int] = 256
#: Row groups in a row whose statistics rule nothing out, after which the rest are read without asking.
UNPRUNED: Final[int] = 64


def _indexed(
    path: Path, manifest: Mapping[str, Any], parts: Sequence[Part], spec: Mapping[str, Any], verify: bool | None
) -> np.ndarray | None:
    """The rows ``spec`` keeps, from the value index of every part's images table (see
    :mod:`~ome_arrow_core.typed_chunk.value_index`); None when one cannot answer (the footers then decide)."""
    kept, first = [], 0
    for part in parts:
        found = value_index_rows(path, manifest, part.images, spec, verify)
        if found is None:
            return None
        kept.append(found[0] + first)
        first += found[1]
    if first != manifest.get("image_count"):  # the tables (read as before) say what is wrong
        return None
    return np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)


def mapping_rows(
    path: Path, manifest: Mapping[str, Any], parts: Sequence[Part], spec: Mapping[str, Any], verify: bool | None
) -> np.ndarray | None:
    """Rows (numbered across ``parts``' images tables, ascending) of the dataset at ``path`` whose named columns
    match ``spec`` (a value: equal; a list, tuple, set, range or 1-d array: one of); a null, None or a column a table lacks (or holds
    as type null) matches nothing; None when a named column is in no table (the caller's whole table then says what
    is wrong). pyarrow errors (a value that cannot be cast to its column) propagate: the caller decides."""
    spec = {n: term_values(v, n) for n, v in spec.items()}  # None equals nothing (filter_nulls)
    indexed = _indexed(path, manifest, parts, spec, verify)
    if indexed is not None:  # the rows of the values named, from each table's value index: no footer parsed
        return indexed
    check_table_footers(path, manifest, [p.images for p in parts], verify)  # before pyarrow parses any (statistics too)
    count = manifest.get("image_count")
    if not isinstance(count, int):  # no count to hold the tables to: the footers of the index decide (parsed)
        check_image_rows(path, parts, lambda name: table_footer(path, name).num_rows)
    kept: list[np.ndarray] = []
    first, seen = 0, set()
    for part in parts:
        file = require_member(path, part.images)
        with reading(path, part.images, "reading the images table's footer"):
            md = pq.read_metadata(file)  # parsed for this read only (a million images: ~30 MiB, not kept)
            schema = md.schema.to_arrow_schema()
        seen.update(schema.names)
        if not all(str(n) in schema.names for n in spec) or any(  # a column the table lacks, or of type null
            pa.types.is_null(schema.field(str(n)).type) for n in spec
        ):  # (all null): nothing matches
            first += md.num_rows
            continue
        for name, values in spec.items():  # a value its column cannot hold raises here, before any read
            if values:
                arrow_values(values).cast(_plain(schema.field(str(name)).type))
        columns = [str(n) for n in spec]
        strings = [n for n in columns if pa.types.is_string(schema.field(n).type)]
        plan = _plan(md, spec) if footer_statistics_trusted(path, manifest, part.images, verify) else None
        if plan is None:  # every row group decoded: every one checked first
            check_whole_tables(path, manifest, [part.images], verify)
            plan = [_Run(0, md.num_rows, None, False)]
        else:  # those decoded (the others are decided by the statistics of the footer checked above)
            check_table_groups(path, manifest, part.images, [g for r in plan if r.groups for g in r.groups], verify)
        with reading(path, part.images, "filtering the images table"):
            pf = pq.ParquetFile(file, metadata=md, read_dictionary=strings or None)
            for run in plan:
                if run.whole:  # every row of these groups matches: kept by count, not decoded
                    kept.append(np.arange(first + run.start, first + run.stop, dtype=np.int64))
                    continue
                at = first + run.start
                block: list[pa.RecordBatch] = []
                for batch in pf.iter_batches(
                    batch_size=BATCH_ROWS, row_groups=run.groups, columns=columns, use_threads=False
                ):
                    block.append(batch)
                    if sum(b.num_rows for b in block) >= BATCH_ROWS or len(block) >= BLOCK_BATCHES:
                        at = _keep(block, spec, at, kept)
                _keep(block, spec, at, kept)
            first += md.num_rows
    if not all(str(n) in seen for n in spec):
        return None
    if isinstance(count, int) and first != count:
        raise DamagedFileError(
            f"{path}: its images tables hold {first} images, the manifest records {count}; the dataset is damaged "
            "(or the manifest lies): restore it from a backup or rewrite it"
        )
    return np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)


class _Run(NamedTuple):
    """Consecutive row groups of one table, rows ``start`` to ``stop``: to read (``groups``; None: all of the
    table), or kept whole (``whole``: their statistics say every row matches)."""

    start: int
    stop: int
    groups: list[int] | None
    whole: bool


def _plan(md: pq.FileMetaData, spec: Mapping[str, Any]) -> list[_Run] | None:
    """The runs of row groups to read or to keep whole, in order, leaving out those whose statistics rule out a
    match of some term of ``spec``; None when the statistics decide nothing (every group read). Asking stops after
    :data:`UNPRUNED` row groups in a row must be read (a column not sorted: its statistics decide nothing, and each
    costs a little to ask)."""
    at = {md.schema.column(k).path: k for k in range(md.num_columns)}
    states: list[int] = []
    bounds = [0]  # the first row of each row group asked, and the row after it
    streak, g = 0, 0
    while g < md.num_row_groups and streak < UNPRUNED:
        group = md.row_group(g)
        rows = group.num_rows
        state = _state([(group.column(at[str(n)]).statistics, v) for n, v in spec.items()], rows)
        states.append(state)
        bounds.append(bounds[-1] + rows)
        streak = streak + 1 if state == _READ else 0
        g += 1
    if all(s == _READ for s in states):
        return None
    runs: list[_Run] = []
    for k, state in enumerate(states):
        if state == _SKIP:
            continue
        whole = state == _WHOLE
        last = runs[-1] if runs else None
        if last is not None and last.stop == bounds[k] and last.whole == whole:
            runs[-1] = _Run(last.start, bounds[k + 1], None if whole else [*(last.groups or []), k], whole)
        else:
            runs.append(_Run(bounds[k], bounds[k + 1], None if whole else [k], whole))
    if g < md.num_row_groups:  # not asked: read
        runs.append(_Run(bounds[g], md.num_rows, list(range(g, md.num_row_groups)), False))
    return runs


#: What the statistics of a row group say: no row matches, every row does, or it must be read.
_SKIP, _WHOLE, _READ = 0, 1, 2


def _state(terms: list[tuple[Any, Any]], rows: int) -> int:
    """:data:`_SKIP`, :data:`_WHOLE` or :data:`_READ` for a row group of ``rows`` rows whose named columns have
    statistics ``terms[k][0]``, each term wanting ``terms[k][1]``."""
    whole = True
    for stats, value in terms:
        if not _may_hold(stats, rows, value):
            return _SKIP
        whole = whole and _all_match(stats, rows, value)
    return _WHOLE if whole else _READ


def _all_match(stats: Any, rows: int, value: Any) -> bool:
    """True when statistics ``stats`` of a row group of ``rows`` rows say every row equals ``value`` (one of a
    list): no null, ``rows`` values, min == max (an int or a string) among the wanted values."""
    if stats is None or not (stats.has_min_max and stats.has_null_count):
        return False
    if stats.null_count != 0 or stats.num_values != rows:
        return False
    lo, hi = stats.min, stats.max
    if type(lo) is not type(hi) or type(lo) not in (int, str) or lo != hi:
        return False
    values = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
    return any(type(v) is type(lo) and v == lo for v in values)


def _may_hold(stats: Any, rows: int, value: Any) -> bool:
    """False when statistics ``stats`` of a row group of ``rows`` rows rule out ``value`` (one of a list) there: the
    column is all null, or every value, an int or a string, lies outside its [min, max]; True otherwise."""
    if stats is None:
        return True
    if rows and stats.has_null_count and stats.null_count == rows:  # all null: a null matches nothing
        return False
    if not stats.has_min_max:
        return True
    lo, hi = stats.min, stats.max
    values = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
    for v in values:
        if v is None:  # matches nothing
            continue
        if type(v) is type(lo) is type(hi) and type(v) in (int, str):  # (never a bool, a float or a date)
            if lo <= v <= hi:
                return True
            continue
        return True
    return False


def _keep(block: list[pa.RecordBatch], spec: Mapping[str, Any], first: int, kept: list[np.ndarray]) -> int:
    """Append to ``kept`` the rows (numbered from ``first``) of the batches of ``block`` that ``spec`` keeps, compared
    at once; empty ``block``; the row after them."""
    if not block:
        return first
    rows = sum(b.num_rows for b in block)
    keep = np.ones(rows, dtype=bool)
    for name, value in spec.items():
        keep &= _term(_one_array([b.column(str(name)) for b in block]), value)
    kept.append(first + np.nonzero(keep)[0])
    block.clear()
    return int(first + rows)


def _one_array(pieces: list[pa.Array]) -> pa.Array:
    """``pieces`` (of one type) as one array; dictionary arrays on one dictionary (unified: a plate's row groups
    repeat their 96 wells), so that a term is compared on that dictionary once."""
    if len(pieces) == 1:
        return pieces[0]
    column = pa.chunked_array(pieces, type=pieces[0].type)
    if pa.types.is_dictionary(column.type):
        column = column.unify_dictionaries()
    return column.combine_chunks()


def _term(column: pa.Array, value: Any) -> np.ndarray:
    """Where ``column`` equals ``value`` (is one of it, for a list, tuple or set); a dictionary array compared on
    its dictionary and picked by its codes."""
    if pa.types.is_dictionary(column.type):
        hits = _term(column.dictionary, value)
        out: np.ndarray = np.zeros(len(column), dtype=bool)
        if len(column):  # (to_numpy of the codes would import pandas)
            codes = int_values(column.indices)
            valid = valid_mask(column)
            out[valid] = hits[codes[valid]]
        return out
    values = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
    if not values:
        return np.zeros(len(column), dtype=bool)
    if pa.types.is_string(column.type) and len(column) <= 4096 and all(isinstance(v, str) for v in values):
        wanted = set(values)  # a dictionary: a few Python strings (a plate's row groups repeat them)
        return np.array([v in wanted for v in column.to_pylist()], dtype=bool)
    target = arrow_values(values).cast(column.type)  # a value the column cannot hold raises (pyarrow's error)
    if pa.types.is_integer(column.type):
        found: np.ndarray = np.isin(int_values(column), int_values(target)) & valid_mask(column)
        return found
    import pyarrow.compute as pc

    mask = pc.is_in(column, value_set=target)
    return np.asarray(mask.fill_null(False).to_pylist(), dtype=bool)


def _plain(kind: pa.DataType) -> pa.DataType:
    """The value type of a dictionary type, else ``kind``."""
    return kind.value_type if pa.types.is_dictionary(kind) else kind


def arrow_values(values: list[Any]) -> pa.Array:
    """``values`` as an Arrow array; strings, ints and floats without ``pa.array`` (it imports pandas: ~0.4 s)."""
    if values and all(isinstance(v, str) for v in values):
        data = [v.encode() for v in values]
        offsets = np.concatenate([[0], np.cumsum([len(d) for d in data])]).astype(np.int32)
        return pa.Array.from_buffers(
            pa.string(), len(data), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))]
        )
    for kind, numpy_type, arrow_type in ((int, np.int64, pa.int64()), (float, np.float64, pa.float64())):
        if values and all(type(v) is kind for v in values):
            return pa.Array.from_buffers(arrow_type, len(values), [None, pa.py_buffer(np.asarray(values, numpy_type))])
    return pa.array(values)
