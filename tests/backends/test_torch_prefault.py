"""Shared memory mapped in with one call before a batch is written (ome_arrow_torch.prefault), and what new
DataLoader workers deliver with it: every image once per epoch, its own pixels, damage still raising."""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ome_arrow_torch")

from torch.utils.data import DataLoader  # noqa: E402

from ome_arrow_core import OMEArrowDataset, write_dataset  # noqa: E402
from ome_arrow_core.errors import OMEArrowError  # noqa: E402
from ome_arrow_core.typed_chunk.opening import clear_cache  # noqa: E402
from ome_arrow_torch import OMEArrowTorchDataset  # noqa: E402
from ome_arrow_torch.pool import BatchPool  # noqa: E402
from ome_arrow_torch.prefault import populate  # noqa: E402
from tests.damage import chunk_page, flip_byte  # noqa: E402

pytestmark = pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")

N = 24
PAGES = 256


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _fresh_segment(pages: int = PAGES) -> np.ndarray:
    """A new shared-memory segment of ``pages`` pages, none of them mapped in this process yet."""
    storage = torch.UntypedStorage._new_shared(pages * 4096)
    return torch.empty(0, dtype=torch.uint8).set_(storage).numpy()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="MADV_POPULATE_WRITE is Linux's")
def test_populated_memory_is_written_without_a_fault_per_page() -> None:
    plain = _fresh_segment()
    before = _faults()
    plain[:] = 1
    faulted = _faults() - before
    assert faulted >= PAGES // 2  # the control: a fault per page (or close)
    seg = _fresh_segment()
    if not populate(seg.ctypes.data, seg.nbytes):
        pytest.skip("this kernel has no MADV_POPULATE_WRITE (Linux < 5.14)")
    before = _faults()
    seg[:] = 2
    assert _faults() - before < PAGES // 8
    assert (seg == 2).all() and (plain == 1).all()


def _in_child(seg: np.ndarray, present: bool | None) -> tuple[bool, int, int]:
    """In a forked child (which inherits ``seg`` unmapped): populate it (``present``; None: not at all), then write
    every page; (populated, faults while populating, faults while writing)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            before = _faults()
            ok = present is not None and populate(seg.ctypes.data, seg.nbytes, present=present)
            mid = _faults()
            seg[:] = 4
            os.write(w, f"{int(ok)} {mid - before} {_faults() - mid}".encode())
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    ok, populating, writing = (int(v) for v in os.read(r, 64).split())
    os.close(r)
    return bool(ok), populating, writing


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="MADV_POPULATE_READ is Linux's")
def test_inherited_pages_are_mapped_in_by_read_faults_and_then_written_without_a_fault_per_page() -> None:
    """A new worker's inherited slot: its pages exist, so read faults map them in (with their neighbours, far fewer
    faults than pages), writable (shared memory tracks no dirty pages): the batch written next faults no more, and
    lands in the shared pages."""
    pages = 2048  # a batch's slot (8 MiB): the child's own faults elsewhere (~70) are few beside it
    control = _fresh_segment(pages)
    control[:] = 3
    assert _in_child(control, None)[2] >= pages // 2  # the control: a fault per page (or close)
    assert (control == 4).all()
    seg = _fresh_segment(pages)
    seg[:] = 3  # the pages exist, as a slot filled by the worker before
    ok, populating, writing = _in_child(seg, True)
    if not ok:
        pytest.skip("this kernel has no MADV_POPULATE_READ (Linux < 5.14)")
    assert populating < pages // 4  # fault-around (64 KiB by default): a fault per 16 pages present
    assert writing < pages // 8
    assert (seg == 4).all()  # the child's writes are in the shared pages


def test_populate_changes_no_byte_and_refuses_nothing_it_cannot_do() -> None:
    seg = _fresh_segment()
    seg[:] = np.arange(seg.size, dtype=np.uint8)
    populate(seg.ctypes.data + 100, 5000)  # unaligned start and length
    populate(seg.ctypes.data + 7000, 9000, present=True)
    assert np.array_equal(seg, np.arange(seg.size, dtype=np.uint8))
    assert populate(seg.ctypes.data, 0) is False


def test_a_pool_maps_each_slot_in_once_and_fills_it_with_what_is_written() -> None:
    pool = BatchPool(max_slots=2)
    for k in range(4):
        x, slot = pool.empty((3, 64, 64), torch.uint16)
        assert slot is not None
        x.fill_(k)
        lent = pool.lease(x, slot)
        assert bool((lent == k).all())
        pool.flags[slot] = 0  # let go, as the main process would
    assert pool.mapped_in == {0} and pool.fresh == 1 and pool.reused == 3


def _plate(tmp_path: Path) -> tuple[Path, np.ndarray]:
    arrs = np.random.default_rng(5).integers(0, 65535, (N, 2, 24, 20), dtype=np.uint16)
    return write_dataset(list(arrs), tmp_path / "p", dim_order="CYX", progress=False), arrs


def test_new_workers_deliver_every_image_once_per_epoch_with_its_pixels(tmp_path: Path) -> None:
    """Shuffled orders, new workers every epoch (DataLoader's default): each epoch delivers each image exactly
    once, in the sampler's order, each the pixels ds[i] reads."""
    clear_cache()
    path, arrs = _plate(tmp_path)
    ds = OMEArrowDataset.scan(path)
    data = OMEArrowTorchDataset(ds)
    for epoch in range(3):
        order = np.random.default_rng(epoch).permutation(N).tolist()
        loader = DataLoader(data, batch_size=5, sampler=order, num_workers=2, multiprocessing_context="fork")
        got = torch.cat([b.clone() for b in loader]).numpy()
        assert got.shape == (N, 2, 24, 20)
        assert np.array_equal(got, arrs[order])
        for i in (order[0], order[-1]):
            assert np.array_equal(data[i].numpy(), ds[i].to_numpy()[0, :, 0])  # TCZYX


@pytest.mark.parametrize("when", ["before", "between"])
def test_damaged_pixels_raise_in_every_epochs_new_workers(tmp_path: Path, when: str) -> None:
    """A flipped byte in a chunk's page: the workers that read it raise (their checks are not skipped because the
    parent or an earlier epoch's workers opened the files), every epoch."""
    clear_cache()
    path, arrs = _plate(tmp_path)
    ds = OMEArrowDataset.scan(path)
    from tests.damage import audited

    offset, size = chunk_page(audited(path), 0)
    if when == "before":
        flip_byte(path / "chunks.parquet", offset + size - 3, 0xFF)
    data = OMEArrowTorchDataset(ds)
    loader = DataLoader(data, batch_size=4, num_workers=2, multiprocessing_context="fork")
    if when == "between":
        assert np.array_equal(torch.cat([b.clone() for b in loader]).numpy(), arrs)
        flip_byte(path / "chunks.parquet", offset + size - 3, 0xFF)
    for _ in range(2):
        with pytest.raises(OMEArrowError):
            for _b in loader:
                pass
