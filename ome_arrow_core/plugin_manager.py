"""The pluggy PluginManager of a registry, with a fast look at plugin and hook specification modules.

pluggy reads every name a plugin lists with :func:`inspect.getattr_static` to find its hook
implementations, and a plugin module lists its imports too (~350 names for the installed plugins:
14 M instructions, 2% of a fresh process's import + first plane). For a plain module, a name whose
value in the module's own dict is no function (pluggy hooks only functions, bound methods,
static and class methods) or carries no hookimpl marker is skipped here; the other names, and
every plugin that is not a plain module, go to pluggy's own lookup, so the implementations
found are the same. The hook specifications (:mod:`.hookspecs`, ~50 names, read by every registry) are looked at
the same way, for pluggy's specification marker.
"""

from __future__ import annotations

import types
from typing import Any, Final

import pluggy

__all__ = ["BLOCK_ENV", "PluginManager"]

#: Comma-separated plugin names in this variable are never loaded.
BLOCK_ENV: Final[str] = "OME_ARROW_CORE_BLOCK_PLUGINS"

_ABSENT = object()


class PluginManager(pluggy.PluginManager):
    """A :class:`pluggy.PluginManager` that skips a plain module's unmarked names without ``getattr_static``."""

    def parse_hookspec_opts(self, module_or_class: Any, name: str) -> pluggy.HookspecOpts | None:
        """pluggy's answer, or None at once for a plain module's name that is no marked function."""
        if type(module_or_class) is types.ModuleType:
            value = module_or_class.__dict__.get(name, _ABSENT)
            if value is not _ABSENT and not _may_be_marked(value, self.project_name + "_spec"):
                return None
        return super().parse_hookspec_opts(module_or_class, name)

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> pluggy.HookimplOpts | None:
        """pluggy's answer, or None at once for a plain module's name that is no marked function."""
        if type(plugin) is types.ModuleType:
            value = plugin.__dict__.get(name, _ABSENT)
            if value is not _ABSENT and not _may_be_marked(value, self.project_name + "_impl"):
                return None
        return super().parse_hookimpl_opts(plugin, name)


_HOOKABLE = (types.FunctionType, types.MethodType, staticmethod, classmethod)


def _may_be_marked(value: object, marker: str) -> bool:
    """Whether ``value`` is hookable and it (or the function it wraps) carries ``marker`` (hookimpl's or hookspec's)."""
    if not isinstance(value, _HOOKABLE):  # no getattr on other values: it could run their code
        return False
    if getattr(value, marker, None) is not None:
        return True
    func = getattr(value, "__func__", None)  # staticmethod, classmethod, bound method
    return func is not None and getattr(func, marker, None) is not None
