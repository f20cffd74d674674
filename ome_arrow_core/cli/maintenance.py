"""``cleanup``, ``compact`` and ``verify``: looking after a dataset on disk."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["cmd_cleanup", "cmd_compact", "cmd_verify", "add_parsers"]


def cmd_cleanup(args: argparse.Namespace) -> int:
    """Remove what killed writes left at PATH (never a live writer's files, never a name that is not ours)."""
    from ..typed_chunk import cleanup_dataset

    report = cleanup_dataset(args.path)
    for path in report.restored:
        print(f"restored {path} (a killed overwrite had moved it aside)")
    for path in report.removed:
        print(f"removed {path}")
    for note in report.kept:
        print(f"kept {note}")
    if not (report.restored or report.removed or report.kept or args.quiet):
        print(f"{args.path}: nothing to clean up")
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    """Merge a dataset's appended chunk files into one chunks.parquet (what ome-arrow 0.1.0 reads)."""
    from ..typed_chunk import compact_dataset

    merged = compact_dataset(args.path)
    if not args.quiet:
        if merged:
            print(f"compacted {args.path}: {', '.join(merged)} -> chunks.parquet")
        else:
            print(f"{args.path} is already one chunk file (chunks.parquet); nothing to do")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Check a dataset or file (every chunk's checksum) and list what is damaged; 1 when anything is."""
    from ..verification import report_json, verify

    report = verify(args.path)
    if args.json:
        print(report_json(report))
    else:
        for line in report.lines():
            print(line)
    return 0 if report.ok else 1


def add_parsers(sub: Any) -> None:
    """The ``cleanup``, ``compact`` and ``verify`` subcommands."""
    p = sub.add_parser(
        "cleanup",
        help="remove what killed writes left (temporaries, unlisted append files); restore a moved copy",
        description="Remove the temporaries (.NAME.ome-arrow-tmp.PID.RANDOM, .NAME.ome-arrow-old.PID.RANDOM) that "
        "killed writes left beside and inside PATH, put back a dataset a killed overwrite moved aside, "
        "and remove the files an interrupted append left in a dataset. Only names of ours whose writer "
        "is gone are touched; a dataset a writer holds is left alone.",
    )
    p.add_argument("path", help="local dataset directory or output file")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing when there is nothing to do")
    p.set_defaults(func=cmd_cleanup)

    p = sub.add_parser(
        "compact",
        help="merge a dataset's appended chunk files into one chunks.parquet (ome-arrow 0.1.0 reads it)",
        description="Merge the chunk files appends add (chunks-NNNNN.parquet) into one chunks.parquet, atomically, "
        "so ome-arrow 0.1.0 reads every image. A dataset already in one file is left untouched.",
    )
    p.add_argument("path", help="local dataset directory")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=cmd_compact)

    p = sub.add_parser(
        "verify",
        help="check a dataset or file: every chunk's checksum, every table and chunk file; list damage",
        description="Check a dataset directory (manifest, tables, chunk files, every chunk's checksum and coverage), "
        "a struct-record Parquet file, a Vortex file or an OME-TIFF (every plane decodes). Prints each "
        "damaged file, member, image id and chunk id, or 'ok' with counts. Exit 0 clean, 1 damaged.",
    )
    p.add_argument(
        "path", help="local dataset directory or image file (it reads every byte: copy a remote one to a local disk)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.set_defaults(func=cmd_verify)
