"""write_dataset: stream any images (arrays, OMEArrow images, files, a dataset) into a typed-chunk dataset."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from pathlib import Path
from typing import Any, Literal, TypeAlias

import numpy as np
import pyarrow as pa

from ..buffers import read_only
from ..errors import ArgumentError
from ..image import OMEArrow
from ..image_input import open_source
from ..ingesting import pair_pixels
from ..meta import ImageMeta
from ..progress import Progress
from ..registry import Registry, default_registry
from ..selection import Selection
from ..sources import ArraySource, in_memory
from ..typed_chunk import remote_target, stream_dataset
from .collection import OMEArrowDataset

__all__ = ["write_dataset", "ImageLike"]


#: What write_dataset takes per image: an OMEArrow, an array (or tensor), a path, or (ImageMeta, TCZYX array).
ImageLike: TypeAlias = Any


def _pixels_of(item: Any, dim_order: str | None, registry: Registry | None) -> tuple[ImageMeta, Any]:
    """An image's metadata and band reader: an OMEArrow or a path read through its view, arrays directly."""
    if isinstance(item, OMEArrow):
        return item.meta, _band_reader(item)
    if isinstance(item, (str, os.PathLike)):
        img = OMEArrow.scan(item, registry=registry)
        series = int(img.info().get("series_count") or 1)
        if series > 1:  # one item is one image: the others would be dropped without a word
            raise ArgumentError(
                f"{os.fspath(item)} holds {series} images (image series) and write_dataset takes one image per item; "
                f"pass OMEArrowDataset.scan({os.fspath(item)!r}) for all of them (each series an image), or "
                f"OMEArrow.scan(path, row=i) for image i"
            )
        return img.meta, _band_reader(img)
    # arrays are not copied into Arrow memory: the writer reads each one at once, copying it chunk by chunk
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], ImageMeta):
        meta, pixels = item
        src = ArraySource(meta, read_only(pair_pixels(meta, pixels, dim_order)), "memory")
    else:
        src = in_memory(open_source(item, dim_order, registry or default_registry(), copy=False))
    tzcyx = src.pixels
    return src.meta, lambda sel: sel.apply(tzcyx)


def _band_reader(img: OMEArrow) -> Any:
    full = Selection.full(img.sizes)

    def read(sel: Selection) -> np.ndarray:
        if sel == full:
            return img.to_numpy(layout="TZCYX")
        view = img.tensor_view(
            t=sel.t, z=sel.z, c=sel.c, roi=(sel.x.start, sel.y.start, len(sel.x), len(sel.y)), layout="TZCYX"
        )
        return view.to_numpy()

    return read


def _metadata_rows(metadata: Any, count: int | None) -> Iterator[Mapping[str, Any]]:
    """One dict per image from columns (a mapping of sequences, a table) or rows (dicts)."""
    if metadata is None:
        while True:
            yield {}
    if isinstance(metadata, (pa.Table, pa.RecordBatch)):
        metadata = metadata.to_pylist()
    elif hasattr(metadata, "to_dict") and hasattr(metadata, "columns"):  # a pandas DataFrame
        metadata = metadata.to_dict("records")
    if isinstance(metadata, Mapping):
        cols = {str(k): list(v) for k, v in metadata.items()}
        lengths = {len(v) for v in cols.values()}
        if len(lengths) > 1 or (count is not None and lengths and lengths != {count}):
            raise ArgumentError(
                f"metadata columns must each have one value per image ({count} images); "
                f"got lengths {{{', '.join(f'{k}: {len(v)}' for k, v in cols.items())}}}"
            )
        n = lengths.pop() if lengths else 0
        for i in range(n):
            yield {k: v[i] for k, v in cols.items()}
        return
    if isinstance(metadata, Sequence) and count is not None and len(metadata) != count:
        raise ArgumentError(f"metadata has {len(metadata)} rows for {count} images; give one row per image")
    for row in metadata:
        if not isinstance(row, Mapping):
            raise ArgumentError(f"metadata rows must be mappings of column to value, got {type(row).__name__}")
        yield row


