"""Writing typed-chunk datasets: whole in-memory images, or streamed images (create, overwrite, append), atomically."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from ..errors import ArgumentError, SchemaError, UnsafeOverwriteError
from ..meta import ImageMeta
from ..registry import Registry, default_registry
from ..safe_write import atomic_path, lock, recover, storage_errors
from .append import append_images
from .fragments import DEFAULT_COMPRESSION, PARQUET, fragment_codec, suffix_of, write_fragment
from .image_batches import ImageRowBatches
from .packing import BandReader, ChunkPacker, StreamItem, packed_tables
from .spec import is_dataset_dir
from .write_steps import fragment_names, write_fragments, write_manifest, write_tables

__all__ = ["write_images", "stream_dataset"]


def _array_reader(pixels: np.ndarray) -> BandReader:
    """A band reader over an in-memory TZCYX array (views where the selection allows)."""
    return lambda sel: sel.apply(pixels)


def write_images(
    images: Sequence[tuple[ImageMeta, np.ndarray]],
    out: Path,
    *,
    chunk_shape: Sequence[int] | None = None,
    compression: str | None = DEFAULT_COMPRESSION,
    compression_level: int | None = None,
    rows_per_group: int = 1,
    image_ids: Sequence[str] | None = None,
    chunk_format: str = PARQUET,
    registry: Registry | None = None,
) -> Path:
    """Write in-memory (meta, TZCYX pixels) images as a typed-chunk dataset at ``out``, atomically.

    Replaces ``out`` if it exists; the work is :func:`stream_dataset`'s.
    """
    ids = (
        list(image_ids)
        if image_ids
        else [m.id if len(images) == 1 else f"image-{i:05d}" for i, (m, _) in enumerate(images)]
    )
    if len(set(ids)) != len(ids):
        raise ArgumentError(f"image ids must be unique, got {ids}")
    items: list[StreamItem] = [
        (image_id, meta, _array_reader(np.asarray(pixels)), {}) for (meta, pixels), image_id in zip(images, ids)
    ]
    return stream_dataset(
        items,
        out,
        mode="overwrite",
        chunk_format=chunk_format,
        chunk_shape=chunk_shape,
        compression=compression,
        compression_level=compression_level,
        rows_per_group=rows_per_group,
        registry=registry,
    )


def stream_dataset(
    items: Iterable[StreamItem],
    out: Path,
    *,
    mode: str = "create",
    chunk_format: str | None = None,
    chunk_shape: Sequence[int] | None = None,
    compression: str | None = DEFAULT_COMPRESSION,
    compression_level: int | None = None,
    rows_per_group: int = 1,
    images_per_group: int = 1024,
    on_image: Callable[[str, int], None] | None = None,
    registry: Registry | None = None,
) -> Path:
    """Write images one at a time into a typed-chunk dataset at ``out``.

    ``mode="create"`` refuses an existing ``out``; ``"overwrite"`` replaces it; both write a
    fresh directory and rename it into place. ``"append"`` adds the images to an existing
    dataset (or creates it) without reading or rewriting its tables: their chunks go to a new
    file ``chunks-NNNNN.parquet`` (named by ``fragment_path`` in the index), their rows to new
    ``images-NNNNN.parquet`` and ``index-NNNNN.parquet``, and then the manifest, which lists
    them, is replaced atomically, so a reader sees the old or the new images, never a mix.
    ``on_image(image_id, nbytes)`` is called after each image.

    ``chunk_format`` is ``"parquet"`` (built in) or a chunk store's format (``"vortex"``);
    None means Parquet for a new dataset and the dataset's own format for an append.
    ``compression="default"`` is none (uncompressed) for Parquet (an append's: the dataset's codec) and the store's
    first listed codec otherwise.
    Chunk stores come from ``registry`` (default: the shared one).
    """
    reg = registry or default_registry()
    if mode not in ("create", "append", "overwrite"):
        raise ArgumentError(f"mode must be 'create', 'append' or 'overwrite', got {mode!r}")
    recover(out)  # a killed overwrite's old copy goes back first: it is the dataset
    if os.path.lexists(out) and mode == "create":
        raise UnsafeOverwriteError(
            f"{out} exists; pass mode='append' to add images to it or mode='overwrite' to replace it "
            "(only an OME-Arrow dataset holding nothing else is replaced)"
        )
    opts = {
        "chunk_shape": chunk_shape,
        "compression": compression,
        "compression_level": compression_level,
        "rows_per_group": rows_per_group,
    }
    if mode == "append" and out.exists():
        if not is_dataset_dir(out):
            raise SchemaError(f"cannot append to {out}: it is not an OME-Arrow dataset directory")
        with storage_errors(out), lock(out):
            return append_images(items, out, chunk_format, opts, images_per_group, on_image, reg)
    fmt = chunk_format or PARQUET
    codec = fragment_codec(fmt, compression, compression_level, rows_per_group, reg)
    name = "chunks" + suffix_of(fmt, reg)
    with atomic_path(out, directory=True, replace=mode == "overwrite") as tmp:
        fw = ChunkPacker(
            name,
            chunk_shape=chunk_shape,
            compression=codec,
            rows_per_group=rows_per_group,
            share=fmt == PARQUET,
            images_per_group=images_per_group,
        )
        rows = ImageRowBatches()
        names = fragment_names(set(), suffix_of(fmt, reg), first=name)
        written = write_fragments(
            packed_tables(fw, items, set(), 0, on_image, rows),
            fw,
            names,
            fmt,
            lambda n: contextlib.nullcontext(tmp / n),
            registry=reg,
            compression=codec,
            compression_level=compression_level,
            rows_per_group=rows_per_group,
        )
        if not written:  # no images: an empty chunks file, so the dataset is still complete
            write_fragment(
                [],
                tmp / name,
                fmt,
                compression=codec,
                compression_level=compression_level,
                rows_per_group=rows_per_group,
                registry=reg,
            )
        # tmp is a fresh directory no reader sees: its files are written in place, the rename commits them all
        located = write_tables(tmp, rows, fw.index(), images_per_group, fresh=True, located=written)
        write_manifest(
            tmp, {}, rows.first, fw, written or [name], rows_per_group, fmt, len(rows), fresh=True, located=located
        )
    return out
