"""The CuPy backend's staging, without a GPU: the blocks a view is copied in, their split for the gather threads,
the runs of a group of views, and a group copy whose copy or synchronisation fails."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_arrow_core.plugin_api import group_offsets
from ome_arrow_cupy.export import BLOCK_BYTES, SPLIT_BYTES, block_bytes, blocks
from ome_arrow_cupy.groups import copy_runs, runs


@settings(max_examples=200, deadline=None)
@given(
    shape=st.lists(st.integers(1, 6), min_size=1, max_size=5).map(tuple),
    itemsize=st.sampled_from([1, 2, 4, 8]),
    block_bytes=st.integers(1, 400),
)
def test_blocks_tile_the_array_in_contiguous_runs(shape: tuple[int, ...], itemsize: int, block_bytes: int) -> None:
    arr = np.arange(int(np.prod(shape)), dtype=f"u{itemsize}").reshape(shape)
    parts = list(blocks(shape, itemsize, block_bytes))
    for idx in parts:
        assert arr[idx].flags.c_contiguous
        assert arr[idx].nbytes <= max(block_bytes, itemsize)
    np.testing.assert_array_equal(np.concatenate([arr[idx].ravel() for idx in parts]), arr.ravel())


def test_block_bytes_split_a_plane_for_every_gather_thread() -> None:
    from ome_arrow_cupy import export

    assert block_bytes(SPLIT_BYTES) == BLOCK_BYTES  # small views: one block
    plane = np.empty((2048, 2048), np.uint16)
    parts = list(blocks(plane.shape, plane.itemsize, block_bytes(plane.nbytes)))
    sizes = [plane[idx].nbytes for idx in parts]
    assert len(parts) == export.GATHER_THREADS  # one block per gather thread (each hand-off costs)
    assert min(sizes) >= SPLIT_BYTES and max(sizes) <= BLOCK_BYTES
    covered = np.zeros(plane.shape, np.uint8)
    for idx in parts:
        covered[idx] += 1
    assert (covered == 1).all()  # every pixel in exactly one block
    assert block_bytes(512 * 2**20) == BLOCK_BYTES  # large views: blocks of at most BLOCK_BYTES


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(0, 3000), max_size=20), parts=st.integers(0, 6))
def test_runs_cut_the_items_in_order(sizes: list[int], parts: int) -> None:
    got = runs(sizes, parts)
    assert [i for r in got for i in r] == list(range(len(sizes)))
    assert all(len(r) for r in got) and len(got) <= max(parts, 1)


class _Device(np.ndarray):
    """Device memory as the group copy sees it (``flat[span].set(host, stream=)``); the ``fail_at``-th set fails."""

    fail_at = 0
    sets = 0

    def set(self, host: np.ndarray, stream: Any) -> None:
        type(self).sets += 1
        if type(self).sets == self.fail_at:
            raise RuntimeError("the copy failed")
        self[...] = host


class _Stream:
    """A copy stream whose synchronisation fails when ``broken`` (as a CUDA stream does after a fault)."""

    def __init__(self, broken: bool) -> None:
        self.broken, self.synced = broken, 0

    def synchronize(self) -> None:
        self.synced += 1
        if self.broken:
            raise RuntimeError("cudaErrorIllegalAddress: an illegal memory access was encountered")


def _group_copy(fail_at: int, stream: _Stream) -> tuple[np.ndarray, list[np.ndarray], list[int]]:
    """Copy a group of 6 strided views in 3 runs with ``groups.copy_runs``; the device buffer and views."""
    base = np.arange(6 * 40 * 30, dtype=np.uint16).reshape(6, 40, 30)
    hosts = [base[i, ::2, 1::3] for i in range(6)]
    offsets, total = group_offsets([h.nbytes for h in hosts])
    _Device.sets, _Device.fail_at = 0, fail_at
    flat = np.zeros(total, np.uint8).view(_Device)
    parts = runs([h.nbytes for h in hosts], 3)
    assert len(parts) == 3  # the gather threads' path
    copy_runs(np.zeros(total, np.uint8), flat, hosts, offsets, parts, stream)
    return flat.view(np.ndarray), hosts, offsets


def test_a_group_copy_lands_every_view() -> None:
    stream = _Stream(broken=False)
    flat, hosts, offsets = _group_copy(0, stream)
    for h, off in zip(hosts, offsets):
        np.testing.assert_array_equal(flat[off : off + h.nbytes].view(h.dtype).reshape(h.shape), h)
    assert stream.synced == 1


def test_a_failing_synchronisation_does_not_mask_the_copy_error() -> None:
    stream = _Stream(broken=True)
    with pytest.raises(RuntimeError, match="the copy failed") as caught:
        _group_copy(2, stream)
    assert stream.synced == 1  # the copies queued were waited for
    notes = getattr(caught.value, "__notes__", [])
    assert len(notes) == 1 and "cudaErrorIllegalAddress" in notes[0]


def test_a_failing_synchronisation_raises_when_the_copies_did_not() -> None:
    with pytest.raises(RuntimeError, match="cudaErrorIllegalAddress"):
        _group_copy(0, _Stream(broken=True))
