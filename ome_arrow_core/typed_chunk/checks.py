"""What a typed-chunk dataset's files say about each other, checked before pixels are handed out.

- Member names read from files (``fragment_path``, the manifest's ``appends`` and
  ``fragments``) are plain file names inside the dataset directory.
- An image's chunks cover it exactly once (:mod:`.coverage`); image ids are unique across
  all images tables, chunk ids across all index tables.
- Append tables on disk that the manifest does not list are refused, unless an
  ``.append-NNNNN.pending`` marker says a killed append left them (an append writes the
  marker first and removes it after committing the manifest) or their images are already
  in the listed tables (a compaction merged them).

What a read returns is checked against the index in :mod:`.readcheck`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa

from .. import parquet_lite as pq
from ..arrow_numpy import int_values
from ..boundary import is_within, reading
from ..coverage import check_coverage
from ..errors import DamagedFileError
from ..uniques import unique_counts

__all__ = [
    "PENDING",
    "pending_marker",
    "check_member",
    "check_image_chunks",
    "COVERED",
    "check_manifest_members",
    "check_unique",
    "check_unlisted_appends",
    "row_images",
]

#: Name of the marker an append writes before its first file and removes after its manifest commit.
PENDING: Final[str] = ".append-{:05d}.pending"
_APPENDED: Final = re.compile(r"images-(\d{5,})\.parquet")


def pending_marker(number: int) -> str:
    """The marker file name of append ``number``."""
    return PENDING.format(number)


def check_member(root: Path, name: object, source: str, what: str) -> str:
    """``name`` (read from ``source``) as a plain file name inside ``root``, else DamagedFileError."""
    if not isinstance(name, str) or "/" in name or not is_within(root, name):
        raise DamagedFileError(
            f"{source} names {what} {name!r}, which is not a plain file name inside {root}; members must be files "
            "of the dataset directory itself (no '..', no absolute paths, no separators): the dataset is damaged "
            "or crafted, restore it from a copy"
        )
    return name


def check_manifest_members(root: Path, manifest: Mapping[str, Any], manifest_name: str) -> None:
    """Refuse member names in the manifest's ``appends`` and ``fragments`` that leave the dataset directory."""
    ours = manifest.get("ome_arrow_core") or {}
    if not isinstance(ours, Mapping):
        raise DamagedFileError(
            f"{root / manifest_name}: 'ome_arrow_core' is a {type(ours).__name__}, expected an "
            "object; the dataset is damaged"
        )
    source = str(root / manifest_name)
    for entry in ours.get("appends") or []:
        if isinstance(entry, Mapping):
            for key in ("images", "index"):
                if key in entry:
                    check_member(root, entry[key], source, f"an append's {key} table")
    fragments = ours.get("fragments") or []
    if not isinstance(fragments, list):
        raise DamagedFileError(
            f"{source}: 'fragments' is a {type(fragments).__name__}, expected a list of file "
            "names; the dataset is damaged"
        )
    for name in fragments:
        check_member(root, name, source, "chunk file")


def check_image_chunks(
    where: str,
    image_id: str,
    sizes: Sequence[int],
    origin: np.ndarray,
    shape: np.ndarray,
    numbers: np.ndarray,
) -> None:
    """Raise DamagedFileError unless chunks at ``origin`` of ``shape`` (int64, one TCZYX row per chunk; index rows
    ``numbers`` in ``where``) cover the image of ``sizes`` once.

    A layout that passed (the same sizes, origins and shapes: every image of a plate) passes again without
    the coverage proof (:data:`COVERED` layouts are remembered, the check being a function of them alone).
    """
    origin = np.ascontiguousarray(origin, dtype=np.int64)
    shape = np.ascontiguousarray(shape, dtype=np.int64)
    key = (tuple(int(n) for n in sizes), origin.tobytes(), shape.tobytes())
    if key in _covered:
        return
    total, covered = int(np.prod(sizes, dtype=np.int64)), int(shape.prod(axis=1).sum())
    if covered != total:
        raise DamagedFileError(
            f"{where}: the chunks of image {image_id!r} cover {covered} pixels, its sizes need "
            f"{total}; the dataset is damaged (the index lacks or repeats chunks)"
        )
    check_coverage(origin, shape, sizes, f"{where}, image {image_id!r}", rows=numbers)
    if len(_covered) >= COVERED:
        _covered.clear()
    _covered.add(key)


