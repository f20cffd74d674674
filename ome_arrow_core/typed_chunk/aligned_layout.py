"""The aligned index layout on disk: row group g of an index table holds the chunk rows of the images of images
row group g, marked by the key ``ome_arrow_core.index_groups = images`` in the index file's footer.

:func:`write_aligned_index` writes it (or, when the rows do not allow it, one unmarked table);
:func:`aligned_starts` tells from the footers alone whether every part of a dataset is so written. Tables without
the key (older datasets, ome-arrow 0.1.0, rewritten by other tools) are read whole, as before.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np
import pyarrow as pa

from .. import parquet_lite as pq
from ..arrow_numpy import int_values
from ..uniques import unique_first
from .bounds import dictionary_codes
from .footers import footer, footers_of
from .image_groups import ImageRows
from .spec import FILE_METADATA
from .tables import Part

__all__ = ["INDEX_GROUPS_KEY", "ALIGNED", "write_aligned_index", "aligned_starts"]

#: Footer key of an aligned index table, and its value.
INDEX_GROUPS_KEY: Final[bytes] = b"ome_arrow_core.index_groups"
ALIGNED: Final[bytes] = b"images"


def write_aligned_index(
    index: pa.Table, image_ids: Sequence[str], per_group: int | Sequence[int], out: Path, *, atomic: bool = True
) -> None:
    """Write ``index`` to ``out`` with row group g holding the chunk rows of the images of images row group g
    (``image_ids`` in images-table order; ``index`` rows in that order, as the packer writes them). ``per_group``
    is the images table's row-group size, or the image count of each of its row groups.

    An index whose rows are not in image order, an image without chunks, or a chunk row group holding chunks of
    images of two groups (readers load each group's chunk row groups apart), is written as one table, unmarked.
    ``atomic=False`` writes ``out`` in place (a file in a directory no reader sees yet).
    """
    at = {v: i for i, v in enumerate(image_ids)}
    owner = np.fromiter(
        (at.get(str(v), -1) for v in index.column("image_id").to_pylist()), dtype=np.int64, count=index.num_rows
    )
    if isinstance(per_group, int):
        sizes = np.full(-(-len(image_ids) // per_group), per_group, dtype=np.int64)
        sizes[-1:] = len(image_ids) - per_group * (len(sizes) - 1)
    else:
        sizes = np.asarray(per_group, dtype=np.int64)
    group_of = np.repeat(np.arange(len(sizes)), sizes)  # images-table row -> its row group
    aligned = bool(len(owner) > 0 and (owner >= 0).all() and int(sizes.sum()) == len(image_ids))
    if aligned:
        owner_group = group_of[owner]
        bounds = np.searchsorted(owner_group, np.arange(len(sizes) + 1), side="left")
        aligned = bool((np.diff(owner) >= 0).all() and (np.diff(bounds) > 0).all())
    if aligned and "row_group_id" in index.column_names:
        codes = dictionary_codes(index.column("fragment_path"), "")[1].astype(np.int64)
        chunk_group = codes << 32 | int_values(index.column("row_group_id"), -1).astype(np.int64)
        first = unique_first(chunk_group)[1]
        last = unique_first(chunk_group[::-1])[1]
        aligned = bool((owner_group[first] == owner_group[len(owner) - 1 - last]).all())
    from ..safe_write import atomic_path  # writers only: a read never loads them
    from .table_files import table_sink

    with atomic_path(out) if atomic else contextlib.nullcontext(out) as tmp, table_sink(tmp) as sink:
        if not aligned:
            pq.write_table(index.replace_schema_metadata(FILE_METADATA), sink, write_page_checksum=True)
            return
        table = index.replace_schema_metadata({**FILE_METADATA, INDEX_GROUPS_KEY: ALIGNED})
        # statistics of chunk_id only (max_chunk_id reads them): a footer of N/per_group groups stays small
        with pq.ParquetWriter(sink, table.schema, write_page_checksum=True, write_statistics=["chunk_id"]) as w:
            for a, b in itertools.pairwise(bounds.tolist()):
                w.write_table(table.slice(a, b - a), row_group_size=b - a)


def aligned_starts(root: Path, parts: Sequence[Part], images: ImageRows) -> list[np.ndarray] | None:
    """The first row of each row group of every part's index table (then its row count) when all of them are
    aligned with their images tables, else None (read whole, with every check of the whole index). Footers only.

    An index marked aligned whose row groups do not pair one to one with its images table's (another tool
    rewrote it and kept the key) is read whole; so is a single image's (one row group: the same read, and the
    aligned index's modules spared). A plate's index of one row group is not: loaded lazily, it is never read for
    an image read by its pixel locator, and the plate's first image costs what it costs at any size (reading it
    whole cost 1,000 images of 64x64 +8.8 MiB of RSS, pyarrow's memory pool and I/O threads started by the read).
    """
    out = []
    by_group = footers_of(root, [p.index for p in parts], images.guard)
    for k, part in enumerate(parts):
        if not (root / part.index).exists():
            return None
        known = by_group[k]
        if known is not None:  # its footer is never parsed whole
            metadata, counts = known.metadata, known.group_rows
        else:
            md = footer(root, part.index)
            metadata = md.metadata
            counts = np.asarray([md.row_group(g).num_rows for g in range(md.num_row_groups)], dtype=np.int64)
        if (metadata or {}).get(INDEX_GROUPS_KEY) != ALIGNED:
            return None
        if len(counts) != len(images.starts[k]) - 1:  # rewritten by a tool that kept the key: read whole
            return None
        out.append(np.concatenate([[0], np.cumsum(np.asarray(counts, dtype=np.int64))]).astype(np.int64))
    if len(images) <= 1 and all(len(s) <= 2 for s in out):  # one image: reading its index whole is the same read
        return None
    return out
