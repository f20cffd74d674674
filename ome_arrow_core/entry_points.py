"""Entry points of one group, found by reading ``entry_points.txt`` files directly.

``importlib.metadata.entry_points(group=...)`` imports ~30 modules and parses every installed
distribution's entry points (~35 ms of a fresh process's first read, most of it importing);
reading the files on ``sys.path`` ourselves takes a few milliseconds (raw ``os.read`` of each
``entry_points.txt``, decoded only when it names the group: ~200 distributions here). The answer is the same:
distributions in ``sys.path`` order (a directory's in listing order), the first of each
normalised name winning. Where distributions may come from elsewhere (a zip file or an
``.egg`` on ``sys.path``, a meta-path finder of its own) the standard library answers instead.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from importlib.machinery import PathFinder
from typing import Any

__all__ = ["EntryPoint", "entry_points"]

_SUFFIXES = (".dist-info", ".egg-info")
#: The last letter of both suffixes, as a name may end (only these two characters lower-case to an "o"): a
#: directory's other names (~1,600 in a large environment) are passed over without a lower-case copy.
_LAST = ("o", "O")


class EntryPoint:
    """``name = value`` of a group, from the distribution whose metadata directory is ``path``.

    A plain class, not a dataclass: a fresh process makes one per plugin, and generating a dataclass's
    methods costs ~1 ms of it.
    """

    __slots__ = ("_version", "name", "path", "value")

    def __init__(self, name: str, value: str, path: str = "", _version: str | None = None) -> None:
        self.name = name
        self.value = value
        self.path = path
        self._version = _version

    def __repr__(self) -> str:
        return f"EntryPoint(name={self.name!r}, value={self.value!r}, path={self.path!r})"

    def load(self) -> Any:
        """Import ``module`` of ``module:attr.sub`` and return the attribute (or the module)."""
        module, _, attrs = self.value.partition("[")[0].partition(":")  # extras ([...]) select nothing here
        obj: Any = importlib.import_module(module.strip())
        for part in filter(None, attrs.strip().split(".")):
            obj = getattr(obj, part)
        return obj

    @property
    def version(self) -> str:
        """The distribution's ``Version`` (from its METADATA or PKG-INFO; "" when unreadable)."""
        if self._version is not None:
            return self._version
        for name in ("METADATA", "PKG-INFO"):
            try:
                with open(os.path.join(self.path, name), encoding="utf-8", errors="replace") as fh:
                    for line in fh:
                        if not line.strip():
                            break
                        key, _, value = line.partition(":")
                        if key.strip().lower() == "version":
                            return value.strip()
            except OSError:
                continue
        return ""


def _normalized(stem: str) -> str:
    """The distribution name of metadata directory ``stem`` (``name-version``), normalised: runs of ``-_.`` to ``_``,
    lower case. A name with no ``.`` and no ``__`` (most: it ends at the first ``-``) has no run to fold: the
    pattern is neither compiled nor run for it (~200 names a process)."""
    name = stem.partition("-")[0]
    if "." in name or "__" in name:
        name = re.sub(r"[-_.]+", "_", name)
    return name.lower()


def _parse(text: str, group: str, path: str) -> list[EntryPoint]:
    """The entries of section ``[group]`` of an ``entry_points.txt``."""
    out: list[EntryPoint] = []
    inside = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line[0] == "[" and line[-1] == "]":
            inside = line[1:-1].strip() == group
            continue
        if inside and "=" in line:
            name, _, value = line.partition("=")
            out.append(EntryPoint(name.strip(), value.strip(), path))
    return out


def _standard_library_only() -> bool:
    """True when some distribution could be found by a route this module does not read."""
    if any(entry and (os.path.isfile(entry) or entry.lower().rstrip("/\\").endswith(".egg")) for entry in sys.path):
        return True
    return any(hasattr(f, "find_distributions") and f is not PathFinder for f in sys.meta_path)


def _from_importlib(group: str) -> list[EntryPoint]:
    import importlib.metadata as md

    out = []
    for ep in md.entry_points(group=group):
        dist = getattr(ep, "dist", None)
        out.append(EntryPoint(ep.name, ep.value, "", dist.version if dist is not None else ""))
    return out


def entry_points(group: str) -> list[EntryPoint]:
    """Every entry point of ``group`` that ``importlib.metadata.entry_points(group=group)`` would list."""
    if _standard_library_only():
        return _from_importlib(group)
    header = f"[{group}]".encode()
    seen: set[str] = set()
    out: list[EntryPoint] = []
    for entry in sys.path:
        root = entry or "."
        try:
            names = [n for n in os.listdir(root) if n[-1:] in _LAST and n.lower().endswith(_SUFFIXES)]
        except OSError:
            continue
        for name in names:
            dist = _normalized(name[: name.rindex(".")])
            if dist in seen:
                continue
            seen.add(dist)
            path = os.path.join(root, name)
            data = _read_bytes(path + os.sep + "entry_points.txt")  # os.path.join's: ``name`` ends in "info"
            if data is not None and header in data:
                out += _parse(data.decode("utf-8"), group, path)
    return out


def _read_bytes(path: str) -> bytes | None:
    """The bytes of ``path``, or None when it cannot be read (no file object: ~200 files a process)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        parts = []
        while part := os.read(fd, 1 << 16):
            parts.append(part)
        return b"".join(parts)
    except OSError:
        return None
    finally:
        os.close(fd)
