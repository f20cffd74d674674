"""The write threads (typed_chunk.write_threads): parts cover the range once, in order; errors reach the caller;
a forked child gets a pool of its own. The bytes they produce are checked where they are used (test_direct_chunks:
page CRCs against pyarrow's check, chunk checksums by reading back)."""

from __future__ import annotations

import os
import select
import signal
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ome_arrow_core.typed_chunk import write_threads
from ome_arrow_core.typed_chunk.write_threads import start_parts


@given(n=st.integers(0, 50), nbytes=st.sampled_from([0, write_threads.MIN_BYTES - 1, write_threads.MIN_BYTES, 1 << 40]))
def test_parts_cover_the_range_once_in_order(n: int, nbytes: int) -> None:
    seen: list[tuple[int, int, str]] = []

    def work(a: int, b: int) -> list[int]:
        seen.append((a, b, threading.current_thread().name))
        return list(range(a, b))

    got = start_parts(n, nbytes, work)()
    assert [i for part in got for i in part] == list(range(n))
    big = nbytes >= write_threads.MIN_BYTES
    assert len(got) == (min(write_threads.THREADS, n) if big and min(write_threads.THREADS, n) > 1 else 1)
    if len(got) > 1:
        assert all(name.startswith("ome-arrow-write") for _, _, name in seen)
    else:
        assert seen == [(0, n, threading.current_thread().name)]  # small work stays in the calling thread


def test_a_parts_error_reaches_the_caller() -> None:
    def work(a: int, b: int) -> int:
        if a > 0:
            raise ValueError(f"part {a}..{b} failed")
        return b - a

    wait = start_parts(10, 1 << 40, work)
    if write_threads.THREADS == 1:
        pytest.skip("one thread: a single part, which starts at 0")
    with pytest.raises(ValueError, match="failed"):
        wait()


@pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_forked_child_makes_its_own_pool() -> None:
    start_parts(8, 1 << 40, lambda a, b: b - a)()  # the parent's pool exists
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a pool inherited from the parent would have no threads and hang
        try:
            total = sum(start_parts(8, 1 << 40, lambda a, b: b - a)())
            os.write(w, str(total).encode())
        finally:
            os._exit(0)
    os.close(w)
    ready, _, _ = select.select([r], [], [], 60)
    if not ready:  # a child waiting on a pool it inherited hangs: fail rather than hang the suite
        os.kill(pid, signal.SIGKILL)
    got = os.read(r, 100) if ready else b""
    os.close(r)
    os.waitpid(pid, 0)
    assert got == b"8"
