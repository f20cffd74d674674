"""Which installed bioio reader plugin opens a file, and the errors when none can.

bioio's plugins (entry-point group ``bioio.readers``) each declare the suffixes they read.
The candidates for a path are those whose suffix it ends with (longest suffix first, in
bioio's own order; for a directory, bioio's directory readers too), or the one named with
``reader=``. The first that opens the file wins. When none claims the suffix, a PluginError
names the installed readers (and the plugin that reads that suffix, when we know one); when
every candidate fails, the file is damaged or not what its name says (DamagedFileError with
each reader's reason).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from ome_arrow_core.plugin_api import ArgumentError, DamagedFileError, PluginError, reading

__all__ = ["KNOWN_PLUGINS", "installed", "open_reader"]

#: Suffixes read by bioio plugins that are not installed by default: the plugin to install for each.
KNOWN_PLUGINS: Final[dict[str, str]] = {
    ".czi": "bioio-czi",
    ".nd2": "bioio-nd2",
    ".lif": "bioio-lif",
    ".dv": "bioio-dv",
    ".r3d": "bioio-dv",
    ".sldy": "bioio-sldy",
    ".ims": "bioio-imaris",
    ".png": "bioio-imageio",
    ".jpg": "bioio-imageio",
    ".jpeg": "bioio-imageio",
    ".gif": "bioio-imageio",
    ".bmp": "bioio-imageio",
    ".lsm": "bioio-tifffile",
    ".oib": "bioio-bioformats",
    ".oif": "bioio-bioformats",
    ".vsi": "bioio-bioformats",
    ".svs": "bioio-bioformats",
    ".ndpi": "bioio-bioformats",
    ".lei": "bioio-bioformats",
}

#: Readers that read planes as chunks of these dims when told (``chunk_dims=``): one plane per chunk.
PLANE_CHUNKS: Final[tuple[str, ...]] = ("Y", "X", "S")


def _plugins() -> Mapping[str, Sequence[Any]]:
    from bioio.plugins import get_plugins

    return get_plugins(use_cache=True)


def installed() -> dict[str, list[str]]:
    """Installed bioio reader plugins: name -> the suffixes it reads."""
    out: dict[str, list[str]] = {}
    for ext, entries in _plugins().items():
        for entry in entries:
            out.setdefault(entry.entrypoint.name, []).append(ext)
    return {name: sorted(exts) for name, exts in sorted(out.items())}


def _candidates(path: Path) -> list[tuple[str, Any]]:
    """(plugin name, Reader class) of every installed plugin that claims ``path``, bioio's order."""
    from bioio.plugins import get_directory_image_plugins

    name = path.name.lower()
    found: dict[str, Any] = {}
    for ext, entries in _plugins().items():
        if name.endswith(ext):
            for entry in entries:
                found.setdefault(entry.entrypoint.name, entry)
    if path.is_dir():
        for entry in get_directory_image_plugins(use_cache=True):
            found.setdefault(entry.entrypoint.name, entry)
    return [(n, e.metadata.get_reader()) for n, e in found.items()]


def _named(path: Path, reader: str) -> list[tuple[str, Any]]:
    from importlib.metadata import entry_points

    eps = {ep.name: ep for ep in entry_points(group="bioio.readers")}
    if not isinstance(reader, str) or reader not in eps:
        raise ArgumentError(
            f"reader={reader!r} is not an installed bioio reader plugin; installed: "
            f"{', '.join(sorted(eps)) or 'none'} (a plugin's distribution name, e.g. bioio-imageio)"
        )
    with reading(path, None, f"loading the bioio reader plugin {reader}"):
        return [(reader, eps[reader].load().ReaderMetadata.get_reader())]


def _no_reader(path: Path) -> PluginError:
    have = installed()
    listed = "; ".join(f"{n} ({' '.join(e[:6])}{' ...' if len(e) > 6 else ''})" for n, e in have.items())
    suffix = "".join(path.suffixes[-1:]).lower()
    hint = (
        f"; {KNOWN_PLUGINS[suffix]} reads {suffix} files: pip install {KNOWN_PLUGINS[suffix]}"
        if suffix in KNOWN_PLUGINS
        else ""
    )
    return PluginError(
        f"{path}: no installed bioio reader plugin reads {suffix or 'files without a suffix'}"
        f"{hint}. Installed bioio readers: {listed or 'none'}"
    )


def _options(cls: Any, chunk_dims: Sequence[str] | None, extra: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor options: ``chunk_dims`` (one plane per chunk by default) where the reader takes it."""
    opts = dict(extra)
    try:
        takes = "chunk_dims" in inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):  # pragma: no cover - a C-implemented reader
        takes = False
    if takes and "chunk_dims" not in opts:
        opts["chunk_dims"] = list(chunk_dims or PLANE_CHUNKS)
    return opts


def open_reader(
    path: Path, reader: str | None, chunk_dims: Sequence[str] | None, options: Mapping[str, Any]
) -> tuple[str, Any]:
    """(plugin name, opened bioio Reader) for ``path``: the first candidate that opens it."""
    with reading(path, None, "listing the installed bioio reader plugins"):
        candidates = _named(path, reader) if reader is not None else _candidates(path)
    if not candidates:
        raise _no_reader(path)
    failures: list[tuple[str, Exception]] = []
    for name, cls in candidates:
        try:
            return name, cls(str(path), **_options(cls, chunk_dims, options))
        except Exception as exc:  # the next candidate may read it; the reasons are reported below
            failures.append((name, exc))
    for name, err in failures:  # the OS refused (permissions, I/O error): that, not damage, is the story
        if isinstance(err, OSError) and err.errno is not None:
            with reading(path, None, f"opening with {name}"):
                raise err
    reasons = "; ".join(
        f"{n}: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}" for n, e in failures
    )
    raise DamagedFileError(
        f"{path}: no bioio reader could open it ({reasons}); the file is damaged or not what its name says"
    ) from failures[-1][1]
