"""Appending images to a typed-chunk dataset: new chunk, images and index files, then the manifest.

Nothing already written is read (but footers and image ids) or rewritten; until the manifest
lists the new files, a ``.append-NNNNN.pending`` marker says they belong to an unfinished append.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq

from ..parquet_files import PARQUET_CODECS
from ..safe_write import atomic_path
from .checks import check_manifest_members, pending_marker
from .fragments import DEFAULT_COMPRESSION, PARQUET, fragment_codec, suffix_of
from .image_batches import ImageRowBatches
from .packing import ChunkPacker, StreamItem, packed_tables
from .spec import MANIFEST, read_manifest
from .tables import BASE, Part, appends_of, images_schema, max_chunk_id, parts_of, read_images
from .write_steps import fragment_names, write_fragments, write_manifest, write_tables

if TYPE_CHECKING:
    from ..registry import Registry

__all__ = ["append_images"]


def append_images(
    items: Iterable[StreamItem],
    out: Path,
    chunk_format: str | None,
    opts: dict[str, Any],
    images_per_group: int,
    on_image: Callable[[str, int], None] | None,
    registry: Registry,
) -> Path:
    """Add ``items`` to the dataset at ``out``: new chunk, images and index files, then the manifest.

    Reads only the old tables' footers and image ids, never their rows: an append costs the new images.
    """
    previous = read_manifest(out)
    check_manifest_members(out, previous, MANIFEST)  # the new manifest keeps its lists: none outside the dataset
    ours = previous.get("ome_arrow_core") or {}
    own = str(ours.get("chunk_format") or PARQUET)
    fmt = chunk_format or own
    compression = opts["compression"]
    if compression == DEFAULT_COMPRESSION and fmt == own == PARQUET:
        compression = _own_codec(previous)
    codec = fragment_codec(fmt, compression, opts["compression_level"], opts["rows_per_group"], registry)
    parts = parts_of(out, previous)
    ids = read_images(out, parts, ["image_id"])[0].column("image_id").to_pylist()
    fragments = [str(f) for f in ours["fragments"]] if "fragments" in ours else _indexed_fragments(out)
    k = _append_number(out, fragments, parts)
    part = Part(f"images-{k:05d}.parquet", f"index-{k:05d}.parquet")
    names = fragment_names(
        {*fragments, *(p.name for p in out.iterdir())},
        suffix_of(fmt, registry),
        first=f"chunks-{k:05d}{suffix_of(fmt, registry)}",
    )
    fw = ChunkPacker(
        "",
        first_chunk_id=max_chunk_id(out, parts) + 1,
        chunk_shape=opts["chunk_shape"],
        compression=codec,
        rows_per_group=opts["rows_per_group"],
        share=fmt == PARQUET,
        images_per_group=images_per_group,
    )
    rows = ImageRowBatches()
    tables = packed_tables(fw, items, set(ids), len(ids), on_image, rows)
    new: list[str] = []

    def place(name: str) -> contextlib.AbstractContextManager[Path]:
        new.append(name)
        return atomic_path(out / name)

    marker = out / pending_marker(k)  # unlisted files of this append are a killed append's, not a lost manifest's
    try:
        marker.touch()
        written = write_fragments(
            tables,
            fw,
            names,
            fmt,
            place,
            registry=registry,
            compression=codec,
            compression_level=opts["compression_level"],
            rows_per_group=opts["rows_per_group"],
        )
        if not len(rows):
            return out
        new += [part.index, part.images]
        located = write_tables(
            out, rows, fw.index(), images_per_group, part, images_schema(out, parts), located=written
        )
        write_manifest(
            out,
            previous,
            rows.first,
            fw,
            sorted({*fragments, *written}),
            int(opts["rows_per_group"]),
            fmt,
            len(ids) + len(rows),
            [*parts[1:], part],
            located=located,
        )
    except BaseException:
        if not _committed(out, part):  # once the manifest lists them, the append has happened
            for name in reversed(new):  # images first: an append without its images table is plainly dead
                with contextlib.suppress(OSError):
                    (out / name).unlink(missing_ok=True)
        raise
    finally:  # the marker stays while files of an append that did not commit are left (removing them failed)
        if not any((out / name).exists() for name in new) or _committed(out, part):
            marker.unlink(missing_ok=True)
    return out


def _committed(root: Path, part: Part) -> bool:
    """True when the manifest on disk lists ``part`` (or cannot be read: then nothing is removed)."""
    try:
        return part in appends_of(read_manifest(root))
    except Exception:
        return True


def _own_codec(manifest: dict[str, Any]) -> str | None:
    """The codec the dataset's Parquet chunks were written with (its manifest's ``choice``, which ome-arrow 0.1.0
    writes too: zstd by default), so that an append keeps one codec and the dataset stays compactable; the
    default (none) when the manifest does not say."""
    choice = manifest.get("choice")
    codec = choice.get("compression") if isinstance(choice, dict) else None
    return codec.lower() if isinstance(codec, str) and codec.lower() in PARQUET_CODECS else DEFAULT_COMPRESSION


def _indexed_fragments(root: Path) -> list[str]:
    """The chunk files the base index names (a dataset whose manifest does not list them: ome-arrow 0.1.0's)."""
    if not (root / BASE.index).exists():
        return ["chunks.parquet"]
    if "fragment_path" not in pq.read_schema(root / BASE.index).names:
        return ["chunks.parquet"]
    column = pq.read_table(root / BASE.index, columns=["fragment_path"]).column("fragment_path")
    return sorted({str(v or "chunks.parquet") for v in column.unique().to_pylist()})


def _append_number(root: Path, fragments: Iterable[str], parts: Iterable[Part]) -> int:
    """The first NNNNN that no ``chunks-``, ``images-`` or ``index-`` file uses, listed or left on disk."""
    used = {*fragments, *(p.name for p in root.iterdir()), *(n for p in parts for n in (p.images, p.index))}
    stems = {Path(n).name.split(".", 1)[0] for n in used}
    k = 1
    while any(f"{kind}-{k:05d}" in stems for kind in ("chunks", "images", "index")):
        k += 1
    return k
