"""What ``ome-arrow-core plugins`` reports: every handler with a truthful status, and for one
input the handler that would be chosen and why each other one was not.

The status of a CUDA exporter depends on a GPU being present, not only on its library being
importable; :func:`explain` mirrors the registry's resolution (highest priority first, the
first available handler that accepts the input wins) and gives every loser its reason.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .cuda_probe import cuda_devices
from .first_party import FIRST_PARTY, for_format, for_path
from .handlers import Exporter, Handler, Reader, Writer
from .registry import BLOCK_ENV, Registry

__all__ = ["Row", "Candidate", "Explanation", "listing", "explain"]


@dataclass(frozen=True)
class Row:
    """One line of the listing: a :class:`PluginInfo` plus the status to show."""

    plugin: str
    version: str
    kind: str
    name: str
    handles: str
    available: bool
    status: str
    install: str = ""
    error: str = ""
    blocked: bool = False


def _gpu_reason() -> str:
    """Why CUDA exporters cannot work here ("" when a CUDA device is present)."""
    count, why = cuda_devices()
    return "" if count else f"no CUDA device ({why})"


def _cuda_only(h: Handler) -> bool:
    return isinstance(h, Exporter) and all(d.startswith("cuda") for d in h.devices)


def listing(registry: Registry) -> list[Row]:
    """Every row of ``registry.plugins()`` (the same fields, plus ``status``); CUDA-only exporters
    are unavailable, with the reason, when no CUDA device is present."""
    cuda = {(h.plugin, h.name) for h in registry.exporters() if _cuda_only(h)}
    rows = []
    for info in registry.plugins():
        row = Row(
            info.plugin,
            info.version,
            info.kind,
            info.name,
            info.handles,
            info.available,
            info.status,
            info.install,
            info.error,
            info.blocked,
        )
        if info.kind == "exporter" and (info.plugin, info.name) in cuda:
            reason = _gpu_reason()
            if reason:
                status = f"unavailable: {reason}" + (f"; {info.install}" if info.install else "")
                row = replace(row, available=False, status=status, error=reason)
        rows.append(row)
    return rows


@dataclass(frozen=True)
class Candidate:
    """One handler considered for an input: chosen or not, and why."""

    kind: str
    plugin: str
    name: str
    priority: int | None  # None: the plugin is not loaded
    chosen: bool
    reason: str


@dataclass
class Explanation:
    """Which handler each kind would use for ``target``, and why the others were not used."""

    target: str
    what: str
    candidates: list[Candidate] = field(default_factory=list)

    def chosen(self, kind: str) -> Candidate | None:
        """The handler of ``kind`` that would be used (None: nothing can handle the input)."""
        return next((c for c in self.candidates if c.kind == kind and c.chosen), None)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {"target": self.target, "what": self.what, "candidates": [asdict(c) for c in self.candidates]}

    def lines(self) -> list[str]:
        """The report as text, one kind at a time, the chosen handler first."""
        out = [f"{self.target}: {self.what}"]
        kinds = list(dict.fromkeys(c.kind for c in self.candidates))
        for kind in kinds:
            group = [c for c in self.candidates if c.kind == kind]
            pick = next((c for c in group if c.chosen), None)
            out.append(f"  {kind}: " + (f"{pick.plugin}/{pick.name}" if pick else "none can handle it"))
            for c in sorted(group, key=lambda c: not c.chosen):
                mark = "*" if c.chosen else "-"
                rank = "not loaded" if c.priority is None else f"priority {c.priority}"
                out.append(f"    {mark} {c.plugin}/{c.name} ({rank}): {c.reason}")
        if not self.candidates:
            out.append("  no handler of any kind matches it; run `ome-arrow-core plugins` to list them")
        return out


def _missing(h: Handler) -> list[str]:
    return [m for m in h.requires if importlib.util.find_spec(m) is None]


def _rank(
    kind: str,
    handlers: Sequence[Handler],
    matches: Sequence[bool],
    why_not: str,
    extra_check: Callable[[Handler], str] | None = None,
) -> list[Candidate]:
    """Candidates in the registry's order: the first available matching handler wins."""
    out: list[Candidate] = []
    winner: Handler | None = None
    for h, ok in zip(handlers, matches):
        if not ok:
            why = why_not.format(d=_describe(h), s=" ".join(getattr(h, "suffixes", ())))
            out.append(Candidate(kind, h.plugin, h.name, h.priority, False, why))
            continue
        missing = _missing(h)
        if missing:
            reason = f"library missing: {', '.join(missing)} ({h.install})"
        elif extra_check is not None and extra_check(h):
            reason = extra_check(h)
        elif winner is not None and winner.priority == h.priority:
            reason = f"also accepts it; {winner.plugin}/{winner.name} has the same priority and was registered first"
        elif winner is not None:
            reason = f"also accepts it, but {winner.plugin}/{winner.name} has a higher priority ({winner.priority})"
        else:
            winner = h
            out.append(Candidate(kind, h.plugin, h.name, h.priority, True, "accepts it and comes first"))
            continue
        out.append(Candidate(kind, h.plugin, h.name, h.priority, False, reason))
    return out


