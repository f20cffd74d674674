"""URI syntax: whether a string names a remote object (``scheme://...``) rather than a local path."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["is_uri", "local_path"]


def is_uri(target: object) -> bool:
    """True when ``target`` is a string with a ``scheme://`` (not a Windows drive such as ``C:\\``)."""
    if not isinstance(target, str) or "://" not in target:
        return False
    scheme = target.split("://", 1)[0]
    return len(scheme) > 1 and scheme.replace("+", "").replace("-", "").replace(".", "").isalnum()


def local_path(target: str | os.PathLike[str], what: str, advice: str = "copy it to a local disk first") -> Path:
    """``target`` as a local path (a ``file://`` URI's path); ArgumentError for any other URI, which ``what`` (the
    operation, for the message, with ``advice``) cannot take: ``Path("s3://b/x")`` would name a local ``s3:/b/x``."""
    text = os.fspath(target)
    if is_uri(text):
        if text.lower().startswith("file://"):
            return Path(text[len("file://") :])
        from .errors import ArgumentError

        raise ArgumentError(f"{what} takes local paths only ({text.split('?', 1)[0]} is remote): {advice}")
    return Path(text)
