"""How a dask array of images is cut into blocks: whole storage chunks, about ``limit`` bytes each.

``chunks="auto"`` (the default) works like dask's own ``"auto"``: blocks of about
``array.chunk-size`` bytes (128 MiB unless configured), made of whole storage chunks. Small
images go whole into a block, many consecutive images per block (consecutive images sit
next to each other in the chunk files, so one block is one Parquet pass); an image larger
than the limit is cut along its storage chunks, merging neighbours from the last axis
(X) outwards until a block would pass the limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ome_arrow_core.plugin_api import ArgumentError

__all__ = ["Chunking", "block_limit", "merge_chunks", "plan"]

#: What ``to_dask(chunks=...)`` takes: "auto", "storage", or a byte limit (``134217728`` or ``"64MiB"``).
Chunking = Any


def block_limit(chunks: Chunking) -> int | None:
    """The byte limit of one block for ``chunks``; None for ``"storage"`` (one storage chunk per block)."""
    if isinstance(chunks, str) and chunks == "storage":
        return None
    if isinstance(chunks, str) and chunks == "auto":
        import dask

        chunks = dask.config.get("array.chunk-size")
    if isinstance(chunks, bool) or not isinstance(chunks, (int, np.integer, str)):
        raise ArgumentError(f"chunks must be 'auto', 'storage' or a byte limit such as '64MiB'; got {chunks!r}")
    if isinstance(chunks, str):
        from dask.utils import parse_bytes

        try:
            chunks = parse_bytes(chunks)
        except ValueError as exc:
            raise ArgumentError(f"chunks={chunks!r} is not a byte size such as '64MiB': {exc}") from exc
    if int(chunks) < 1:
        raise ArgumentError(f"chunks must be a positive byte limit, got {chunks!r}")
    return int(chunks)


def merge_chunks(sizes: Sequence[int], factor: int) -> tuple[int, ...]:
    """``sizes`` with every ``factor`` neighbours merged into one block (boundaries kept)."""
    f = max(1, int(factor))
    return tuple(int(sum(sizes[i : i + f])) for i in range(0, len(sizes), f))


def plan(
    inner: Sequence[Sequence[int]], itemsize: int, images: int, limit: int | None, images_per_chunk: int | None
) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...]]:
    """(images per block along the first axis, block sizes along each inner axis).

    ``inner`` holds the storage-chunk sizes of one image's selection along each axis (layout
    order). ``limit`` None keeps one storage chunk per block. ``images_per_chunk`` fixes the
    first axis (else it fills the limit once a whole image fits).
    """
    merged = [tuple(int(v) for v in sizes) for sizes in inner]
    if limit is not None:
        for ax in reversed(range(len(merged))):  # X first: a block then holds whole rows, planes...
            others = itemsize * int(np.prod([max(s) for i, s in enumerate(merged) if i != ax], dtype=np.int64))
            if others * sum(merged[ax]) <= limit:
                merged[ax] = (sum(merged[ax]),)
                continue
            merged[ax] = merge_chunks(merged[ax], max(1, limit // max(1, others * max(merged[ax]))))
            break  # this axis is still cut: merging outer axes would not give contiguous blocks
    image_bytes = itemsize * int(np.prod([sum(s) for s in merged], dtype=np.int64))
    if images_per_chunk is not None:
        step = max(1, int(images_per_chunk))
    elif limit is None:
        step = 1
    else:
        step = max(1, limit // max(1, image_bytes))
    step = min(step, max(1, images))
    outer = tuple(min(step, images - i) for i in range(0, images, step))
    return outer, tuple(merged)
