"""``ome-arrow-core plugins``: every backend with a truthful status; ``--explain`` for one input."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from ..plugin_report import explain, listing
from ..registry import default_registry

__all__ = ["cmd_plugins", "add_parser"]


def cmd_plugins(args: argparse.Namespace) -> int:
    """List every backend (version, what it handles, status), or explain the choice for one input."""
    registry = default_registry()
    if args.explain is not None:
        report = explain(args.explain, registry)
        if args.json:
            print(json.dumps(report.to_dict(), indent=2))
        else:
            print("\n".join(report.lines()))
        return 0
    rows = listing(registry)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return 0
    head = ("plugin", "version", "kind", "name", "handles", "status")
    table = [head] + [(r.plugin, r.version or "-", r.kind, r.name, r.handles, r.status) for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head) - 1)]
    for row in table:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
    return 0


def add_parser(sub: Any) -> None:
    """The ``plugins`` subcommand."""
    p = sub.add_parser(
        "plugins",
        help="list backends, what they handle and how to install missing ones; --explain an input",
        description="List every plugin's handlers with their status: available; unavailable with the exact pip "
        "install (first-party backends that are not installed are listed too) or the reason (CUDA "
        "exporters without a GPU); blocked by OME_ARROW_CORE_BLOCK_PLUGINS; failed to load. "
        "--explain PATH_OR_TYPE says which handler would be used for a path, a format name (ome-tiff), "
        "a device (cpu, cuda) or an array type (numpy.ndarray, torch.Tensor), and why each other "
        "handler was not: lower priority, library missing, blocked, suffix.",
    )
    p.add_argument(
        "--explain",
        metavar="PATH_OR_TYPE",
        help="which handler would be chosen for this path, format, device or array type, and why",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plugins)
