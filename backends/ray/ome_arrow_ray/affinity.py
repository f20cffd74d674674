"""Worker affinity for read tasks: each task reads the range its worker read before, when it can.

The rounds of claims are kept by one :class:`~.claims.ClaimBook` per Ray job, in a small named
actor that takes no CPU (made on first use; it ends with the job). The driver opens a round
per execution (``get_read_tasks``) and ships every range's read in the object store once; a
task asks the book which range to read and reads it (its own, shipped with it, or one fetched
from the object store once per round and worker process). A failure to reach the book raises:
a task never falls back to guessing, which could read a range twice and another never.
Measured on the loading benchmark's plate (2,000 images, 4 read tasks, 2 workers): a read task
that lands on a worker new to its images cost 0.3-0.6 s of CPU, a warm one 0.05-0.09 s.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from ome_arrow_core import OMEArrowDataset

from .claims import ClaimBook, ClaimError
from .read_task import ReadImages

__all__ = ["BOOK_NAME", "KEPT_ROUNDS", "claim_book", "range_key", "ClaimedRead", "open_round"]

#: Name of the job's claim book actor.
BOOK_NAME = "ome_arrow_ray.claim_book"
#: Rounds whose reads the driver keeps in the object store (a task of an older round fails loudly).
KEPT_ROUNDS = 32

_books: dict[str, Any] = {}  # job id -> claim book handle
_books_lock = threading.Lock()
_shipped: OrderedDict[str, Any] = OrderedDict()  # round -> every range's read in the object store (driver)
_fetched: dict[str, list[ReadImages]] = {}  # round -> every range's read, fetched once per worker process
_fetched_lock = threading.Lock()


def claim_book() -> Any:
    """The job's claim book actor (made on first use, or found by name).

    This process keeps a handle for each job: Ray ends an actor once no handle to it is left,
    and read tasks' handles travel pickled, where Ray does not count them.
    """
    import ray

    job = ray.get_runtime_context().get_job_id()
    with _books_lock:
        if job not in _books:
            actor = ray.remote(num_cpus=0, max_restarts=0)(ClaimBook)
            _books.clear()  # handles of earlier jobs (ray.shutdown, then ray.init again) are dead
            _books[job] = actor.options(name=BOOK_NAME, get_if_exists=True).remote()
        return _books[job]


def range_key(ds: OMEArrowDataset, part: np.ndarray, plan: str) -> str:
    """A key for the images of ``ds`` at ``part`` (their files, rows and order) read with ``plan``.

    Equal keys mean the same images, so a worker that read one range read the other's. (Two
    different ranges that collided would cost speed, never a wrong pixel: the key only picks a
    worker.)
    """
    first, last = ds.locate(int(part[0])), ds.locate(int(part[-1]))
    digest = hashlib.blake2b(np.ascontiguousarray(part, dtype=np.int64).tobytes(), digest_size=16)
    digest.update(plan.encode())
    return f"{first.path}:{first.row}:{last.path}:{last.row}:{len(part)}:{digest.hexdigest()}"


def open_round(book: Any, keys: Sequence[str], reads: Sequence[ReadImages]) -> tuple[str, Any]:
    """A new round in ``book`` for ranges of ``keys`` read by ``reads``: its id, and ``reads`` in the object store.

    This process keeps the last :data:`KEPT_ROUNDS` rounds' objects alive (the tasks carry
    their reference pickled, where Ray does not count it).
    """
    import ray

    round_id = uuid.uuid4().hex
    ray.get(book.open_round.remote(round_id, list(keys), [len(r.dataset) for r in reads]))  # before any task asks
    every = ray.put(list(reads))
    with _books_lock:
        _shipped[round_id] = every
        while len(_shipped) > KEPT_ROUNDS:
            _shipped.popitem(last=False)
    return round_id, every


class ClaimedRead:
    """Read task ``index`` of round ``round_id``: the range the book gives it, read in this worker."""

    def __init__(self, book: Any, round_id: str, index: int, own: ReadImages, every: Any) -> None:
        self.book, self.round_id, self.index, self.own, self.every = book, round_id, index, own, every

    def __call__(self) -> Iterator[pa.Table]:
        import ray

        worker = ray.get_runtime_context().get_worker_id()
        try:
            pick = ray.get(self.book.claim.remote(self.round_id, self.index, worker))
        except ray.exceptions.RayActorError as e:
            raise ClaimError(
                f"read task {self.index} could not reach this job's claim book ({e.__class__.__name__}); "
                "read the dataset again, or pass affinity=False to read_dataset"
            ) from e
        yield from (self.own if pick == self.index else self._every()[pick])()

    def _every(self) -> list[ReadImages]:
        import ray

        with _fetched_lock:
            if self.round_id not in _fetched:
                _fetched.clear()  # one round's reads at a time: rounds follow one another
                try:
                    _fetched[self.round_id] = ray.get(self.every)
                except ray.exceptions.RayError as e:
                    raise ClaimError(
                        f"read task {self.index} could not fetch its round's reads ({e.__class__.__name__}): the "
                        f"driver keeps the last {KEPT_ROUNDS} rounds; read the dataset again, or pass affinity=False"
                    ) from e
            return _fetched[self.round_id]
