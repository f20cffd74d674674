"""What a typed-chunk dataset's files say about each other, checked before pixels are handed out.

- Member names read from files (``fragment_path``, the manifest's ``appends`` and
  ``fragments``) are plain file names inside the dataset directory.
- Image ids are unique across all images tables; chunk ids across all index tables.
- Append tables on disk that the manifest does not list are refused, unless an
  ``.append-NNNNN.pending`` marker says a killed append left them (an append writes the
  marker first and removes it after committing the manifest) or their images are already
  in the listed tables (a compaction merged them).
- The rows a read returns are the ones the index names: ``chunk_id`` read alongside
  ``pixel_bytes`` matches, ``row_index_in_group`` is inside its row group, and the chunks'
  ``dtype`` is their image's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .boundary import is_within, reading
from .errors import DamagedFileError

__all__ = ["PENDING", "pending_marker", "check_member", "check_manifest_members", "check_unique",
           "check_unlisted_appends", "ReadCheck"]

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
        raise DamagedFileError(f"{root / manifest_name}: 'ome_arrow_core' is a {type(ours).__name__}, expected an "
                               "object; the dataset is damaged")
    source = str(root / manifest_name)
    for entry in ours.get("appends") or []:
        if isinstance(entry, Mapping):
            for key in ("images", "index"):
                if key in entry:
                    check_member(root, entry[key], source, f"an append's {key} table")
    fragments = ours.get("fragments") or []
    if not isinstance(fragments, list):
        raise DamagedFileError(f"{source}: 'fragments' is a {type(fragments).__name__}, expected a list of file "
                               "names; the dataset is damaged")
    for name in fragments:
        check_member(root, name, source, "chunk file")


def check_unique(values: pa.ChunkedArray | pa.Array, where: str, what: str) -> None:
    """Refuse repeated ``values`` (image ids, chunk ids), naming one."""
    if pc.count_distinct(values, mode="all").as_py() == len(values):
        return
    counts = pc.value_counts(values)
    twice = counts.filter(pc.greater(counts.field("counts"), 1))[0]["values"].as_py()
    raise DamagedFileError(f"{where}: {what} {twice!r} appears more than once; each must be unique, the dataset is "
                           "damaged")


def check_unlisted_appends(root: Path, listed: Iterable[str], ids: Callable[[], pa.ChunkedArray],
                           manifest_name: str) -> None:
    """Refuse append images tables the manifest does not list (a lost or reset manifest would drop their images).

    Those a killed append left (its pending marker is there) and those whose images the
    listed tables already hold (merged by a compaction; ``ids()`` gives theirs) are ignored.
    """
    names = set(listed)
    candidates = []
    for file in sorted(root.iterdir()):
        hit = _APPENDED.fullmatch(file.name)
        if hit is not None and file.name not in names and not (root / pending_marker(int(hit.group(1)))).exists():
            candidates.append(file)
    if not candidates:
        return
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


class ReadCheck:
    """Index rows of one chunk file by row group, to check what a read of some row groups returned."""

    def __init__(self, root: Path, file: str, groups: np.ndarray, within: np.ndarray, chunk_ids: np.ndarray,
                 dtypes: Sequence[str | None], parts: np.ndarray, index_names: Sequence[str]) -> None:
        """Index rows of chunk file ``file``: row group, row in it, chunk id, image dtype, part (of ``index_names``)."""
        order = np.argsort(groups, kind="stable")
        self.root, self.file, self.index_names = root, file, list(index_names)
        self.groups, self.within, self.chunk_ids = groups[order], within[order], chunk_ids[order]
        self.dtypes = np.asarray(dtypes, dtype=object)[order]
        self.parts = parts[order]

    def _source(self, row: int) -> str:
        return f"{self.root} [{self.index_names[int(self.parts[row])]}]"

    def check(self, groups: np.ndarray, group_rows: np.ndarray, first: np.ndarray, table: pa.Table) -> None:
        """Compare rows read from row groups ``groups`` (ascending; ``first[k]``: row of group k in ``table``)."""
        lo = np.searchsorted(self.groups, groups, side="left")
        hi = np.searchsorted(self.groups, groups, side="right")
        mine = np.concatenate([np.arange(a, b) for a, b in zip(lo.tolist(), hi.tolist())]) if len(groups) else lo
        which = np.repeat(np.arange(len(groups)), hi - lo)
        within = self.within[mine]
        bad = np.nonzero((within < 0) | (within >= group_rows[groups[which]]))[0]
        if len(bad):
            j = int(bad[0])
            raise DamagedFileError(
                f"{self._source(int(mine[j]))}: chunk {int(self.chunk_ids[mine[j]])} is row {int(within[j])} of row group "
                f"{int(groups[which[j]])} of {self.file}, which has {int(group_rows[groups[which[j]]])} rows; the "
                "dataset is damaged"
            )
        at = first[which] + within
        if "chunk_id" in table.column_names:
            found = table.column("chunk_id").to_numpy()[at]
            bad = np.nonzero(found != self.chunk_ids[mine])[0]
            if len(bad):
                j = int(bad[0])
                raise DamagedFileError(
                    f"{self._source(int(mine[j]))} says chunk {int(self.chunk_ids[mine[j]])} is row {int(within[j])} of row group "
                    f"{int(groups[which[j]])} of {self.file}, but that row holds chunk {int(found[j])}; the index "
                    "and the chunk file disagree, the dataset is damaged"
                )
        if "dtype" in table.column_names:
            enc = table.column("dtype").combine_chunks().dictionary_encode()
            names = np.array([_name(v) for v in enc.dictionary.to_pylist()], dtype=object)
            found_dt = names[enc.indices.to_numpy(zero_copy_only=False)][at] if len(names) else names[:0]
            want = self.dtypes[mine]
            bad = np.nonzero((want != None) & (found_dt != want))[0]  # noqa: E711 (element-wise)
            if len(bad):
                j = int(bad[0])
                raise DamagedFileError(
                    f"{self.file}: chunk {int(self.chunk_ids[mine[j]])} holds {found_dt[j]} pixels, but the images "
                    f"table says its image is {want[j]}; the dataset is damaged"
                )


def _name(dtype: object) -> str | None:
    """The numpy name of dtype string ``dtype`` (None when it names none)."""
    try:
        return np.dtype(str(dtype)).name
    except TypeError:
        return None
