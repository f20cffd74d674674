"""URI syntax: whether a string names a remote object (``scheme://...``) rather than a local path."""

from __future__ import annotations

__all__ = ["is_uri"]


def is_uri(target: object) -> bool:
    """True when ``target`` is a string with a ``scheme://`` (not a Windows drive such as ``C:\\``)."""
    if not isinstance(target, str) or "://" not in target:
        return False
    scheme = target.split("://", 1)[0]
    return len(scheme) > 1 and scheme.replace("+", "").replace("-", "").replace(".", "").isalnum()