def _describe(h: Handler) -> str:
    if isinstance(h, Reader):
        return " ".join(h.suffixes) or "sniffed files"
    if isinstance(h, Writer):
        return "|".join(h.formats)
    if isinstance(h, Exporter):
        return "|".join(h.devices)
    return h.description


def _not_loaded(kind: str, registry: Registry, backend_name: str | None) -> list[Candidate]:
    """A first-party backend that would handle the input but is blocked, missing or failed."""
    out = []
    for name, err in sorted(registry.failures.items()):
        out.append(Candidate(kind, name, name, None, False, f"plugin failed to load: {err}"))
    backend = FIRST_PARTY.get(backend_name or "")
    if backend is None or any(c.plugin == backend.name for c in out):
        return out
    if backend.name in registry.blocked:
        out.append(
            Candidate(kind, backend.name, backend.name, None, False, f"would handle it, but is blocked by {BLOCK_ENV}")
        )
    else:
        loaded = {h.plugin for h in (*registry.readers(), *registry.writers())}
        if backend.name not in loaded:
            why = (
                f"would handle it; {backend.distribution} is installed but not registered in this registry"
                if _installed(backend.distribution)
                else f"would handle it, but {backend.distribution} is not installed: {backend.install}"
            )
            out.append(Candidate(kind, backend.name, backend.name, None, False, why))
    return out


def _installed(distribution: str) -> bool:
    try:
        md.version(distribution)
    except md.PackageNotFoundError:
        return False
    return True


def explain(target: str, registry: Registry) -> Explanation:
    """Which reader, writer, exporter or ingester would handle ``target`` and why the others would not.

    Args:
        target: a path (existing or not: its suffix counts), a format (``ome-tiff``,
            ``vortex``), a device (``cpu``, ``cuda``) or an array type (``numpy.ndarray``,
            ``torch.Tensor``, ``jax.Array``; its module is imported to build a sample).
        registry: the registry whose resolution is explained (the CLI's: the default one).

    Returns:
        Every handler of the kinds that apply, in the registry's order, each chosen or not
        with its reason; ``chosen(kind)`` is the one that would be used.
    """
    devices = {d for h in registry.exporters() for d in h.devices}
    formats = {f for h in registry.writers() for f in h.formats} | {h.name for h in registry.readers()}
    if target.split(":")[0] in devices | {"cuda"}:
        return _explain_device(target.split(":")[0], registry)
    if target in formats or for_format(target) is not None:
        return _explain_format(target, registry)
    if "." in target and not Path(target).exists() and _looks_like_type(target):
        return _explain_type(target, registry)
    return _explain_path(target, registry)


