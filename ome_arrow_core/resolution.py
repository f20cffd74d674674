"""Choosing the handler for a request: the reader of a path or format, the writer of an export, the exporter of a
device and dtype, the chunk store of a chunk format; and the errors that say what to install when none is there.

The rules work on the handlers a :class:`~.registry.Registry` collected (highest priority first); the registry
caches their answers. Among the handlers that match, the first available one wins; when only unavailable ones
match, the error names their ``pip install``; when none matches, it names the first-party plugin that would.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final, TypeVar

import numpy as np

from .errors import BackendUnavailableError, DeviceError, PluginError
from .handlers import ChunkStore, Exporter, Handler, Reader, Writer, install_hint
from .plugin_manager import BLOCK_ENV

__all__ = [
    "KNOWN_CHUNK_STORES",
    "choose_chunk_store",
    "choose_exporter",
    "choose_reader",
    "choose_writer",
    "first_available",
    "format_for_output",
]

#: Chunk formats with a plugin of their own: format -> the ome-arrow-core extra that installs it.
KNOWN_CHUNK_STORES: Final[dict[str, str]] = {"vortex": "vortex"}

H = TypeVar("H", bound=Handler)


def first_available(matching: Sequence[H], what: str) -> H:
    """The first available handler of ``matching`` (the handlers that match request ``what``, in priority order);
    BackendUnavailableError naming their installs when none is available, PluginError when none matched."""
    for h in matching:
        if h.available:
            return h
    if matching:
        hints = sorted({h.install for h in matching})
        raise BackendUnavailableError(
            f"{what} needs a backend that is not installed; install one with: {' or '.join(hints)}"
        )
    raise PluginError(f"no plugin handles {what}; run `ome-arrow-core plugins` to list them")


def choose_reader(readers: Sequence[Reader], path: Path, format: str | None, blocked: frozenset[str]) -> Reader:
    """The reader of ``readers`` for ``path``: by ``format`` name when given, else by suffix or sniffing
    (``blocked``: the registry's blocked plugins, named in the error when one of them would read it)."""
    if format is not None:
        matching = [h for h in readers if h.name == format or format in h.suffixes]
        if not matching:
            from .first_party import for_format, raise_missing

            raise_missing(for_format(format), f"format {format!r}", blocked)
        return first_available(matching, f"format {format!r}")
    matching = []
    name = path.name.lower()
    for level in _by_priority(readers):
        # by priority: readers below the first available one are never asked to sniff; within a priority a
        # suffix claim comes first, so a reader that sniffs is asked only when no reader of its rank claims
        # the suffix (a Parquet file never loads the Vortex reader's sniffer)
        claims = [name.endswith(plain) if plain is not None else h.claims_suffix(path) for h, plain in level]
        ordered: Iterable[tuple[_Ranked, bool]] = zip(level, claims)
        if any(claims):  # claims first (a stable sort keeps each group's order)
            ordered = sorted(ordered, key=lambda ranked: not ranked[1])
        for (h, plain), claimed in ordered:
            # a plain reader accepts what it claims or sniffs (Reader.accepts, without claiming twice)
            if (claimed or h.sniffs(path)) if plain is not None else h.accepts(path):
                if h.available:
                    return h
                matching.append(h)
    if not matching:
        from .first_party import for_path, raise_missing

        raise_missing(for_path(path), f"path {str(path)!r}", blocked)
    return first_available(matching, f"path {str(path)!r} (unknown suffix)")


def choose_writer(writers: Sequence[Writer], how: str, blocked: frozenset[str]) -> Writer:
    """The writer of ``writers`` for ``export(how=...)``."""
    matching = [h for h in writers if how in h.formats]
    if not matching:
        from .first_party import for_format, raise_missing

        raise_missing(for_format(how), f"export(how={how!r})", blocked)
        known = sorted({f for h in writers for f in h.formats})
        raise PluginError(f"no writer for how={how!r}; known formats: {', '.join(known)}")
    return first_available(matching, f"export(how={how!r})")


def format_for_output(writers: Sequence[Writer], out: str | os.PathLike[str]) -> str | None:
    """The format whose writer's suffix ends ``out``'s name (the longest one: ``.ome.tiff`` before ``.tiff``), or
    None when none does."""
    name = os.fspath(out).rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1].lower()
    best: tuple[int, str] | None = None
    for w in writers:
        for s in w.suffixes if w.formats else ():
            if name.endswith(s.lower()) and (best is None or len(s) > best[0]):
                best = (len(s), w.formats[0])
    return None if best is None else best[1]


