"""Pixel locators: where a one-chunk image's pixel bytes lie in its chunks file, written in its images row.

Reading image ``i`` of a plate used to load three row groups: its images row group (its metadata), its index row
group (where its chunk lies, and its checksum) and the chunks row group packing its pixels with those of up to
1,023 other images. Every one-chunk image in an uncompressed Parquet chunks file now also carries, in its images
row, the chunk's file (``pixels_file``), the file offset and length of its pixel bytes inside the ``pixel_bytes``
page (``pixels_offset``, ``pixels_length``) and their XXH3-64 (``pixels_checksum``, the index's ``checksum`` of
that chunk). A read of such an image needs its images row group only (kept decoded, checked against its row-group
digest before it is decoded) and one positioned read of exactly its pixel bytes, checked against
``pixels_checksum`` before any pixel is served. On a remote dataset (see ``remote_mirror``) that read is one ranged GET
of exactly those bytes (a batch's neighbours under :data:`GAP_BYTES` apart share one), always checked.

The manifest lists the chunks files whose locators were written with their sizes
(``ome_arrow_core.pixel_locators: {"chunks.parquet": {"size": S}}``): a file of another size (rewritten, merged,
truncated) is read through the index, as before. The columns are nullable (null: read through the index) and
optional; ome-arrow 0.1.0 and older ome-arrow-core do not ask for them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pyarrow as pa

from .. import parquet_lite as pq
from ..checksums import ALGORITHM, checker, mismatch
from ..errors import DamagedFileError
from ..frozen_types import FrozenTuple
from .parquet_pages import DATA_PAGE, PLAIN, RLE, ShortHeader, page_header
from .spec import IMAGES_SCHEMA, LOCATOR_COLUMNS

if TYPE_CHECKING:
    from .opened import OpenedDataset

__all__ = [
    "LOCATOR_FIELDS",
    "LOCATOR_NAMES",
    "LOCATORS_KEY",
    "Located",
    "value_offsets",
    "with_locators",
    "locator_of",
    "image_locator",
    "read_located",
    "fetch_located",
]

#: The images-table columns of a locator (null where the image has none).
LOCATOR_FIELDS: Final = (
    pa.field("pixels_file", pa.string()),
    pa.field("pixels_offset", pa.int64()),
    pa.field("pixels_length", pa.int64()),
    pa.field("pixels_checksum", pa.uint64()),
)
LOCATOR_NAMES: Final[tuple[str, ...]] = LOCATOR_COLUMNS
assert LOCATOR_NAMES == tuple(f.name for f in LOCATOR_FIELDS)
#: Manifest key (in ``ome_arrow_core``) of the chunks files whose locators are written: ``{name: {"size": S}}``.
LOCATORS_KEY: Final[str] = "pixel_locators"
_OWN: Final[frozenset[str]] = frozenset(IMAGES_SCHEMA.names)
#: Whether writes add pixel locators (tests set False to write datasets as earlier versions did, read through the
#: index).
WRITE: bool = True
#: Remote locators closer than this are fetched in one ranged GET (the gap between them is fetched and dropped).
GAP_BYTES: Final[int] = 64 << 10
#: Bytes read to parse a page header (one without statistics takes about 30).
_HEADER_BYTES: Final[int] = 256


class Located(FrozenTuple):
    """Where an image's pixels lie: its chunks file (a name the manifest lists), offset, length, checksum."""

    file: str
    offset: int
    length: int
    checksum: int


def _header(fd: int, at: int, limit: int) -> Any:
    try:
        return page_header(os.pread(fd, min(_HEADER_BYTES, limit), at))
    except ShortHeader:
        return page_header(os.pread(fd, limit, at))