def write_dataset(
    images: Iterable[ImageLike] | OMEArrowDataset,
    out: str | os.PathLike[str],
    *,
    metadata: Any = None,
    mode: Literal["create", "append", "overwrite"] = "create",
    image_ids: Iterable[str] | None = None,
    chunk_format: str | None = None,
    chunk_shape: Sequence[int] | None = None,
    compression: str | None = "default",
    compression_level: int | None = None,
    rows_per_group: int = 1,
    images_per_group: int = 1024,
    dim_order: str | None = None,
    progress: bool | None = None,
    registry: Registry | None = None,
    filesystem: Any = None,
) -> Path | str:
    """Stream images into a typed-chunk dataset directory at ``out``; memory holds one image,
    plus up to 16 MiB of packed chunk rows waiting to be written together.

    ``images`` is any iterable (a generator is fine) of OMEArrow images, numpy arrays (axes
    from ``dim_order``, 5-D by default TCZYX), paths of image files (read lazily, one at a
    time), ``(ImageMeta, array)`` pairs (the array TCZYX unless ``dim_order`` names its axes;
    see :func:`~ome_arrow_core.ingesting.pair_pixels`), or an :class:`OMEArrowDataset` (whose
    extra columns come along, and its image ids when they are unique, unless ``mode="append"``, where ids could
    clash: pass ``image_ids=``).
    ``metadata`` adds columns to the images table: a mapping of column to values, a
    pyarrow Table or DataFrame, or an iterable of dicts, one per image, in order.

    ``mode="create"`` (default) refuses an existing ``out``; ``"append"`` adds to it (its
    new chunks go to a new file; nothing already written is rewritten but the small images
    and index tables); ``"overwrite"`` replaces it. Every mode is atomic: a failure leaves
    the previous dataset as it was. ``progress`` shows a bar (default: when stderr is a
    terminal). Image ids default to ``image-00000``, ``image-00001``... continuing on append.

    Images of one chunk of at most 64 KiB share chunks row groups (up to 1,024 images, 256 KiB;
    see docs/format.md), so a plate of a million tiny images keeps a small footer.

    ``chunk_format`` picks the chunk files' format: ``"parquet"`` (built in; readable by
    ome-arrow 0.1.0) or a chunk store's, such as ``"vortex"`` (``pip install
    "ome-arrow-core[vortex]"``); the images table and index stay Parquet either way, so
    filters are still pushed down. None (default) is Parquet for a new dataset and the
    dataset's own format on append. ``compression="default"`` is none (uncompressed) for Parquet, on append the
    codec of the dataset's Parquet chunks, and the store's default for others (Vortex: ``None`` or ``"zstd"``). ``registry`` (default: the shared one)
    opens image files and gives the chunk store: a registry that blocks it cannot write its format.
    """
    local, remote = remote_target(out, filesystem)
    count = len(images) if isinstance(images, Sized) else None
    if isinstance(images, OMEArrowDataset):
        if metadata is None and images.extra_columns:
            metadata = images.table.select(images.extra_columns)
        if image_ids is None and mode != "append" and "image_id" in images.column_names:
            kept = images.table.column("image_id").to_pylist()  # a rewrite keeps them; an append numbers anew
            if None not in kept and len(set(kept)) == len(kept):  # (files of one id each, say "img-0": numbered)
                image_ids = kept
        images = iter(images)
    rows = _metadata_rows(metadata, count)
    if isinstance(image_ids, (str, bytes)):  # iterated, it would be one id a character
        raise ArgumentError(f"image_ids takes one id per image (a list of str), got the string {image_ids!r:.40}")
    ids = iter(image_ids) if image_ids is not None else None
    bar = Progress(count, "write_dataset", unit="img", enabled=progress)
    done = [0]

    def items() -> Iterator[tuple[str | None, ImageMeta, Any, Mapping[str, Any]]]:
        for item in images:
            meta, reader = _pixels_of(item, dim_order, registry)
            try:
                extra = next(rows)
            except StopIteration:
                raise ArgumentError(f"metadata ran out after {done[0]} rows; give one row per image") from None
            image_id = next(ids, None) if ids is not None else None
            if ids is not None and image_id is None:
                raise ArgumentError(f"image_ids ran out after {done[0]} ids; give one id per image")
            done[0] += 1
            yield (None if image_id is None else str(image_id)), meta, reader, extra
        if ids is not None and next(ids, None) is not None:  # before the commit: a list off by one says so
            raise ArgumentError(f"image_ids holds more ids than the {done[0]} images; give one id per image")
        if metadata is not None and next(rows, None) is not None:
            raise ArgumentError(f"metadata holds more rows than the {done[0]} images; give one row per image")

    def write(path: Path, how: str) -> Path:
        return stream_dataset(
            items(),
            path,
            mode=how,
            chunk_format=chunk_format,
            chunk_shape=chunk_shape,
            compression=compression,
            compression_level=compression_level,
            rows_per_group=rows_per_group,
            images_per_group=images_per_group,
            registry=registry,
            on_image=lambda image_id, _: bar.update(1, image_id),
        )

    try:
        if remote is None:
            assert local is not None
            write(local, mode)
        else:
            from ..typed_chunk import write_remote_dataset  # its uploads and mirrors: remote writes only

            write_remote_dataset(remote, mode, write)
    finally:
        bar.close()
    return local if local is not None else str(out)
