"""This project's own plugins, registered by name and imported when a hook they implement is first asked for.

Importing every installed plugin to build the shared registry cost a fresh process that reads one Parquet image
~12 M instructions (1.5% of its import + first plane, callgrind), mostly the torch, jax and cupy plugins' ingest
and export modules, though a read asks only for readers. :data:`FIRST_PARTY_HOOKS` says which hooks each plugin this project ships implements
(tests/test_deferred_plugins.py checks it against each module); a registry defers an entry point whose name and
module are listed there, and imports it when one of its hooks is collected, or when everything is listed. Any
other entry point (a third party's, or one of our names pointing elsewhere) is imported at once, as before: it
may implement any hook.
"""

from __future__ import annotations

from typing import Any, Final

from .entry_points import EntryPoint

__all__ = ["FIRST_PARTY_HOOKS", "DeferredPlugins", "hooks_of"]

_READ, _WRITE, _INGEST, _EXPORT, _CHUNKS = (
    "ome_arrow_readers",
    "ome_arrow_writers",
    "ome_arrow_ingesters",
    "ome_arrow_exporters",
    "ome_arrow_chunk_stores",
)

#: Plugin name -> (its module, the hooks it implements), for the built-in plugins and every backend of ``backends/``.
FIRST_PARTY_HOOKS: Final[dict[str, tuple[str, frozenset[str]]]] = {
    "numpy": ("ome_arrow_core.builtins.numpy_ingest", frozenset({_INGEST})),
    "parquet": ("ome_arrow_core.builtins.parquet_io", frozenset({_READ, _WRITE})),
    "npy": ("ome_arrow_core.builtins.npy_io", frozenset({_READ})),
    "cpu": ("ome_arrow_core.builtins.cpu_export", frozenset({_EXPORT})),
    "tiff": ("ome_arrow_tiff.plugin", frozenset({_READ, _WRITE})),
    "zarr": ("ome_arrow_zarr.plugin", frozenset({_READ, _WRITE})),
    "vortex": ("ome_arrow_vortex.plugin", frozenset({_READ, _WRITE, _CHUNKS})),
    "bioio": ("ome_arrow_bioio.plugin", frozenset({_READ})),
    "torch": ("ome_arrow_torch.plugin", frozenset({_INGEST, _EXPORT})),
    "jax": ("ome_arrow_jax.plugin", frozenset({_INGEST, _EXPORT})),
    "cupy": ("ome_arrow_cupy.plugin", frozenset({_INGEST, _EXPORT})),
}


def hooks_of(name: str, target: str) -> frozenset[str] | None:
    """The hooks of our plugin ``name`` when ``target`` (``module`` or an entry point's value) is its module, else None."""
    known = FIRST_PARTY_HOOKS.get(name)
    return known[1] if known is not None and target.strip() == known[0] else None


class DeferredPlugins:
    """A registry's plugins not imported yet, and the registration order (rank) of all its plugins: pluggy lists
    a hook's implementations in the order their plugins were registered, deferred plugins are registered out of
    it, and that order breaks ties of priority."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[frozenset[str], EntryPoint]] = {}
        self._rank: dict[str, int] = {}
        self._next = 0

    def __contains__(self, name: str) -> bool:
        return name in self._pending

    def __bool__(self) -> bool:
        return bool(self._pending)

    def rank(self, name: str) -> None:
        """Give ``name`` the next rank unless it has one (a deferred plugin keeps its own when imported)."""
        if name not in self._rank:
            self._rank[name], self._next = self._next, self._next + 1

    def defer(self, name: str, hooks: frozenset[str], entry: EntryPoint) -> None:
        """Register ``name`` (implementing ``hooks``) now; ``entry`` imports it later."""
        self.rank(name)
        self._pending[name] = (hooks, entry)

    def take(self, hook: str | None) -> list[tuple[str, EntryPoint]]:
        """Remove and return the deferred plugins implementing ``hook`` (None: all), in rank order."""
        out = [(name, entry) for name, (hooks, entry) in self._pending.items() if hook is None or hook in hooks]
        for name, _ in out:
            del self._pending[name]
        return out

    def forget(self, name: str) -> bool:
        """Drop ``name``'s rank (and it, if deferred); True when it was deferred."""
        self._rank.pop(name, None)
        return self._pending.pop(name, None) is not None

    def ordered(self, impls: list[Any]) -> list[Any]:
        """Hook implementations in pluggy's order had every plugin been registered in rank order: plain ones in
        rank order, ``trylast`` ones before them newest first, ``tryfirst`` ones after; then wrappers likewise."""

        def key(impl: Any) -> tuple[bool, int, int]:
            r = self._rank[impl.plugin_name]
            wrapper = bool(impl.hookwrapper or impl.wrapper)
            return (wrapper, 0, -r) if impl.trylast else (wrapper, 2 if impl.tryfirst else 1, r)

        return sorted(impls, key=key)