def value_offsets(file: Path, groups: np.ndarray, rows: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The file offset of the ``pixel_bytes`` value of each chunk row (row group ``groups[k]``, row ``rows[k]`` in it,
    of ``lengths[k]`` bytes) of uncompressed Parquet chunks file ``file``; -1 where it cannot be located (a
    compressed or dictionary-encoded column chunk, a page that is not PLAIN V1, a row group some of whose rows are not
    given, pages whose sizes disagree with the lengths). Reads the footer and each page's header, never the pixels."""
    out = np.full(len(groups), -1, dtype=np.int64)
    md = pq.read_metadata(file)
    at = md.schema.to_arrow_schema().get_field_index("pixel_bytes")
    if at < 0 or md.schema.column(at).max_repetition_level or md.schema.column(at).max_definition_level > 1:
        return out
    levels = md.schema.column(at).max_definition_level == 1
    order = np.lexsort((rows, groups))
    g_sorted = groups[order]
    cuts = np.r_[0, np.nonzero(np.diff(g_sorted))[0] + 1, len(order)]
    fd = os.open(file, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist()):
            mine = order[a:b]
            g = int(g_sorted[a])
            if not 0 <= g < md.num_row_groups:
                continue
            group = md.row_group(g)
            if group.num_rows != b - a or not np.array_equal(rows[mine], np.arange(b - a)):
                continue  # rows of the group not all given: its values cannot be counted
            found = _group_offsets(fd, group.column(at), lengths[mine], levels)
            if found is not None:
                out[mine] = found
    finally:
        os.close(fd)
    return out


def _group_offsets(fd: int, chunk: pq.ColumnChunkMetaData, lengths: np.ndarray, levels: bool) -> np.ndarray | None:
    """Offsets of the values (of ``lengths``, in row order) of one uncompressed column chunk, or None."""
    if chunk.compression != "UNCOMPRESSED" or chunk.has_dictionary_page:
        return None
    pos, end = int(chunk.data_page_offset), int(chunk.data_page_offset) + int(chunk.total_compressed_size)
    out = np.empty(len(lengths), dtype=np.int64)
    done = 0
    try:
        while pos < end and done < len(lengths):
            head = _header(fd, pos, end - pos)
            body = pos + head.size
            n = head.num_values
            if (
                head.type != DATA_PAGE
                or head.encoding != PLAIN
                or (levels and head.definition_level_encoding != RLE)
                or head.compressed_size != head.uncompressed_size
                or not 0 < n <= len(lengths) - done
            ):
                return None
            start = body
            if levels:  # RLE definition levels: their length, then them
                start += 4 + int.from_bytes(os.pread(fd, 4, body), "little")
            mine = lengths[done : done + n]
            steps = np.cumsum(4 + mine)
            if start - body + int(steps[-1]) != head.uncompressed_size:
                return None  # the page does not hold exactly these values
            out[done : done + n] = start + steps - mine
            done += n
            pos = body + head.compressed_size
    except ValueError:  # a header that does not parse: no locators here (readers take the index)
        return None
    return out if done == len(lengths) and pos == end else None


def with_locators(
    root: Path, images: pa.Table, index: pa.Table, files: Sequence[str]
) -> tuple[pa.Table, dict[str, dict[str, int]]]:
    """``images`` with the locator columns of its one-chunk images whose chunk lies in one of ``files`` (chunks
    files under ``root`` just written; ``index``: their index rows), and the manifest entries of the files located.
    ``images`` is returned as it is when no image could be located."""
    n = images.num_rows
    if not WRITE or not files or not n or not index.num_rows or "checksum" not in index.column_names:
        return images, {}
    ids = index.column("image_id").to_pylist()
    count: dict[str, int] = {}
    for v in ids:
        count[v] = count.get(v, 0) + 1
    frag = index.column("fragment_path").to_pylist()
    groups = index.column("row_group_id").to_numpy(zero_copy_only=False).astype(np.int64)
    rows = index.column("row_index_in_group").to_numpy(zero_copy_only=False).astype(np.int64)
    shapes = np.stack([index.column(f"shape_{a}").to_numpy(zero_copy_only=False) for a in "tczyx"], axis=1)
    sums = index.column("checksum")
    image_row = {v: k for k, v in enumerate(images.column("image_id").to_pylist())}
    dtypes = images.column("dtype").to_pylist()
    itemsize = np.array([np.dtype(dtypes[image_row[v]]).itemsize if v in image_row else 0 for v in ids])
    lengths = shapes.astype(np.int64).prod(axis=1) * itemsize
    cols: dict[str, list[Any]] = {name: [None] * n for name in LOCATOR_NAMES}
    entries: dict[str, dict[str, int]] = {}
    # only one-chunk images get locators: the pages of row groups holding none of them are not read
    single = np.array([count[v] == 1 and v in image_row for v in ids], dtype=bool)
    for name in files:
        mine = np.array([k for k, f in enumerate(frag) if f == name], dtype=np.int64)
        if not len(mine) or not (root / name).suffix == ".parquet":
            continue
        mine = mine[np.isin(groups[mine], groups[mine][single[mine]])]  # every row of each group with one
        if not len(mine):
            continue
        offsets = value_offsets(root / name, groups[mine], rows[mine], lengths[mine])
        hit = 0
        for k, off in zip(mine.tolist(), offsets.tolist()):
            image = ids[k]
            if off < 0 or count[image] != 1 or image not in image_row or not sums[k].is_valid:
                continue
            r = image_row[image]
            for col, value in zip(LOCATOR_NAMES, (name, off, int(lengths[k]), sums[k].as_py())):
                cols[col][r] = value
            hit += 1
        if hit:
            entries[name] = {"size": (root / name).stat().st_size}
    if not entries:
        return images, {}
    first = sum(1 for name in images.column_names if name in _OWN)  # after the dataset's own columns, before yours
    for k, f in enumerate(LOCATOR_FIELDS):
        column = pa.array(cols[f.name], f.type)
        at = images.schema.get_field_index(f.name)
        images = images.add_column(first + k, f, column) if at < 0 else images.set_column(at, f, column)
    return images, entries


def locator_of(manifest: Mapping[str, Any], files: Sequence[str], values: Sequence[Any], where: str) -> Located | None:
    """The locator of an images row (``values``: its :data:`LOCATOR_NAMES`, None for a column it lacks), or None
    when it has none or its file is not among those the manifest lists as located (``files``: the dataset's chunks
    files). DamagedFileError for a locator that cannot be one."""
    name, offset, length, checksum = values
    if name is None or offset is None or length is None or checksum is None:
        return None
    entry = ((manifest.get("ome_arrow_core") or {}).get(LOCATORS_KEY) or {}).get(name)
    if not isinstance(entry, Mapping) or name not in files:
        return None
    if offset < 4 or length <= 0:
        raise DamagedFileError(f"{where}: its pixel locator ({name}, offset {offset}, {length} bytes) is impossible")
    return Located(str(name), int(offset), int(length), int(checksum))


def image_locator(opened: OpenedDataset, pos: int) -> Located | None:
    """The pixel locator of image row ``pos`` of ``opened`` (None: none, or its chunks file is not the size its
    locators were written for: read it through the index)."""
    if not (opened.manifest.get("ome_arrow_core") or {}).get(LOCATORS_KEY):
        return None
    values = opened.images.scalars(pos, LOCATOR_NAMES)
    if values[0] is None:
        return None
    loc = locator_of(opened.manifest, opened.fragment_names, values, f"{opened.path}, image row {pos}")
    if loc is None:
        return None
    ok = opened.located_files.get(loc.file)
    if ok is None:
        ok = opened.located_files[loc.file] = usable(opened.path, opened.manifest, loc.file)
    return loc if ok else None


def usable(root: Path, manifest: Mapping[str, Any], name: str) -> bool:
    """Whether chunks file ``name`` is the size its locators were written for (a remote dataset's placeholder has
    its object's size when the dataset was opened: its locators are read by ranged GETs, see :func:`fetch_located`).
    """
    entry = ((manifest.get("ome_arrow_core") or {}).get(LOCATORS_KEY) or {}).get(name)
    try:
        return isinstance(entry, Mapping) and int(entry.get("size", -1)) == os.stat(root / name).st_size
    except (OSError, TypeError, ValueError):
        return False


def read_located(
    root: Path,
    loc: Located,
    shape: Sequence[int],
    dtype: np.dtype[Any],
    verify: bool,
    algorithm: str | None,
    what: str,
    fd: int | None = None,
    data: bytes | None = None,
) -> np.ndarray:
    """The pixels (C order over ``shape``, TCZYX) at ``loc`` in chunks file ``root / loc.file`` (``fd``: that file
    open already), read with one positioned read into a fresh buffer and, with ``verify``, checked against the
    locator's checksum first. ``data``: the bytes at ``loc`` fetched already from a remote chunks object (see
    :func:`fetch_located`; always checked: they are new bytes of an object that may have been replaced)."""
    want = math.prod(shape) * dtype.itemsize
    if loc.length != want:
        raise DamagedFileError(
            f"{root / loc.file}: the pixel locator of {what} gives {loc.length} bytes; its {tuple(shape)} {dtype} "
            f"pixels are {want}; the images table is damaged"
        )
    if data is not None:
        buf, got, verify = bytearray(data), len(data), True
    else:
        buf = bytearray(want)
        mine = fd is None
        if fd is None:
            fd = os.open(root / loc.file, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            got = os.preadv(fd, [buf], loc.offset)
        finally:
            if mine:
                os.close(fd)
    if got != want:
        raise DamagedFileError(
            f"{root / loc.file}: {what} lies at bytes {loc.offset}..{loc.offset + want} by its pixel locator, but "
            f"the file ends before ({got} of {want} bytes read); the file is truncated or the images table is damaged"
        )
    if verify:  # the file's name (for an unknown algorithm's error) as a string: no Path per image of a batch
        actual = checker(algorithm or ALGORITHM, f"{os.fspath(root)}{os.sep}{loc.file}")(buf)
        if actual != loc.checksum:
            raise mismatch(
                str(root / loc.file), f"{what} (bytes {loc.offset}..{loc.offset + want})", loc.checksum, actual
            )
    out = np.frombuffer(buf, dtype=dtype).reshape(tuple(shape))
    out.flags.writeable = False
    return out


def fetch_located(read_at: Callable[[int, int], bytes], locs: Sequence[Located]) -> list[bytes]:
    """The bytes at each of ``locs`` (all in one remote chunks object, read by ``read_at(start, length)``, see
    ``remote.chunks.RemoteChunk``): one ranged GET per run of locators at most :data:`GAP_BYTES` apart (the gap is
    fetched and dropped), the runs side by side (``remote.fetch_spans``), never a byte twice; short where the object
    ends early (the reader calls that damage)."""
    from ..remote import fetch_spans

    order = sorted(range(len(locs)), key=lambda k: locs[k].offset)
    runs: list[tuple[list[int], int, int]] = []  # (locators, start, stop)
    for k in order:
        start, stop = locs[k].offset, locs[k].offset + locs[k].length
        if runs and start - runs[-1][2] <= GAP_BYTES:
            runs[-1][0].append(k)
            runs[-1] = (runs[-1][0], runs[-1][1], max(runs[-1][2], stop))
        else:
            runs.append(([k], start, stop))
    out: list[bytes] = [b""] * len(locs)
    for (mine, start, _), raw in zip(runs, fetch_spans(read_at, [(a, b - a) for _, a, b in runs]), strict=True):
        view = memoryview(raw)
        for j in mine:
            at = locs[j].offset - start
            out[j] = bytes(view[at : at + locs[j].length])
    return out


def locator_damage(root: Path, manifest: Mapping[str, Any], images: pa.Table) -> list[tuple[Path, str, str]]:
    """(file, problem, image id) of each pixel locator of ``images`` (every images table's rows) that a checked read
    of its image would refuse: impossible, not the image's size, past the end of its file, or bytes that do not match
    its checksum (for ``ome-arrow-core verify``). Locators of files not listed, or of another size, are not read."""
    if not (manifest.get("ome_arrow_core") or {}).get(LOCATORS_KEY) or "pixels_file" not in images.column_names:
        return []
    algorithm = (manifest.get("ome_arrow_core") or {}).get("checksum")
    files = [str(n) for n in (manifest.get("ome_arrow_core") or {}).get("fragments") or []]
    cols = {n: images.column(n).to_pylist() for n in ("image_id", "dtype", *LOCATOR_NAMES)}
    sizes = [images.column(f"size_{a}").to_pylist() for a in "tczyx"]
    found: list[tuple[Path, str, str]] = []
    ok: dict[str, bool] = {}
    for k, image in enumerate(cols["image_id"]):
        values = [cols[n][k] for n in LOCATOR_NAMES]
        try:
            loc = locator_of(manifest, files, values, f"{root}, image {image!r}")
            if loc is not None and loc.file not in ok:  # each file's size compared once
                ok[loc.file] = usable(root, manifest, loc.file)
            if loc is None or not ok[loc.file]:
                continue
            shape = [int(s[k]) for s in sizes]
            read_located(root, loc, shape, np.dtype(cols["dtype"][k]), True, algorithm, f"image {image!r}")
        except DamagedFileError as exc:
            found.append((root / str(values[0]), str(exc), str(image)))
    return found
