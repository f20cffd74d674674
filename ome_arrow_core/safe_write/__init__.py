"""Writes that never lose a user's data: all-or-nothing replacement, ownership checks, leftover cleanup.

This module is the package's one door; the modules inside are its implementation:

- :mod:`.atomic`: ``atomic_path`` (write to a temporary, then rename or exchange into place);
- :mod:`.fsops`: file-system primitives (``renameat2`` exchange, advisory locks, deferred signals);
- :mod:`.ownership`: names of our temporaries, and what may be replaced (only our own datasets);
- :mod:`.cleanup`: recovering a killed overwrite, removing stale temporaries (``clean_up``; the
  typed-chunk format adds its rule for unlisted append files in ``typed_chunk.cleanup_dataset``).
"""

from __future__ import annotations

from .atomic import atomic_path, make_temp, replace_all, storage_errors
from .cleanup import Cleanup, clean_up, list_entries, recover, remove_entry, remove_stale
from .fsops import lock, remove_tree
from .ownership import PENDING, SENTINEL, SENTINEL_TEXT, check_replaceable, is_member_name, pending_name

__all__ = [
    "is_member_name",
    "SENTINEL",
    "SENTINEL_TEXT",
    "atomic_path",
    "check_replaceable",
    "make_temp",
    "replace_all",
    "storage_errors",
    "Cleanup",
    "clean_up",
    "list_entries",
    "remove_entry",
    "recover",
    "remove_stale",
    "lock",
    "remove_tree",
    "pending_name",
    "PENDING",
]