def _explain_path(target: str, registry: Registry) -> Explanation:
    path = Path(target)
    readers = list(registry.readers())
    ex = Explanation(target, "as an input (readers, by suffix or by sniffing the file)")
    ex.candidates += _rank("reader", readers, [r.accepts(path) for r in readers], "does not accept it (suffixes: {d})")
    writers = [w for w in registry.writers() if w.formats]
    name = path.name.lower()
    suffix_ok = [any(name.endswith(s) for s in w.suffixes) for w in writers]
    if any(suffix_ok):
        ex.what += "; as a convert output (writers, by suffix)"
        ex.candidates += _rank("writer", writers, suffix_ok, "writes other suffixes ({s})")
    backend = for_path(path)
    if ex.chosen("reader") is None:
        ex.candidates += _not_loaded("reader", registry, backend.name if backend else None)
    return ex


def _explain_format(fmt: str, registry: Registry) -> Explanation:
    ex = Explanation(fmt, "as a format name (export(how=...), convert --to, readers by name)")
    writers = list(registry.writers())
    ex.candidates += _rank("writer", writers, [fmt in w.formats for w in writers], "writes {d}")
    readers = list(registry.readers())
    by_name = [r.name == fmt for r in readers]
    if any(by_name):  # OMEArrow(path, format=...) picks readers by name
        ex.candidates += _rank("reader", readers, by_name, "is another format")
    backend = for_format(fmt)
    if ex.chosen("writer") is None:
        ex.candidates += _not_loaded("writer", registry, backend.name if backend else None)
    return ex


def _explain_device(device: str, registry: Registry) -> Explanation:
    ex = Explanation(device, f"as a device (exporters for to_dlpack(device={device!r}) and the to_* modes)")
    exporters = list(registry.exporters())
    gpu = _gpu_reason() if device == "cuda" else ""
    modes = list(dict.fromkeys(m for h in exporters if device in h.devices for m in h.modes))
    check = (lambda h: gpu) if gpu else None
    ex.candidates += _rank(
        "exporter (any mode)", exporters, [device in h.devices for h in exporters], "exports to {d}", check
    )
    for mode in modes:
        shown = [h for h in exporters if device in h.devices and (mode in h.modes or "*" in h.modes)]
        ex.candidates += _rank(f"exporter mode={mode}", shown, [True] * len(shown), "", check)
    return ex


def _looks_like_type(target: str) -> bool:
    module = target.rsplit(".", 1)[0]
    return (
        all(part.isidentifier() for part in target.split("."))
        and importlib.util.find_spec(module.split(".")[0]) is not None
    )


#: Small objects of well-known array types, to ask each ingester's ``matches``.
_SAMPLES = {
    "numpy.ndarray": ("numpy", "zeros"),
    "torch.Tensor": ("torch", "zeros"),
    "jax.Array": ("jax.numpy", "zeros"),
    "cupy.ndarray": ("cupy", "zeros"),
}


def _explain_type(target: str, registry: Registry) -> Explanation:
    ex = Explanation(target, "as an array type (ingesters: OMEArrow(obj))")
    module, func = _SAMPLES.get(target, (None, None))
    sample: object
    if module is None:
        mod_name, _, cls_name = target.rpartition(".")
        try:
            cls = getattr(importlib.import_module(mod_name), cls_name)
            sample = cls()
        except Exception as exc:
            ex.what += f"; cannot build a {target} to test ingesters with ({type(exc).__name__}: {exc})"
            return ex
    else:
        try:
            sample = getattr(importlib.import_module(module), func)((1,))  # type: ignore[arg-type]
        except Exception as exc:
            ex.what += f"; cannot build a {target} here ({type(exc).__name__}: {exc})"
            return ex
    ingesters = list(registry.ingesters())
    ex.candidates += _rank("ingester", ingesters, [i.matches(sample) for i in ingesters], "does not match it ({d})")
    return ex
