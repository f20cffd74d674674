"""The claim book that gives read tasks the ranges their worker read before (pure Python, no Ray).

Whatever the order tasks ask in, whichever workers they run in, and however often Ray
retries one, every range of a round goes to exactly one task, of the task's own size.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("ome_arrow_ray")

from ome_arrow_core import OMEArrowError
from ome_arrow_ray.claims import ClaimBook, ClaimError


@st.composite
def rounds(draw: st.DrawFn) -> list[tuple[list[int], list[tuple[int, str]]]]:
    """Rounds over the same ranges: their sizes, and the (task, worker) claims in asking order (with retries)."""
    sizes = draw(st.lists(st.sampled_from([1, 2, 4]), min_size=1, max_size=9))
    out = []
    for _ in range(draw(st.integers(1, 4))):
        order = draw(st.permutations(range(len(sizes))))
        workers = draw(st.lists(st.sampled_from("abc"), min_size=len(sizes), max_size=len(sizes)))
        retries = draw(st.lists(st.integers(0, len(sizes) - 1), max_size=3))
        out.append((sizes, [(t, w) for t, w in zip(order, workers)] + [(t, "z") for t in retries]))
    return out


@settings(max_examples=200, deadline=None)
@given(rounds())
def test_every_range_goes_to_exactly_one_task_of_its_size(plan: list[tuple[list[int], list[tuple[int, str]]]]) -> None:
    book = ClaimBook()
    keys = None
    for k, (sizes, claims) in enumerate(plan):
        keys = [f"range-{r}" for r in range(len(sizes))]
        book.open_round(f"r{k}", keys, sizes)
        given_: dict[int, int] = {}
        for task, worker in claims:
            got = book.claim(f"r{k}", task, worker)
            assert sizes[got] == sizes[task]
            assert given_.setdefault(task, got) == got  # a retried task gets its range again
        assert sorted(given_.values()) == sorted(set(given_.values()))  # no range twice
        assert len(given_) == len(sizes) and set(given_.values()) == set(range(len(sizes)))


def test_a_worker_gets_back_the_ranges_it_read_when_they_are_free() -> None:
    book = ClaimBook()
    keys, sizes = ["k0", "k1", "k2", "k3"], [8, 8, 8, 8]
    book.open_round("first", keys, sizes)
    first = {task: book.claim("first", task, worker) for task, worker in [(0, "a"), (1, "b"), (2, "b"), (3, "a")]}
    assert first == {0: 0, 1: 1, 2: 2, 3: 3}  # nobody read anything: each task its own range
    book.open_round("second", keys, sizes)
    # Ray hands the tasks to the workers the other way round this time.
    second = {task: book.claim("second", task, worker) for task, worker in [(0, "b"), (1, "a"), (2, "a"), (3, "b")]}
    assert {second[0], second[3]} == {1, 2} and {second[1], second[2]} == {0, 3}
    book.open_round("third", keys, sizes)
    # A worker new to every range takes one nobody else read... when there is one; else any free one.
    assert book.claim("third", 0, "c") == 0
    assert book.claim("third", 1, "a") in (3,)  # a's other warm range (0 is taken)


def test_a_new_worker_prefers_a_range_nobody_read() -> None:
    book = ClaimBook()
    book.open_round("r", ["k0", "k1", "k2"], [4, 4, 4])
    assert book.claim("r", 0, "a") == 0
    book.open_round("s", ["k0", "k1", "k2", "k3"], [4, 4, 4, 4])
    assert book.claim("s", 0, "b") == 1  # k0 is a's; k1 nobody's


def test_sizes_are_never_exchanged() -> None:
    book = ClaimBook()
    book.open_round("r", ["k0", "k1", "k2"], [4, 4, 3])
    assert book.claim("r", 2, "a") == 2
    book.open_round("s", ["k0", "k1", "k2"], [4, 4, 3])
    assert book.claim("s", 0, "a") in (0, 1)  # a read k2, but k2 has 3 rows, not 4
    assert book.claim("s", 2, "b") == 2


def test_unknown_rounds_and_tasks_raise() -> None:
    book = ClaimBook(max_rounds=2)
    book.open_round("r0", ["k"], [1])
    book.open_round("r1", ["k"], [1])
    book.open_round("r2", ["k"], [1])  # r0 is dropped
    with pytest.raises(ClaimError, match="does not hold") as raised:
        book.claim("r0", 0, "a")
    assert isinstance(raised.value, OMEArrowError) and isinstance(raised.value, RuntimeError)
    with pytest.raises(ClaimError, match="not one of"):
        book.claim("r2", 1, "a")
    with pytest.raises(ValueError, match="keys but"):
        book.open_round("r3", ["k", "l"], [1])
    book.close_round("r2")
    with pytest.raises(ClaimError):
        book.claim("r2", 0, "a")


def test_readers_are_remembered_for_the_most_recent_keys_only() -> None:
    book = ClaimBook(max_keys=2)
    book.open_round("r", ["k0", "k1", "k2"], [1, 1, 1])
    for task in range(3):
        book.claim("r", task, "a")
    book.open_round("s", ["k0", "k1", "k2"], [1, 1, 1])
    # k0's readers were dropped (the oldest key): to b, k0 looks unread, k1 and k2 read by a.
    assert book.claim("s", 1, "b") == 0
