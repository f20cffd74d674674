"""The local Ray that ``read_dataset`` starts when none is running: Ray's own, with blocks freed sooner.

Ray frees the object-store copies of objects nobody references in batches, once a second
by default (``free_objects_period_milliseconds``). A warm epoch of the loading benchmark's
plate (524 MB, 2 CPUs) takes 0.2-0.3 s, so each epoch's blocks are written while the last
epochs' blocks still hold their memory: into object-store pages that no process has
written yet, each of which costs a page fault and a zeroed page (measured: the read
tasks' workers spent 0.5-1.0 s of system CPU on them per epoch, three times an epoch's
reads, until the store had grown by a few GB). Freed within 20 ms, each epoch's blocks
reuse the last epoch's pages. This is a setting of the Ray instance, fixed when it
starts: we set it only when we start Ray (no ``ray.init`` was called, ``RAY_ADDRESS`` is
unset, no ``ray start`` cluster runs on this machine, auto-connect is on); a Ray started
by the user keeps the user's settings.
"""

from __future__ import annotations

import os
import threading
from typing import Any

__all__ = ["FREE_OBJECTS_PERIOD_MS", "init_ray", "ensure_ray"]

#: Ray's ``free_objects_period_milliseconds`` in a Ray we start (Ray's default: 1000).
FREE_OBJECTS_PERIOD_MS = 20

_starting = threading.Lock()


def init_ray(**ray_init: Any) -> Any:
    """``ray.init(**ray_init)``, with blocks freed within :data:`FREE_OBJECTS_PERIOD_MS` when it starts a local Ray.

    Connecting to a running cluster (``address=``, ``RAY_ADDRESS``, a ``ray start`` on this
    machine), Ray takes no such setting: then this is plain ``ray.init(**ray_init)``. A
    ``_system_config`` of your own wins over ours. Returns what ``ray.init`` returns.
    """
    import ray

    address = ray_init.get("address") or os.environ.get("RAY_ADDRESS")
    if address is not None and address != "local":
        return ray.init(**ray_init)
    config = {
        "free_objects_period_milliseconds": FREE_OBJECTS_PERIOD_MS,
        **(ray_init.pop("_system_config", None) or {}),
    }
    try:
        return ray.init(**ray_init, _system_config=config)
    except ValueError:
        # A cluster runs on this machine (ray start), which ray.init joins and which takes no
        # system config: joined as Ray would. A ValueError of another cause is raised again here.
        if ray.is_initialized():
            raise
        return ray.init(**ray_init)


def ensure_ray() -> None:
    """Start Ray with :func:`init_ray` when Ray would start itself on first use (it is not initialized,
    and ``RAY_ENABLE_AUTO_CONNECT`` is not 0); otherwise leave it to Ray."""
    import ray

    if ray.is_initialized() or os.environ.get("RAY_ENABLE_AUTO_CONNECT", "") == "0":
        return
    with _starting:
        if not ray.is_initialized():
            init_ray()
