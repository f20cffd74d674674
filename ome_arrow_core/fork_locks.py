"""Module-level locks that a forked child makes anew.

A thread of the parent may hold a module's lock at the moment another thread forks (a DataLoader started while a
thread opens a dataset); the child inherits the lock held, and no thread of the child would ever release it.
"""

from __future__ import annotations

import os
import threading
from typing import Any

__all__ = ["fork_safe_lock"]


def fork_safe_lock(namespace: dict[str, Any], name: str) -> threading.Lock:
    """A new lock for ``namespace[name]`` (a module's ``globals()``), which every forked child replaces with a
    lock of its own. Use: ``_lock = fork_safe_lock(globals(), "_lock")``."""

    def renew() -> None:
        namespace[name] = threading.Lock()

    os.register_at_fork(after_in_child=renew)
    return threading.Lock()