def choose_exporter(exporters: Sequence[Exporter], device: str, dtype: np.dtype, mode: str | None) -> Exporter:
    """The available exporter of ``exporters`` for ``device`` ('cpu', 'cuda'), ``dtype`` and ``mode`` (None: any)."""
    matching = [h for h in exporters if h.handles(device, dtype, mode)]
    if not exporters:
        raise PluginError(
            f"no exporter plugin is loaded, so nothing can export to {device!r}; is the built-in "
            f"'cpu' plugin blocked by {BLOCK_ENV}? Run `ome-arrow-core plugins` to list them"
        )
    if not matching:
        devices = sorted({d for h in exporters for d in h.devices})
        if device not in devices:
            raise DeviceError(f"Unsupported device {device!r}; known devices: {', '.join(devices)}")
        modes = sorted({m for h in exporters if device in h.devices for m in h.modes})
        raise PluginError(
            f"no exporter for device={device!r}, dtype={dtype.name}, mode={mode!r}; "
            f"modes for {device}: {', '.join(modes)}"
        )
    return first_available(matching, f"device {device!r}")


def choose_chunk_store(stores: Sequence[ChunkStore], name: str) -> ChunkStore:
    """The chunk store of ``stores`` for ``name``: a format (``"vortex"``) or a fragment file name
    (``chunks.vortex``)."""
    matching = [h for h in stores if h.name == name or h.accepts(name)]
    if matching:
        return first_available(matching, f"chunk format {matching[0].name!r}")
    fmt = next((f for f, extra in KNOWN_CHUNK_STORES.items() if name == f or name.lower().endswith("." + f)), None)
    if fmt is not None:
        raise BackendUnavailableError(
            f"chunk format {fmt!r} ({name!r}) needs the {fmt} plugin, which is not installed (or is blocked "
            f"by {BLOCK_ENV}); install it with: {install_hint(KNOWN_CHUNK_STORES[fmt], ())}"
        )
    known = ", ".join(["parquet (built in)", *sorted({h.name for h in stores})])
    raise PluginError(f"no chunk store handles {name!r}; known chunk formats: {known}")


#: A reader beside its suffixes when it claims and accepts paths as :class:`~.handlers.Reader` does (its suffix
#: claim is then ``name.endswith(suffixes)`` and implies acceptance), None when it answers with its own methods.
_Ranked = tuple[Reader, tuple[str, ...] | None]
#: The last ``readers`` ranked by :func:`_by_priority` and its answer (a registry's readers are one tuple until a
#: plugin is registered or removed: every scan asks again with the same one). It holds that tuple, so its id cannot
#: be reused meanwhile, and it keeps those readers alive; a reader class whose ``accepts`` or ``claims_suffix`` is
#: replaced after its first ranking is not seen until the registry changes.
_ranked: tuple[Sequence[Reader], list[list[_Ranked]]] | None = None


def _by_priority(readers: Sequence[Reader]) -> list[list[_Ranked]]:
    """``readers`` (sorted highest priority first) in runs of equal priority, in order (remembered for the last
    ``readers`` object asked, by identity)."""
    global _ranked
    last = _ranked
    if last is not None and last[0] is readers:
        return last[1]
    levels: list[list[_Ranked]] = []
    for h in readers:
        plain = type(h).claims_suffix is Reader.claims_suffix and type(h).accepts is Reader.accepts
        ranked = (h, tuple(h.suffixes) if plain else None)
        if levels and levels[-1][0][0].priority == h.priority:
            levels[-1].append(ranked)
        else:
            levels.append([ranked])
    if isinstance(readers, tuple):  # immutable: the answer stands while it is the same object
        _ranked = (readers, levels)
    return levels
