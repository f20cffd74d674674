"""The plugin registry: discovery and listing of plugins, their handlers collected and the answers cached.

Which handler serves a request (a path, a format, a device) is decided by the rules of :mod:`.resolution`.
A :class:`Registry` owns one pluggy PluginManager. Hosts may build their own (no hidden
global state is needed), register plugins in code and turn entry-point loading off;
:func:`default_registry` is simply the shared instance the user API uses by default. A third
party's plugin is imported when it is built, ours when a hook of theirs is first asked for.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, TypeVar

import numpy as np

from . import hookspecs
from .deferred_plugins import FIRST_PARTY_HOOKS, DeferredPlugins, hooks_of
from .entry_points import EntryPoint, entry_points
from .errors import PluginError
from .handlers import ChunkStore, Exporter, Handler, Ingester, Reader, Writer
from .plugin_manager import BLOCK_ENV, PluginManager
from .resolution import (
    choose_chunk_store,
    choose_exporter,
    choose_reader,
    choose_writer,
    first_available,
    format_for_output,
)

if TYPE_CHECKING:
    from .plugin_listing import PluginInfo

# first_party and plugin_listing (two dataclasses, ~2 ms of a fresh process) load when a listing or an
# error message needs them, not to read an image.
__all__ = [
    "ENTRY_POINT_GROUP",
    "BLOCK_ENV",
    "BUILTINS",
    "Registry",
    "default_registry",
    "plugins",
    "PluginWarning",
]

#: Entry-point group scanned for plugins.
ENTRY_POINT_GROUP: Final[str] = "ome_arrow_core.plugins"
#: Built-in plugins: name -> module. Registered like any other plugin.
BUILTINS: Final[dict[str, str]] = {
    "numpy": "ome_arrow_core.builtins.numpy_ingest",
    "parquet": "ome_arrow_core.builtins.parquet_io",
    "npy": "ome_arrow_core.builtins.npy_io",
    "cpu": "ome_arrow_core.builtins.cpu_export",
}

H = TypeVar("H", bound=Handler)


class PluginWarning(UserWarning):
    """A plugin setting is suspicious (a blocked name that matches no plugin), or a plugin failed and its work
    was done another way (an exporter's ``export_many`` raised: its groups went tile by tile)."""


def _blocked_from_env() -> frozenset[str]:
    return frozenset(n.strip() for n in os.environ.get(BLOCK_ENV, "").split(",") if n.strip())


class Registry:
    """Plugins and the handlers they provide, resolved by type, path, format and device."""

    def __init__(
        self,
        *,
        autoload: bool = True,
        builtins: bool = True,
        blocked: Iterable[str] | None = None,
        group: str = ENTRY_POINT_GROUP,
    ) -> None:
        self._pm = PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._blocked = frozenset(blocked) if blocked is not None else _blocked_from_env()
        self._group = group
        self._versions: dict[str, str] = {}
        self._failures: dict[str, str] = {}
        self._cache: dict[str, tuple[Handler, ...]] = {}
        self._resolved: dict[tuple[Any, ...], Handler] = {}
        self._exporters: dict[tuple[str, np.dtype, str | None], Exporter] = {}  # resolve_exporter's answers
        self._generation = 0  # bumped by every (un)registration: answers worked out before it are not cached
        self._lock = threading.RLock()
        self._found: set[str] = set()
        self._deferred = DeferredPlugins()  # our plugins, imported when a hook of theirs is first asked for
        self._autoload = autoload
        if autoload:
            self.load_entry_points()
            self._warn_unknown_blocked()
        if builtins:
            for name, module in BUILTINS.items():
                if name not in self._blocked and not self._known(name):  # FIRST_PARTY_HOOKS lists each built-in
                    self._deferred.defer(name, FIRST_PARTY_HOOKS[name][1], EntryPoint(name, module, "", _version=""))

    # -- registration -------------------------------------------------------------------
    def register(self, plugin: ModuleType | object, name: str | None = None, version: str = "") -> str:
        """Register a plugin object or module; return its name. Blocked names are skipped."""
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        if name in self._blocked:
            return name
        with self._lock:
            if self._known(name):
                raise PluginError(f"a plugin named {name!r} is already registered")
            self._add(plugin, name, version)
            self._changed()
        return name

    def unregister(self, name: str) -> None:
        """Remove a registered plugin by name."""
        with self._lock:
            if not self._deferred.forget(name):
                self._pm.unregister(name=name)
            self._changed()

    def _known(self, name: str) -> bool:
        return self._pm.has_plugin(name) or name in self._deferred

    def _add(self, plugin: object, name: str, version: str) -> None:
        """Register ``plugin`` with pluggy (the lock held), keeping the rank it was deferred with."""
        self._deferred.rank(name)
        self._pm.register(plugin, name=name)
        self._versions[name] = version or str(getattr(plugin, "__version__", ""))

    def _changed(self) -> None:
        self._cache.clear()
        self._resolved.clear()
        self._exporters.clear()
        self._generation += 1

    def _load_pending(self, hook: str | None = None) -> None:
        """Import the deferred plugins that implement ``hook`` (None: all of them); failures are recorded.

        No cached answer changes: one exists only for a hook already collected, which imported every deferred
        plugin implementing it.
        """
        with self._lock:
            for name, entry in self._deferred.take(hook):
                try:
                    plugin = entry.load()
                except Exception as exc:  # a broken plugin must not take the host down
                    self._failures[name] = f"{type(exc).__name__}: {exc}"
                    self._deferred.forget(name)
                    continue
                self._add(plugin, name, entry.version)

    def load_entry_points(self) -> None:
        """Register every plugin of the entry-point group: a third party's imported now, ours when a hook of theirs
        is first asked for (see :mod:`.deferred_plugins`); failures are recorded, not raised."""
        for ep in entry_points(self._group):  # read from the files: importlib.metadata costs ~35 ms a process
            self._found.add(ep.name)
            if ep.name in self._blocked or self._known(ep.name):
                continue
            hooks = hooks_of(ep.name, ep.value)
            if hooks is not None:  # ours: imported when one of its hooks is asked for; a third party's: now
                with self._lock:
                    self._deferred.defer(ep.name, hooks, ep)
                    self._changed()  # a hook collected before now has one more plugin
                continue
            version = ep.version
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must not take the host down
                self._failures[ep.name] = f"{type(exc).__name__}: {exc}"
                continue
            self.register(plugin, name=ep.name, version=version)

    def _warn_unknown_blocked(self) -> None:
        """Warn about blocked names that match no plugin (a typo would otherwise block nothing, silently)."""
        if not self._blocked:
            return
        from .first_party import FIRST_PARTY

        known = self._found | set(BUILTINS) | set(FIRST_PARTY)
        unknown = sorted(self._blocked - known)
        if unknown:
            warnings.warn(
                f"{BLOCK_ENV} names {', '.join(map(repr, unknown))}, which match no plugin; known plugins: "
                f"{', '.join(sorted(known))}",
                PluginWarning,
                stacklevel=3,
            )

    @property
    def failures(self) -> dict[str, str]:
        """Plugins that failed to load: name -> error."""
        self._load_pending()
        return dict(self._failures)

    @property
    def blocked(self) -> frozenset[str]:
        """Names that are never registered."""
        return self._blocked

    # -- handlers -----------------------------------------------------------------------
    def _collect(self, hook: str, kind: type[H]) -> tuple[H, ...]:
        with self._lock:
            if hook not in self._cache:
                if self._deferred:
                    self._load_pending(hook)
                found: list[Handler] = []
                caller = getattr(self._pm.hook, hook)
                for impl in self._deferred.ordered(caller.get_hookimpls()):
                    try:
                        items = impl.function()
                    except Exception as exc:
                        self._failures[impl.plugin_name] = f"{hook}: {type(exc).__name__}: {exc}"
                        continue
                    for h in items or ():
                        if not isinstance(h, kind):
                            self._failures[impl.plugin_name] = (
                                f"{hook} returned {type(h).__name__}, expected {kind.__name__}"
                            )
                            continue
                        object.__setattr__(h, "plugin", impl.plugin_name)
                        found.append(h)
                found.sort(key=lambda h: -h.priority)  # stable: registration order breaks ties
                self._cache[hook] = tuple(found)
            return self._cache[hook]  # type: ignore[return-value]

    def ingesters(self) -> tuple[Ingester, ...]:
        """All ingesters, highest priority first."""
        return self._collect("ome_arrow_ingesters", Ingester)

    def readers(self) -> tuple[Reader, ...]:
        """All readers, highest priority first."""
        return self._collect("ome_arrow_readers", Reader)

    def writers(self) -> tuple[Writer, ...]:
        """All writers, highest priority first."""
        return self._collect("ome_arrow_writers", Writer)

    def exporters(self) -> tuple[Exporter, ...]:
        """All exporters, highest priority first."""
        return self._collect("ome_arrow_exporters", Exporter)

    def chunk_stores(self) -> tuple[ChunkStore, ...]:
        """All chunk stores, highest priority first."""
        return self._collect("ome_arrow_chunk_stores", ChunkStore)

    # -- resolution (the rules: :mod:`.resolution`) ---------------------------------------
    def resolve_ingester(self, obj: object) -> Ingester:
        """The highest-priority available ingester whose ``matches(obj)`` is true."""
        key = ("ingest", type(obj))
        with self._lock:
            hit = self._resolved.get(key)
        if hit is not None and isinstance(hit, Ingester):
            return hit
        matching = [h for h in self.ingesters() if h.matches(obj)]
        found = first_available(matching, f"input of type {type(obj).__module__}.{type(obj).__qualname__}")
        with self._lock:
            self._resolved[key] = found
        return found

    def resolve_reader(self, path: str | os.PathLike[str], format: str | None = None) -> Reader:
        """The reader for ``path``: by ``format`` name when given, else by suffix or sniffing."""
        return choose_reader(self.readers(), path if isinstance(path, Path) else Path(path), format, self._blocked)

    def resolve_writer(self, how: str) -> Writer:
        """The writer for ``export(how=...)``."""
        return choose_writer(self.writers(), how, self._blocked)

    def output_format(self, out: str | os.PathLike[str]) -> str | None:
        """The format ``export(out=...)`` writes to ``out`` when ``how`` is not given: its writer's suffix
        (``.ome.parquet``, ``.ome.tiff``, ``.ome.zarr``, ``.vortex``...), or None when no writer's suffix ends it."""
        return format_for_output(self.writers(), out)

    def resolve_exporter(self, device: str, dtype: np.dtype, mode: str | None = None) -> Exporter:
        """The available exporter for ``device`` ('cpu', 'cuda'), ``dtype`` and ``mode`` (None: any).

        Answers are cached until a plugin is registered or removed; a cached answer is one
        dict lookup, without the lock (every export resolves, so this is on the hot path).
        """
        key = (device, dtype, mode)
        hit = self._exporters.get(key)  # atomic under the GIL; writers hold the lock
        if hit is not None:
            return hit
        generation = self._generation
        found = choose_exporter(self.exporters(), device, dtype, mode)
        with self._lock:
            if generation == self._generation:
                self._exporters[key] = found
        return found

    def resolve_chunk_store(self, name: str) -> ChunkStore:
        """The chunk store for ``name``: a format (``"vortex"``) or a fragment file name (``chunks.vortex``)."""
        return choose_chunk_store(self.chunk_stores(), name)

    # -- listing --------------------------------------------------------------------------
    def plugins(self) -> list[PluginInfo]:
        """Every handler with its plugin, version, what it handles and availability."""
        from .plugin_listing import plugin_rows

        self._load_pending()
        groups: list[tuple[str, Sequence[Handler]]] = [
            ("ingest", self.ingesters()),
            ("reader", self.readers()),
            ("writer", self.writers()),
            ("exporter", self.exporters()),
            ("chunk store", self.chunk_stores()),
        ]
        # a host that loads plugins itself (autoload=False) lists only what it registered
        return plugin_rows(groups, self._versions, self._failures, self._blocked if self._autoload else None)


_default: Registry | None = None
_default_lock = threading.Lock()


def default_registry() -> Registry:
    """The shared registry (entry points autoloaded), created on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Registry()
    return _default


def plugins(registry: Registry | None = None) -> list[PluginInfo]:
    """List every handler of ``registry`` (default: the shared one)."""
    return (registry or default_registry()).plugins()
