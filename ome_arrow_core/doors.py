"""Package doors whose names load on first use.

A door (a package's ``__init__``, ``plugin_api``) lists names from many modules. Importing them
all up front makes every caller pay for every module: reading one image loaded the writers,
compaction and object-storage uploads. :func:`lazy_names` gives a door a module ``__getattr__``
(PEP 562) that imports a name's module when the name is first asked for and keeps the value;
the door keeps its ``__all__`` and lists the same names under ``TYPE_CHECKING`` for type checkers.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(door: str, where: Mapping[str, tuple[str, str]]) -> Callable[[str], Any]:
    """The ``__getattr__`` of module ``door``: name -> (module, relative as the door's own imports would be,
    attribute in it)."""

    def __getattr__(name: str) -> Any:
        try:
            module, attr = where[name]
        except KeyError:
            raise AttributeError(f"module {door!r} has no attribute {name!r}") from None
        own = sys.modules[door]
        anchor = door if hasattr(own, "__path__") else door.rpartition(".")[0]  # a package, or a module's package
        value = getattr(import_module(module, anchor), attr)
        own.__dict__[name] = value  # asked once: later lookups are plain attributes
        return value

    return __getattr__
