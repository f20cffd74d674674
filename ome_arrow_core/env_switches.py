"""Environment switches read on every read (``OME_ARROW_CORE_VERIFY``, ``OME_ARROW_KERNELS``), cheaply.

``os.environ.get(name)`` of a name that is not set raises and catches a KeyError inside (1.7 us here, and a crop
read asks twice). :func:`env_value` asks ``os.environ``'s own mapping of encoded names instead (0.2 us), so a
change made through ``os.environ`` (``monkeypatch.setenv`` included) is seen by the next read as before. Where that
mapping is not the POSIX one (Windows, another Python), it asks ``os.environ.get``.
"""

from __future__ import annotations

import os
from typing import Final

__all__ = ["env_value"]

_DATA: Final[object] = getattr(os.environ, "_data", None)  # CPython's _Environ: encoded name -> encoded value
_FAST: Final[bool] = os.name == "posix" and type(_DATA) is dict
_KEYS: dict[str, bytes] = {}  # names asked for, encoded as os.environ encodes them


def env_value(name: str) -> str | None:
    """``os.environ.get(name)``: the variable's value, or None when it is not set."""
    if not _FAST:
        return os.environ.get(name)
    key = _KEYS.get(name)
    if key is None:
        key = _KEYS[name] = os.fsencode(name)
    raw = _DATA.get(key)  # type: ignore[attr-defined]
    return None if raw is None else os.fsdecode(raw)
