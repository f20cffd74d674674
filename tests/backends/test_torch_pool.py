"""Pooled shared-memory batches (ome_arrow_torch.pool): reused only once the main process lets go."""

from __future__ import annotations

import gc
import itertools
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ome_arrow_torch")

from torch.utils.data import BatchSampler, DataLoader, RandomSampler  # noqa: E402

from ome_arrow_core import write_dataset  # noqa: E402
from ome_arrow_torch import OMEArrowIterableDataset, OMEArrowTorchDataset  # noqa: E402
from ome_arrow_torch.pool import (  # noqa: E402
    MAX_SLOTS,
    BatchPool,
    PooledTensor,
    _forget_exited,
    _held_lock,
    _mapped,
    _received,
    _received_again,
    mapped_slots,
    process_start,
    received,
    release,
    running,
)

N = 22
pytestmark = pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    arrs = np.random.default_rng(1).integers(0, 65535, (N, 2, 16, 12), dtype=np.uint16)
    out = write_dataset(
        list(arrs),
        tmp_path_factory.mktemp("pool") / "plate",
        dim_order="CYX",
        metadata={"label": list(range(N))},
        progress=False,
    )
    return out, arrs


def _loader(ds: object, **kw: object) -> DataLoader:  # type: ignore[type-arg]
    return DataLoader(ds, num_workers=2, multiprocessing_context="fork", **kw)  # type: ignore[arg-type]


def _segment(x: torch.Tensor) -> int:
    """Where ``x``'s shared-memory segment is mapped in this process: one address per pooled slot."""
    return x.data_ptr()


def _mapped_again(x: torch.Tensor) -> torch.Tensor:
    """``x`` as the main process sees it: the same segment, mapped again (another storage)."""
    fd, size = x.untyped_storage()._share_fd_cpu_()
    storage = torch.UntypedStorage._new_shared_fd_cpu(fd, size)
    return torch.empty(0, dtype=x.dtype).set_(storage, 0, tuple(x.shape))


def test_a_slot_is_refilled_only_after_every_view_of_it_is_gone() -> None:
    pool = BatchPool(max_slots=2)
    x, slot = pool.empty((4, 3), torch.int16)
    assert slot == 0 and x.is_shared() and pool.fresh == 1
    lent = pool.lease(x, slot)
    assert isinstance(lent, PooledTensor) and int(pool.flags[0]) == 1
    assert type(lent + 1) is torch.Tensor and lent.data_ptr() == x.data_ptr()  # a tensor to code in the worker
    rebuild, (plain, flags, at) = lent.__reduce_ex__(2)
    assert rebuild is _received and type(plain) is torch.Tensor and at == 0
    got = _received(_mapped_again(plain), flags, at)  # what unpickling gives the main process
    got[0, 0] = 7
    assert int(x[0, 0]) == 7  # one segment, two mappings
    del lent, plain, x
    view = got[1:, 2]
    del got
    gc.collect()
    release()  # (batches of other tests may still be held: this slot's flag is what counts)
    assert int(pool.flags[0]) == 1  # a view still holds the storage
    y, other = pool.empty((4, 3), torch.int16)
    assert other == 1  # so a second buffer is made
    del view
    gc.collect()
    release()
    assert int(pool.flags[0]) == 0
    z, again = pool.empty((2, 3), torch.int16)  # a smaller batch fits the freed buffer
    assert again == 0 and pool.reused == 1 and tuple(z.shape) == (2, 3)
    assert pool.lease(y, None) is y  # unpooled tensors go as they are


def test_a_full_pool_falls_back_to_fresh_segments() -> None:
    pool = BatchPool(max_slots=1, max_bytes=1 << 20)
    a, sa = pool.empty((8,), torch.float32)
    pool.lease(a, sa)
    b, sb = pool.empty((8,), torch.float32)  # slot 0 is busy, the pool is full
    big, sbig = BatchPool(max_bytes=16).empty((8,), torch.float32)  # over the byte budget
    assert sa == 0 and sb is None and sbig is None and b.is_shared() and big.is_shared()