#: Chunk layouts (sizes, origins, shapes) remembered as covering their image exactly once, at most.
COVERED: Final[int] = 1024
_covered: set[tuple[tuple[int, ...], bytes, bytes]] = set()


def check_unique(
    values: pa.ChunkedArray | pa.Array | np.ndarray, where: str, what: str, name: Callable[[Any], object] | None = None
) -> None:
    """Refuse repeated ``values`` (image ids, chunk ids), naming one.

    Numpy and dictionary encoding only: pyarrow's compute kernels cost ~50 MiB resident to load.
    """
    twice: object
    if isinstance(values, np.ndarray):
        uniq, counts = unique_counts(values)
        if len(uniq) == len(values):
            return
        twice = uniq[counts > 1][0]
        twice = twice.item() if isinstance(twice, np.generic) else twice  # an object array's items are themselves
        twice = name(twice) if name is not None else twice
    else:
        whole = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        enc = whole.dictionary_encode()  # a null id is a value of its own (the last code)
        counts = np.bincount(int_values(enc.indices, len(enc.dictionary)), minlength=len(enc.dictionary) + 1)
        if counts.max(initial=0) <= 1:
            return
        repeated = int(np.argmax(counts > 1))
        twice = enc.dictionary[repeated].as_py() if repeated < len(enc.dictionary) else None
    raise DamagedFileError(
        f"{where}: {what} {twice!r} appears more than once; each must be unique, the dataset is damaged"
    )


def check_unlisted_appends(
    root: Path, listed: Iterable[str], ids: Callable[[], pa.ChunkedArray], manifest_name: str
) -> None:
    """Refuse append images tables the manifest does not list (a lost or reset manifest would drop their images).

    Those a killed append left (its pending marker is there) and those whose images the
    listed tables already hold (merged by a compaction; ``ids()`` gives theirs) are ignored.
    """
    names = set(listed)
    candidates = []
    for name in sorted(os.listdir(root)):  # names, not Paths (sorted in the same order, without a Path per entry)
        hit = _APPENDED.fullmatch(name)
        if hit is not None and name not in names and not (root / pending_marker(int(hit.group(1)))).exists():
            candidates.append(root / name)
    if not candidates:
        return
    import pyarrow.compute as pc  # only with unlisted append tables: reads load no compute kernels

    known = ids().combine_chunks()
    unlisted = []
    for file in candidates:
        with reading(file, None, "reading the image ids of an append table the manifest does not list"):
            theirs = pq.read_table(file, columns=["image_id"]).column("image_id")
        if len(theirs) and not pc.all(pc.is_in(theirs, value_set=known)).as_py():
            unlisted.append(file.name)
    if unlisted:
        raise DamagedFileError(
            f"{root}: append tables {unlisted} hold images that {manifest_name} does not list (the manifest was "
            "lost, or replaced by a copy older than an append); reading on would silently drop those images. "
            "Restore the manifest from a backup, or remove the unlisted images-/index-/chunks- files of that "
            "append to give its images up"
        )


def row_images(images: pa.Table, image_part: np.ndarray, index: pa.Table, index_part: np.ndarray) -> np.ndarray:
    """The image row of each index row: the one of its part with its image_id (-1 if none).

    A one-image dataset's rows are all its image's.
    """
    n = index.num_rows
    if images.num_rows == 1:
        return np.zeros(n, dtype=np.int64)
    both = pa.concat_arrays(
        [
            index.column("image_id").combine_chunks().cast(pa.string()),
            images.column("image_id").combine_chunks().cast(pa.string()),
        ]
    ).dictionary_encode()
    codes = both.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    width = max(len(both.dictionary), 1)
    row_key = index_part.astype(np.int64) * width + codes[:n]
    image_key = image_part.astype(np.int64) * width + codes[n:]
    order = np.argsort(image_key, kind="stable")
    if not len(order):
        return np.full(n, -1, dtype=np.int64)
    at = np.minimum(np.searchsorted(image_key[order], row_key), len(order) - 1)
    return np.where(image_key[order][at] == row_key, order[at], -1).astype(np.int64)
