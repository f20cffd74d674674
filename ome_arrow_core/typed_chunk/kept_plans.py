"""The read plans one image's source keeps: a box read a second time is planned, the last few plans kept.

A :class:`~.source.DatasetSource` remembers the last :data:`SEEN_KEPT` boxes read once (by their TZCYX
ranges, :func:`~.box_plans.box_key`); a box read again gets a plan (:mod:`.box_plans`, or a
:class:`~.whole_chunks.WholeChunk`), and the last :data:`PLANS_KEPT` plans are kept, of at most
:data:`~.box_plans.PLAN_CHUNKS` chunks together. A box read once costs no plan.

The sources of one image of one opened dataset share these (:func:`plans_of`): an opened dataset stands for one
version of the files (its stamp is taken on every open, see ``opening``), a plan holds where chunks lie in them and
every read by it reads and checks the bytes again, so an image opened anew (``OMEArrow.scan(path)`` and one crop,
again and again) reads a box seen before by its plan. The last :data:`IMAGES_KEPT` images planned keep theirs.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING

from ..fork_locks import fork_safe_lock
from .box_plans import PLAN_CHUNKS, BoxPlan
from .whole_chunks import WholeChunk, chunks_of

if TYPE_CHECKING:
    from .opened import OpenedDataset

__all__ = ["IMAGES_KEPT", "KeptPlans", "PLANS_KEPT", "SEEN_KEPT", "plans_of"]

#: Box plans each source keeps (the last boxes read), of at most PLAN_CHUNKS chunks together (~0.5 KiB each).
PLANS_KEPT = 16
#: Boxes read once that a source remembers (a box read again is planned).
SEEN_KEPT = 64
#: Images whose plans are kept for the sources opened on them later, in all (a plate read image by image, or many
#: datasets, keep no more than these: at most IMAGES_KEPT x PLAN_CHUNKS chunks' plans).
IMAGES_KEPT = 8
#: Guards every KeptPlans and _MADE; a forked child makes its own (every new source of an image takes it).
_PLANS_LOCK = fork_safe_lock(globals(), "_PLANS_LOCK")
#: The images whose plans are shared, in the order they were made: (id of the opened dataset, image row) ->
#: (a weak reference to it, the row). Its oldest beyond IMAGES_KEPT drop their plans.
_MADE: OrderedDict[tuple[int, int], tuple[weakref.ref[OpenedDataset], int]] = OrderedDict()

#: A box, by its TZCYX ranges (see :func:`~.box_plans.box_key`).
Box = tuple[range, ...]


class KeptPlans:
    """The plans of the boxes one source read lately, and the boxes it read once."""

    def __init__(self) -> None:
        self._plans: dict[Box, BoxPlan | WholeChunk] = {}
        self._seen: set[Box] = set()

    def get(self, key: Box | None) -> BoxPlan | WholeChunk | None:
        """The plan kept for box ``key`` (None: none, or no key)."""
        return self._plans.get(key) if key is not None else None

    def __getitem__(self, key: Box) -> BoxPlan | WholeChunk:
        return self._plans[key]

    def __contains__(self, key: object) -> bool:
        return key in self._plans

    def __len__(self) -> int:
        return len(self._plans)

    def again(self, key: Box) -> bool:
        """Whether box ``key`` was read before (the last SEEN_KEPT boxes read once are remembered): a box is planned
        when it is read a second time, so a box read once costs no plan."""
        seen = self._seen
        if key in seen:
            return True
        if len(seen) >= SEEN_KEPT:
            seen.clear()
        seen.add(key)
        return False

    def keep(self, key: Box, plan: BoxPlan | WholeChunk) -> None:
        """Keep ``plan`` for box ``key``, dropping the oldest plans beyond PLANS_KEPT or PLAN_CHUNKS chunks."""
        size = chunks_of(plan)
        with _PLANS_LOCK:
            plans = self._plans
            while plans and (
                len(plans) >= PLANS_KEPT or sum(chunks_of(p) for p in plans.values()) + size > PLAN_CHUNKS
            ):
                plans.pop(next(iter(plans)))  # the oldest
            plans[key] = plan


def plans_of(opened: OpenedDataset, pos: int) -> KeptPlans:
    """The plans the sources of image row ``pos`` of ``opened`` share (made on first use; those of the last
    :data:`IMAGES_KEPT` images made in this process are kept, whichever datasets they are of)."""
    plans = opened.plans.get(pos)
    if plans is not None:
        return plans
    with _PLANS_LOCK:
        plans = opened.plans.get(pos)
        if plans is None:
            plans = opened.plans[pos] = KeptPlans()
            _MADE.pop((id(opened), pos), None)  # a dead dataset's, whose id this one reuses: made anew, so last
            _MADE[id(opened), pos] = (weakref.ref(opened), pos)
            while len(_MADE) > IMAGES_KEPT:
                ref, old = _MADE.popitem(last=False)[1]
                gone = ref()
                if gone is not None:
                    gone.plans.pop(old, None)
        return plans
