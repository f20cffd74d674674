"""The core's ``gc_held`` (``plugin_api.gc_held``), which the torch and Ray backends share: one count of holders
per process, and a forked child that holds nothing and makes its own lock. Without torch or Ray installed."""

from __future__ import annotations

import gc
import os
import sys
import threading

import pytest

from ome_arrow_core import gc_hold, plugin_api
from ome_arrow_core.gc_hold import gc_held


@pytest.fixture(autouse=True)
def collector_on() -> object:
    was = gc.isenabled()
    gc.enable()
    yield None
    if not was:
        gc.disable()


def test_the_door_gives_the_one_hold() -> None:
    assert plugin_api.gc_held is gc_held


def test_holds_of_two_backends_give_it_back_once_both_left() -> None:
    """A DataLoader worker's batch and a Ray read in one process: the second holder must not save "off" as the
    state to restore, nor the first switch it on while the second still reads."""
    torch_in, ray_in, torch_out, ray_out = (threading.Event() for _ in range(4))

    def reader(entered: threading.Event, leave: threading.Event) -> None:
        with gc_held():
            entered.set()
            leave.wait(10)

    first = threading.Thread(target=reader, args=(torch_in, torch_out))
    second = threading.Thread(target=reader, args=(ray_in, ray_out))
    first.start()
    torch_in.wait(10)
    second.start()
    ray_in.wait(10)
    torch_out.set()
    first.join(10)
    on_after_the_first = gc.isenabled()
    ray_out.set()
    second.join(10)
    assert not on_after_the_first and gc.isenabled() and gc_hold._holders == 0


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="fork")
@pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_child_forked_while_a_thread_holds_its_lock_renews_it() -> None:
    """The parent's thread holds the lock itself at the fork: a child with the inherited lock would hang."""
    read, write = os.pipe()
    with gc_hold._lock:  # as a thread entering or leaving a hold does
        pid = os.fork()
        if pid == 0:
            ok = gc_hold._lock.acquire(timeout=2)  # its own lock, free
            if ok:
                gc_hold._lock.release()
                with gc_held():
                    ok = not gc.isenabled()
                ok = ok and gc.isenabled()
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
    os.close(write)
    got = os.read(read, 1)
    os.waitpid(pid, 0)
    assert got == b"1"
