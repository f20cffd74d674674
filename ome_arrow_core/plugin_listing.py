"""What ``plugins()`` lists: one row per handler, per plugin that failed, and per first-party backend not here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .first_party import FIRST_PARTY, installed_version
from .handlers import ChunkStore, Exporter, Handler, Reader, Writer
from .plugin_manager import BLOCK_ENV

__all__ = ["BLOCK_ENV", "PluginInfo", "plugin_rows", "first_party_rows", "handles_text", "installed_version"]


@dataclass(frozen=True)
class PluginInfo:
    """One row of :func:`plugins`: a handler, where it comes from and whether it works here."""

    plugin: str
    version: str
    kind: str
    name: str
    handles: str
    available: bool
    install: str
    error: str = ""
    blocked: bool = False

    @property
    def status(self) -> str:
        """One word or phrase for listings: available, blocked, not installed (with the command), failed."""
        if self.available:
            return "available"
        if self.blocked:
            return f"blocked by {BLOCK_ENV}"
        if self.install:
            return f"unavailable: {self.install}"
        return f"failed: {self.error}"


def plugin_rows(
    groups: Sequence[tuple[str, Sequence[Handler]]],
    versions: Mapping[str, str],
    failures: Mapping[str, str],
    blocked: frozenset[str] | None,
) -> list[PluginInfo]:
    """Rows for the handlers of ``groups`` (kind, handlers), the ``failures`` (plugin -> error) and, unless
    ``blocked`` is None, the first-party backends with no handler among them (``blocked``: names blocked)."""
    rows: list[PluginInfo] = []
    for kind, handlers in groups:
        for h in handlers:
            rows.append(
                PluginInfo(
                    plugin=h.plugin,
                    version=versions.get(h.plugin, ""),
                    kind=kind,
                    name=h.name,
                    handles=handles_text(h),
                    available=h.available,
                    install="" if h.available else h.install,
                )
            )
    for name, err in sorted(failures.items()):
        rows.append(PluginInfo(name, "", "failed", name, "", False, "", err))
    if blocked is not None:
        rows += first_party_rows({r.plugin for r in rows}, blocked)
    return rows


def first_party_rows(listed: set[str], blocked: frozenset[str]) -> list[PluginInfo]:
    """Rows for first-party backends not in ``listed``: blocked, integrations, or not installed."""
    rows = []
    for p in FIRST_PARTY.values():
        if p.name in listed:
            continue
        version = installed_version(p.distribution)
        is_blocked = p.name in blocked
        available = bool(version) and not is_blocked and p.kind == "integration"
        error = "installed, not registered in this registry" if version and not is_blocked else ""
        rows.append(
            PluginInfo(
                p.name,
                version,
                p.kind,
                p.name,
                p.handles,
                available,
                "" if version else p.install,
                error,
                blocked=is_blocked and bool(version),
            )
        )
    return rows


def handles_text(h: Handler) -> str:
    """What ``h`` handles, in a listing's words (suffixes, formats, devices and modes...)."""
    if isinstance(h, Reader) or (isinstance(h, Writer) and not h.formats):
        return " ".join(h.suffixes) or h.description
    if isinstance(h, Writer):
        return "how=" + "|".join(h.formats)
    if isinstance(h, ChunkStore):
        return f"dataset chunks {h.suffix}"
    if isinstance(h, Exporter):
        return f"device={'|'.join(h.devices)} mode={'|'.join(h.modes)}"
    return h.description
