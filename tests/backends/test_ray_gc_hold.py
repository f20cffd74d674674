"""Read tasks hold Python's garbage collector off while they read pixels, and give it back as it was.

Run in this process (no Ray cluster): a read task is a plain callable.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ray.data")
pytest.importorskip("ome_arrow_ray")

from pixels import random_pixels

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_ray import OMEArrowDatasource
from ome_arrow_ray.read_task import gc_held

VIEW = {"t": None, "z": None, "c": None, "roi": None, "layout": None, "channel_policy": "error"}
N = 96
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")


@pytest.fixture
def gc_on() -> Iterator[None]:
    """The collector on for the test (as Python starts), back as it was after it."""
    was = gc.isenabled()
    gc.enable()
    yield
    (gc.enable if was else gc.disable)()  # a test that switched it off leaves it as it found it


class Collections:
    """Generations of the automatic collections that start, in any thread, while :meth:`watching` is open."""

    def __init__(self) -> None:
        self.seen: list[int] = []
        self._open = False

    @contextmanager
    def watching(self) -> Iterator[list[int]]:
        self.seen = []
        self._open = True
        try:
            yield self.seen
        finally:
            self._open = False

    def note(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and self._open:
            self.seen.append(int(info["generation"]))


@pytest.fixture
def collections() -> Iterator[Collections]:
    """The automatic collections of a window of the test (not those other threads start outside it: Ray's
    threads of earlier tests, still in this process, allocate too)."""
    recorder = Collections()
    gc.callbacks.append(recorder.note)
    yield recorder
    gc.callbacks.remove(recorder.note)


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    arrs = np.stack([random_pixels((2, 8, 8), seed=i) for i in range(N)])
    out = write_dataset(
        list(arrs),
        tmp_path_factory.mktemp("raygc") / "plate",
        dim_order="CYX",
        metadata={"label": list(range(N))},
        progress=False,
    )
    return out, arrs


def test_held_and_given_back_as_it_was(gc_on: None) -> None:
    with gc_held():
        assert not gc.isenabled()
        with gc_held():  # nested: still off, and still off after the inner one leaves
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_held():  # an error in the read gives it back too
        raise RuntimeError("read failed")
    assert gc.isenabled()
    gc.disable()  # off before: stays off
    with gc_held():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_two_threads_hold_it_until_the_last_leaves(gc_on: None) -> None:
    entered, release = threading.Barrier(2), threading.Event()
    seen: list[bool] = []

    def other() -> None:
        with gc_held():
            entered.wait()
            release.wait()

    t = threading.Thread(target=other)
    t.start()
    with gc_held():
        entered.wait()
    seen.append(gc.isenabled())  # this thread left, the other still reads
    release.set()
    t.join()
    assert seen == [False] and gc.isenabled()


def test_a_read_task_reads_without_automatic_collections(
    gc_on: None, collections: Collections, plate: tuple[Path, np.ndarray]
) -> None:
    path, arrs = plate
    ds = OMEArrowDataset.scan(path)
    (task,) = OMEArrowDatasource(ds, columns=["label"], image_column="image", view=VIEW).get_read_tasks(1)
    read = task.read_fn
    threshold = gc.get_threshold()
    gc.set_threshold(50, 5, 5)  # a young collection every 50 net allocations: a read of N images starts several
    try:
        _read_without_collections(ds, read, collections, arrs)
    finally:
        gc.set_threshold(*threshold)
    blocks = list(task())  # the whole task: the same pixels, the collector on again after it
    np.testing.assert_array_equal(
        np.concatenate([c.to_numpy() for b in blocks for c in b.column("image").chunks]), arrs
    )
    assert gc.isenabled()


def _read_without_collections(ds: Any, read: Any, collections: Collections, arrs: np.ndarray) -> None:
    for _ in range(5):  # the control: the same read without the hold is interrupted by collections
        gc.collect()
        with collections.watching() as seen:
            ds.read(range(N))
        if len(seen) > 1:
            break
    assert len(seen) > 1, f"the control read started {seen} collections; use a larger plate"
    inner = read._pixels
    watched: list[list[int]] = []

    def read_watched(a: int, b: int) -> np.ndarray:  # the read inside pixels' hold, watched
        with collections.watching() as seen:
            watched.append(seen)
            return inner(a, b)

    read._pixels = read_watched
    for _ in range(3):
        gc.collect()
        pixels = read.pixels(0, N)
        assert watched[-1] == [] and gc.isenabled()  # none during the read; the collector on again after it
        np.testing.assert_array_equal(pixels, arrs)
    read._pixels = inner
