"""``gc_held`` as the torch backend holds it (the core's, ``ome_arrow_core.gc_hold``): automatic collection off
while any holder is inside, back as it was when the last leaves, and a forked child (a DataLoader worker) never
inherits a hold of its parent's threads."""

from __future__ import annotations

import gc
import os
import sys
import threading

import pytest

pytest.importorskip("torch")
pytest.importorskip("ome_arrow_torch")

from ome_arrow_core import gc_hold
from ome_arrow_torch import samples

gc_held = samples.gc_held  # what a worker's batch read holds


def test_collection_is_off_inside_and_back_after() -> None:
    assert gc.isenabled()
    with gc_held():
        assert not gc.isenabled()
        with gc_held():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer holder is still inside
    assert gc.isenabled()


def test_a_collector_switched_off_before_stays_off() -> None:
    gc.disable()
    try:
        with gc_held():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_it_is_back_after_an_exception() -> None:
    with pytest.raises(KeyError), gc_held():
        raise KeyError("x")
    assert gc.isenabled() and gc_hold._holders == 0


def test_the_last_of_several_threads_switches_it_back_on() -> None:
    inside, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with gc_held():
            inside.set()
            leave.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    inside.wait(10)
    with gc_held():
        pass
    assert not gc.isenabled()  # the thread still holds it
    leave.set()
    t.join(10)
    assert gc.isenabled()


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="fork")
@pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_child_forked_while_a_thread_holds_it_collects_and_can_hold() -> None:
    inside, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with gc_held():
            inside.set()
            leave.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    inside.wait(10)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the holding thread is not here
        ok = gc.isenabled() and gc_hold._holders == 0
        with gc_held():
            ok = ok and not gc.isenabled()
        ok = ok and gc.isenabled()
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    got = os.read(read, 1)
    os.waitpid(pid, 0)
    leave.set()
    t.join(10)
    assert got == b"1"
    assert gc.isenabled()
