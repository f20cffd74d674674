"""Row counts a dataset's tables declare, checked against what its chunk files hold, before reading them.

A Parquet footer says how many rows a table has, and constant columns compress to almost
nothing: a few hundred KB can declare millions of rows, which would take gigabytes to read.
Every index row names one row of a chunks file and every image has at least one chunk, so,
from footers and the index's ``fragment_path`` column alone (read in batches): the index rows
are at most the rows of the chunk files they name (once per part, as a part's index names
only its own chunks), and the images are at most the index rows. Likewise an image's pixel
bytes are at most what the row groups of its chunks hold (:func:`held_bytes`, from footers).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from .. import parquet_lite as pq
from ..arrow_numpy import int_values
from ..boundary import reading, require_member
from ..errors import DamagedFileError
from .footers import footer_rows as table_rows
from .tables import BASE, Part

__all__ = ["check_table_rows", "check_image_rows", "check_image_count", "dictionary_codes", "held_bytes"]

#: Rows of ``fragment_path`` read at a time when counting the chunk rows an index names.
_BATCH = 1 << 16


def dictionary_codes(column: pa.ChunkedArray | pa.Array, null: str) -> tuple[list[str], np.ndarray]:
    """The distinct strings of a dictionary-encoded ``column`` (nulls read as ``null``) and each row's code.

    Numpy only (no pyarrow compute kernel: loading those costs ~50 MiB resident); a column
    that is not dictionary-encoded is encoded first.
    """
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    names: list[str] = []
    where: dict[str, int] = {}
    codes = []
    for chunk in chunks:
        if not isinstance(chunk, pa.DictionaryArray):
            chunk = chunk.dictionary_encode()
        local = np.array(
            [where.setdefault(str(v or null), len(where)) for v in chunk.dictionary.to_pylist()]
            + [where.setdefault(null, len(where))],
            dtype=np.int32,
        )
        codes.append(local[int_values(chunk.indices, len(local) - 1).astype(np.int64)])
    names = sorted(where, key=where.__getitem__)
    return names, (np.concatenate(codes) if codes else np.zeros(0, dtype=np.int32))


def _named_chunks(file: Path) -> Counter[str]:
    """How many rows of index table ``file`` name each chunks file (``fragment_path``; chunks.parquet if none)."""
    require_member(file.parent, file.name)
    with reading(file.parent, file.name, "reading the index table"):
        pf = pq.ParquetFile(file, read_dictionary=["fragment_path"])
        if "fragment_path" not in pf.schema_arrow.names:
            return Counter({"chunks.parquet": pf.metadata.num_rows})
        out: Counter[str] = Counter()
        for batch in pf.iter_batches(batch_size=_BATCH, columns=["fragment_path"], use_threads=False):
            names, codes = dictionary_codes(batch.column(0), "chunks.parquet")
            for name, n in zip(names, np.bincount(codes, minlength=len(names)).tolist()):
                if n:
                    out[name] += int(n)
        return out


def check_table_rows(root: Path, parts: Sequence[Part], fragment_rows: Callable[[str], int]) -> None:
    """Raise DamagedFileError when the tables of ``parts`` declare more rows than the chunk files can back.

    ``fragment_rows(name)`` is the number of chunk rows of chunks file ``name`` (from its
    footer). Reads footers and the index's ``fragment_path`` column, never the tables' rows.
    """
    named: Counter[str] = Counter()
    for part in parts:
        if (root / part.index).exists():
            named += _named_chunks(root / part.index)
    held = sum(fragment_rows(name) for name in named)
    if sum(named.values()) > held * len(parts):
        files = ", ".join(str(root / p.index) for p in parts)
        raise DamagedFileError(
            f"{files}: the index lists {sum(named.values())} chunks, but the chunk files it names "
            f"({', '.join(sorted(named))}) hold {held} rows; the index is damaged or lying. Restore it from a "
            "backup or rewrite the dataset"
        )
    check_image_rows(root, parts, fragment_rows)


def check_image_rows(root: Path, parts: Sequence[Part], fragment_rows: Callable[[str], int]) -> None:
    """Raise DamagedFileError when the images tables of ``parts`` list more images than their indexes have chunks.

    Footers only (chunks.parquet's, through ``fragment_rows``, for an ome-arrow 0.1.0 dataset
    without an index: its index is derived from that file, one row per chunk).
    """
    index_rows = 0
    for part in parts:
        file = root / part.index
        if file.exists():
            index_rows += table_rows(root, part.index)
        elif part == BASE:
            if not (root / "chunks.parquet").exists():
                raise DamagedFileError(
                    f"{root} has neither {BASE.index} nor chunks.parquet to derive it from; the "
                    "dataset is damaged: restore index.parquet from a backup"
                )
            index_rows += fragment_rows("chunks.parquet")
    images = sum(table_rows(root, p.images) for p in parts if (root / p.images).exists())
    check_image_count(root, parts, images, index_rows)


def check_image_count(root: Path, parts: Sequence[Part], images: int, index_rows: int) -> None:
    """Raise DamagedFileError when the images tables of ``parts`` list more ``images`` than their indexes have chunk
    rows (``index_rows``): every image has at least one."""
    if images > index_rows:
        files = ", ".join(str(root / p.images) for p in parts)
        raise DamagedFileError(
            f"{files}: the images table lists {images} images, but the index has {index_rows} chunk rows and "
            "every image has at least one; the images table is damaged or lying"
        )


def held_bytes(
    owner: np.ndarray,
    codes: np.ndarray,
    groups: np.ndarray,
    images: int,
    group_bytes: Callable[[int], np.ndarray | None],
) -> tuple[list[int], list[bool]]:
    """(held, known) of ``images`` images: the bytes that the distinct row groups of each image's chunks hold.

    Chunk k is image ``owner[k]``'s, in row group ``groups[k]`` of chunk file ``codes[k]``, whose
    row groups hold ``group_bytes(code)`` bytes each (None, or -1 for a group: unknown). An image
    with a chunk in a group of unknown size, or beyond its file's groups, is not ``known``.
    Plain Python: a batch's few chunks per image cost less so than numpy's calls.
    """
    held, known = [0] * images, [True] * images
    files: dict[int, np.ndarray | None] = {}
    for who, code, at in set(zip(owner.tolist(), codes.tolist(), groups.tolist())):  # chunks may share a group
        if code not in files:
            files[code] = group_bytes(code)
        sizes = files[code]
        size = int(sizes[at]) if sizes is not None and 0 <= at < len(sizes) else -1
        if size < 0:
            known[who] = False
        else:
            held[who] += size
    return held, known
