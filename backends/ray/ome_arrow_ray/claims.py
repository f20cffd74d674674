"""A claim book: which read task of an execution reads which range of images (no Ray here).

A Ray worker process keeps what it opened and checked from task to task (opened files,
audited pages, kept buffers); a task that lands on a worker that never read its images pays
their first read again. Ray hands tasks to whichever worker is free, so without help the
ranges move between workers from epoch to epoch. With a book, each task of an execution
(a *round*) asks, once it runs, which range to read, and gets, in this order of preference:
an unclaimed range its worker read before, an unclaimed one no worker read before (its own
first), its own, any unclaimed one. Only ranges of the task's own size are exchanged (a
task's metadata promises its number of rows).

Every range goes to exactly one task: a task (by its index) is given one range per round,
the same one again when Ray retries it, and a range once given is never given again in that
round. A round has as many tasks as ranges, so a task always finds one left of its size.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from ome_arrow_core import OMEArrowError

__all__ = ["ClaimBook", "ClaimError", "MAX_ROUNDS", "MAX_KEYS"]

#: Rounds a book remembers (older ones are dropped; a retried task of one fails loudly).
MAX_ROUNDS = 64
#: Ranges whose readers a book remembers (least recently claimed dropped first).
MAX_KEYS = 1 << 16


class ClaimError(OMEArrowError, RuntimeError):
    """A read task asked for a range the claim book cannot give (an unknown round or task)."""


@dataclass
class _Round:
    keys: list[str]
    sizes: list[int]
    given: dict[int, int] = field(default_factory=dict)  # task -> range
    taken: set[int] = field(default_factory=set)


class ClaimBook:
    """Rounds of claims, and which workers read each range (by its key) in earlier rounds."""

    def __init__(self, max_rounds: int = MAX_ROUNDS, max_keys: int = MAX_KEYS) -> None:
        self.max_rounds, self.max_keys = int(max_rounds), int(max_keys)
        self._rounds: OrderedDict[str, _Round] = OrderedDict()
        self._readers: OrderedDict[str, set[str]] = OrderedDict()

    def open_round(self, round_id: str, keys: Sequence[str], sizes: Sequence[int]) -> None:
        """Start round ``round_id``: range ``k`` has key ``keys[k]`` and ``sizes[k]`` rows; task ``k`` owns range ``k``."""
        if len(keys) != len(sizes):
            raise ValueError(f"{len(keys)} keys but {len(sizes)} sizes")
        self._rounds[round_id] = _Round(list(keys), [int(s) for s in sizes])
        while len(self._rounds) > self.max_rounds:
            self._rounds.popitem(last=False)

    def claim(self, round_id: str, task: int, worker: str) -> int:
        """The range task ``task`` of round ``round_id``, running in ``worker``, reads."""
        got = self._rounds.get(round_id)
        if got is None:
            raise ClaimError(
                f"read task {task} asked for a range of round {round_id!r}, which this claim book does not hold "
                f"(it keeps the last {self.max_rounds} rounds); read the dataset again"
            )
        if not 0 <= task < len(got.keys):
            raise ClaimError(f"read task {task} is not one of round {round_id!r}'s {len(got.keys)} tasks")
        if task in got.given:  # Ray retried the task: the same range again
            return got.given[task]
        size = got.sizes[task]
        free = [r for r in range(len(got.keys)) if r not in got.taken and got.sizes[r] == size]
        if not free:  # cannot happen: as many tasks of each size as ranges of it, each given one
            raise ClaimError(f"round {round_id!r} has no range of {size} rows left for read task {task}")
        readers = [self._readers.get(got.keys[r], set()) for r in range(len(got.keys))]
        mine = [r for r in free if worker in readers[r]]
        unread = [r for r in free if not readers[r]]
        if mine:
            pick = task if task in mine else mine[0]
        elif unread:
            pick = task if task in unread else unread[0]
        else:
            pick = task if task in free else free[0]
        got.given[task] = pick
        got.taken.add(pick)
        key = got.keys[pick]
        self._readers.setdefault(key, set()).add(worker)
        self._readers.move_to_end(key)
        while len(self._readers) > self.max_keys:
            self._readers.popitem(last=False)
        return pick

    def close_round(self, round_id: str) -> None:
        """Forget round ``round_id`` (its readers stay remembered)."""
        self._rounds.pop(round_id, None)
