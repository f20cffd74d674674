"""Locks of the opening caches across a fork: a child forked while another thread of its parent held one (a
DataLoader started while a thread opened a dataset) gets locks of its own and opens the dataset, instead of waiting
for ever on a lock no thread of it will release."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from ome_arrow_core import OMEArrowDataset, thread_pools, write_dataset
from ome_arrow_core.typed_chunk import (
    footers,
    group_records,
    group_sums,
    image_rows,
    kept_plans,
    manifest_cache,
    opening,
    write_threads,
)

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="fork"),
    # JAX, when another test loaded it, warns at every fork; the child here only opens a dataset
    pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning"),
]

N = 9


def _image(i: int) -> np.ndarray:
    return ((np.arange(2 * 4 * 5, dtype=np.int64) + 7 * i) % 4096).astype(np.uint16).reshape(2, 4, 5)


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(
        (_image(i) for i in range(N)),
        tmp_path_factory.mktemp("fork") / "plate",
        dim_order="ZYX",
        metadata=[{"well": f"W{i % 3}"} for i in range(N)],
        images_per_group=4,
        progress=False,
    )


@contextmanager
def _held(get_lock: Callable[[], threading.Lock]) -> Iterator[None]:
    """``get_lock()`` held by another thread until the block ends."""
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with get_lock():
            taken.set()
            release.wait(60)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert taken.wait(30)
    try:
        yield
    finally:
        release.set()
        thread.join(30)


def _child_status(work: Callable[[], None]) -> int:
    """Fork; the child runs ``work`` (killed by SIGALRM after 20 s: a lock it waits on for ever) and exits 0 when it
    returned; the child's exit status (a signal's number as its negative)."""
    pid = os.fork()
    if pid == 0:  # the child: never back into pytest
        code = 1
        try:
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(20)
            work()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _last_image(plate: Path) -> Callable[[], None]:
    def work() -> None:
        got = OMEArrowDataset.scan(plate)[N - 1].to_numpy()
        assert np.array_equal(got.reshape(-1), _image(N - 1).reshape(-1))

    return work


@pytest.mark.parametrize(
    "get_lock",
    [
        lambda: opening._cache_lock,
        lambda: footers._lock,
        lambda: group_sums._lock,
        lambda: group_records._lock,
        lambda: manifest_cache._lock,
        lambda: image_rows._lock,
        lambda: kept_plans._PLANS_LOCK,
    ],
    ids=["opening", "footers", "group_sums", "group_records", "manifest_cache", "image_rows", "kept_plans"],
)
@pytest.mark.parametrize("opened_before", [False, True], ids=["fresh", "inherited"])
def test_a_child_forked_while_a_lock_is_held_opens_the_dataset(
    plate: Path, get_lock: Callable[[], threading.Lock], opened_before: bool
) -> None:
    opening.clear_cache()
    if opened_before:  # the child takes over the parent's opened dataset (its kept footers too)
        OMEArrowDataset.scan(plate)[0].to_numpy()
    with _held(get_lock):
        status = _child_status(_last_image(plate))
    assert status == 0, f"the child exited with {status} (-{int(signal.SIGALRM)}: it waited on the parent's lock)"
    OMEArrowDataset.scan(plate)[N - 1].to_numpy()  # the parent's lock is released: it opens as before


def test_a_child_forked_while_a_kept_table_is_locked_reads_it(plate: Path) -> None:
    opening.clear_cache()
    OMEArrowDataset.scan(plate)[0].to_numpy()
    kept = list(footers._by_group.values())
    assert kept, "the plate's tables are read through one-group footers"
    with _held(lambda: kept[0]._lock):
        status = _child_status(_last_image(plate))
    assert status == 0, f"the child exited with {status}"


def test_a_child_forked_while_the_write_threads_lock_is_held_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DataLoader-style child forked while another thread held the thread pools' lock (the write pool's) makes its
    own and writes."""
    monkeypatch.setattr(write_threads, "MIN_BYTES", 0)  # the child's write takes the pool, and so its lock
    images = [_image(i) for i in range(N)]

    def work() -> None:
        write_dataset(images, tmp_path / "child", dim_order="ZYX", progress=False)

    with _held(lambda: thread_pools._lock):
        status = _child_status(work)
    assert status == 0, f"the child exited with {status} (-{int(signal.SIGALRM)}: it waited on the parent's lock)"
    ds = OMEArrowDataset.scan(tmp_path / "child")
    for i in range(N):
        np.testing.assert_array_equal(ds[i].to_numpy()[0, 0], images[i])
