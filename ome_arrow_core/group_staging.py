"""A stream group staged for one transfer to a device: its views' bytes packed into one host buffer.

``Exporter.export_many`` receives the views of one group of a device stream (up to 64 tiles, 8 MiB).
Exported one by one, each tile pays its own staging, copy and synchronisation; packed, the group is one
copy, and each result is the part of one device buffer at its view's offset. The layout is one per
process for every backend: each view starts at a multiple of :data:`GROUP_ALIGN` bytes (CuPy's allocation
alignment; a multiple of every itemsize), and views are gathered in C order whatever their strides.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np

__all__ = ["GROUP_ALIGN", "group_offsets", "gather_group"]

#: Each view starts at a multiple of this many bytes in a group's buffers.
GROUP_ALIGN: Final[int] = 256


def group_offsets(sizes: Sequence[int]) -> tuple[list[int], int]:
    """Byte offset of each of ``sizes`` in one buffer, each aligned to :data:`GROUP_ALIGN`; and the buffer's size."""
    offsets, end = [], 0
    for n in sizes:
        start = -(-end // GROUP_ALIGN) * GROUP_ALIGN
        offsets.append(start)
        end = start + n
    return offsets, end


def gather_group(staging: np.ndarray, hosts: Sequence[np.ndarray], offsets: Sequence[int]) -> None:
    """Copy each of ``hosts`` (any strides) in C order into the bytes ``staging`` (uint8) holds at its offset."""
    for host, off in zip(hosts, offsets, strict=True):
        dst = staging[off : off + host.nbytes].view(host.dtype).reshape(host.shape)
        np.copyto(dst, host, casting="no")