def test_held_batches_are_never_overwritten(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    ds = OMEArrowIterableDataset(path, target="label", batch_size=1, shuffle=True, seed=3)
    loader = _loader(ds, batch_size=None, persistent_workers=True)
    kept = []
    for epoch in range(3):  # 66 batches, all held: far more than the pools' slots
        ds.set_epoch(epoch)
        kept += list(loader)
    assert len(kept) == 3 * N
    for xb, yb in kept:
        np.testing.assert_array_equal(xb[0].numpy(), arrs[int(yb[0])])


def test_views_outliving_their_batch_keep_their_values(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    ds = OMEArrowIterableDataset(path, target="label", batch_size=2, shuffle=True, seed=5)
    loader = _loader(ds, batch_size=None, persistent_workers=True)
    views = []
    for epoch in range(4):
        ds.set_epoch(epoch)
        for xb, yb in loader:
            views.append((xb[1, 0, 3:9], int(yb[1])))  # the batch itself is dropped
    for view, label in views:
        np.testing.assert_array_equal(view.numpy(), arrs[label][0, 3:9])


def test_freed_batches_reuse_their_shared_memory(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    ds = OMEArrowIterableDataset(path, target="label", batch_size=1)
    loader = _loader(ds, batch_size=None, persistent_workers=True)
    segments, count = set(), 0
    for _ in range(3):
        for xb, yb in loader:
            np.testing.assert_array_equal(xb[0].numpy(), arrs[int(yb[0])])
            segments.add(_segment(xb))
            count += 1
    # a fresh segment per batch would give 66; each worker keeps at most MAX_SLOTS
    assert count == 3 * N and len(segments) <= 2 * MAX_SLOTS


def test_map_style_batches_through_a_batch_sampler(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    ds = OMEArrowTorchDataset(path, target="label", c=1, layout="YX")
    xb, yb = ds[[4, 0, 9]]
    assert xb.dtype == torch.uint16 and tuple(xb.shape) == (3, 16, 12) and yb.tolist() == [4, 0, 9]
    np.testing.assert_array_equal(xb.numpy(), arrs[[4, 0, 9], 1])
    sampler = BatchSampler(RandomSampler(ds, generator=torch.Generator().manual_seed(2)), 5, drop_last=False)
    seen = []
    for xb, yb in _loader(ds, sampler=sampler, batch_size=None, persistent_workers=True):
        assert xb.dtype == torch.uint16
        np.testing.assert_array_equal(xb.numpy(), arrs[yb.numpy(), 1])
        seen += yb.tolist()
    assert sorted(seen) == list(range(N))
    scaled = OMEArrowTorchDataset(path, transform=lambda x: x.float())
    assert scaled[torch.tensor([1, 2])].dtype == torch.float32  # transforms: collated samples


def _scaled(batch: list[object]) -> tuple[torch.Tensor, torch.Tensor, bool]:
    x, y = batch
    assert isinstance(x, torch.Tensor)
    return x.float() * 2, y, isinstance(x, PooledTensor)  # type: ignore[return-value]


def _first_channel(batch: list[object]) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = batch
    return x[:, 0], y  # type: ignore[index, return-value]


def test_code_in_the_worker_sees_a_tensor(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    ds = OMEArrowIterableDataset(path, target="label", batch_size=3)
    pooled = []
    for xb, yb, lent in _loader(ds, batch_size=None, collate_fn=_scaled):
        assert xb.dtype == torch.float32 and type(xb) is torch.Tensor
        np.testing.assert_array_equal(xb.numpy(), arrs[yb.numpy()].astype(np.float32) * 2)
        pooled.append(lent)
    assert any(pooled)
    # a view taken in the worker reaches the main process untracked: its slot is never refilled
    views = list(_loader(ds, batch_size=None, collate_fn=_first_channel, persistent_workers=True))
    views += list(_loader(ds, batch_size=None, collate_fn=_first_channel))
    for xb, yb in views:
        np.testing.assert_array_equal(xb.numpy(), arrs[yb.numpy(), 0])


def _wait_until_exited(pids: set[int], limit_s: float = 300.0) -> None:
    """Wait (reaping finished children) until none of ``pids`` is a live process; fail after ``limit_s``."""
    deadline = time.monotonic() + limit_s
    while True:
        multiprocessing.active_children()  # joins (reaps) children that have finished
        alive = set()
        for pid in pids:
            try:
                os.kill(pid, 0)
                alive.add(pid)
            except ProcessLookupError:
                pass
        if not alive:
            return
        assert time.monotonic() < deadline, f"DataLoader workers {sorted(alive)} still alive after {limit_s} s"
        time.sleep(0.05)


def test_each_slot_is_sent_once_and_later_batches_reuse_its_mapping(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    ds = OMEArrowTorchDataset(path, target="label")
    loader = _loader(ds, batch_size=2, persistent_workers=True, shuffle=True)
    seen, most, before = [], 0, dict(received)
    for _ in range(3):  # 33 batches from two workers of at most MAX_SLOTS slots each
        for xb, yb in loader:
            np.testing.assert_array_equal(xb.numpy(), arrs[yb.numpy()])
            seen += yb.tolist()
            most = max(most, mapped_slots())
    assert sorted(seen) == sorted(list(range(N)) * 3)
    assert 1 <= most <= 2 * MAX_SLOTS  # segments sent (and mapped here) once per slot, not per batch
    sent = received["segments"] - before["segments"]
    assert 1 <= sent <= 2 * MAX_SLOTS and received["on_kept"] - before["on_kept"] == 33  # every batch on one
    mine = set(_mapped)
    pids = {_mapped[token][0] for token in mine}
    del loader, xb, yb
    gc.collect()  # the workers exit; their segments are dropped when the next pool sends one
    _wait_until_exited(pids)  # (on a loaded machine a worker may take a while to go, and must be reaped)
    again = _loader(OMEArrowTorchDataset(path), batch_size=3)
    assert sum(len(x) for x in again) == N
    assert not mine & set(_mapped)


def test_a_batch_of_a_slot_never_received_is_refused() -> None:
    with pytest.raises(RuntimeError, match="never received"):
        _received_again("no-such-pool", 0, (2, 3), torch.uint16)


def _zombie() -> subprocess.Popen[bytes]:
    """A child process that has exited and is not reaped yet (waited for with WNOWAIT: it stays a zombie)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    return child


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc (Linux)")
def test_a_zombie_worker_counts_as_exited_and_its_segments_are_dropped() -> None:
    child = _zombie()
    try:
        with open(f"/proc/{child.pid}/stat") as f:
            assert f.read().rpartition(")")[2].split()[0] == "Z"
        os.kill(child.pid, 0)  # signal 0 still reaches a zombie: what the pool used to rely on
        assert not running(child.pid)
        token = "zombie-worker-test"
        flags = torch.zeros(1, dtype=torch.uint8)
        with _held_lock:
            _mapped[token] = (child.pid, flags, {0: np.zeros(8, dtype=np.uint8)}, None)
            _forget_exited()
            assert token not in _mapped
    finally:
        child.wait()


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc (Linux)")
def test_a_live_worker_is_kept_and_a_reused_pid_is_not() -> None:
    me, started = os.getpid(), process_start(os.getpid())
    assert started is not None
    assert running(me) and running(me, started)
    assert not running(me, started + 1)  # the number now names a process started at another time
    token = "live-worker-test"
    with _held_lock:
        _mapped[token] = (me, torch.zeros(1, dtype=torch.uint8), {0: np.zeros(8, dtype=np.uint8)}, started)
        try:
            _forget_exited()
            assert token in _mapped
        finally:
            _mapped.pop(token, None)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: gone from /proc
    assert not running(child.pid)


# -- new workers every epoch (DataLoader's default persistent_workers=False) ------------------------------------
def _epoch_batches(loader: DataLoader) -> list[tuple[torch.Tensor, torch.Tensor]]:  # type: ignore[type-arg]
    return [(xb, yb) for xb, yb in loader]


def _check(batches: list[tuple[torch.Tensor, torch.Tensor]], arrs: np.ndarray) -> None:
    for xb, yb in batches:
        np.testing.assert_array_equal(xb.numpy(), arrs[yb.numpy()])
    assert sorted(i for _, yb in batches for i in yb.tolist()) == list(range(N))


def test_new_workers_adopt_the_pools_their_predecessors_left(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    loader = _loader(OMEArrowTorchDataset(path, target="label"), batch_size=2)
    _check(_epoch_batches(loader), arrs)
    sent, tokens = received["segments"], set(_mapped)
    for _ in range(2):
        _check(_epoch_batches(loader), arrs)  # each batch freed before the next epoch's workers start
    assert received["segments"] == sent  # no segment made or sent again: the same pools, refilled
    assert tokens <= set(_mapped)


def test_batches_held_across_epochs_are_never_overwritten(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    loader = _loader(OMEArrowTorchDataset(path, target="label"), batch_size=2)
    kept = _epoch_batches(loader)  # every slot of the first workers still held here
    for _ in range(2):
        _check(_epoch_batches(loader), arrs)  # the adopters fill only freed slots (or fresh segments)
    _check(kept, arrs)


def test_two_loaders_of_one_dataset_never_fill_one_pool_together(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    ds = OMEArrowTorchDataset(path, target="label")
    first, second = _loader(ds, batch_size=2), _loader(ds, batch_size=3)
    _check(_epoch_batches(first), arrs)  # pools of worker 0 and 1 of this dataset, left for adoption
    for _ in range(2):
        a: list[tuple[torch.Tensor, torch.Tensor]] = []
        b: list[tuple[torch.Tensor, torch.Tensor]] = []
        its = [iter(first), iter(second)]  # both loaders' workers live at once, each wanting the same pools
        for got in itertools.zip_longest(*its):
            for into, item in zip((a, b), got):
                if item is not None:
                    into.append(item)
        _check(a, arrs)  # held to the end: a slot filled by two workers would show here
        _check(b, arrs)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc (Linux)")
def test_a_pool_whose_adopter_died_holding_its_lock_is_dropped_at_the_second_look() -> None:
    from ome_arrow_torch.pool import _Claim, _claims

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # an exited process: the pool's first filler, then its adopter
    token, claim = "dead-adopter-test", _Claim(("key", 0))
    assert claim.lock.acquire(block=False)  # taken by the adopter, never released (it was killed)
    claim.cell[0], claim.cell[1] = child.pid, -1
    with _held_lock:
        _mapped[token] = (child.pid, torch.zeros(1, dtype=torch.uint8), {0: np.zeros(8, dtype=np.uint8)}, None)
        _claims[token] = claim
        try:
            _forget_exited()
            assert token in _mapped  # maybe a live adopter that has not said so yet
            _forget_exited()
            assert token not in _mapped and token not in _claims
        finally:
            _mapped.pop(token, None)
            _claims.pop(token, None)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc (Linux)")
def test_a_pool_adopted_by_a_live_worker_is_kept() -> None:
    from ome_arrow_torch.pool import _Claim, _claims

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # the pool's first filler, exited
    token, claim = "live-adopter-test", _Claim(("key", 0))
    assert claim.lock.acquire(block=False)
    claim.cell[0], claim.cell[1] = os.getpid(), process_start(os.getpid()) or -1  # the adopter: this process
    with _held_lock:
        _mapped[token] = (child.pid, torch.zeros(1, dtype=torch.uint8), {0: np.zeros(8, dtype=np.uint8)}, None)
        _claims[token] = claim
        try:
            for _ in range(3):
                _forget_exited()
                assert token in _mapped
        finally:
            _mapped.pop(token, None)
            _claims.pop(token, None)
