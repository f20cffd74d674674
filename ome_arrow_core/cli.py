"""The ``ome-arrow-core`` command: convert, info, compact, cleanup, plugins, verify.

Exit codes: 0 success, 1 error (one clear line; ``--debug`` shows the traceback), 2 usage,
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import OMEArrowError
from .image import OMEArrow
from .progress import Progress
from .registry import default_registry

__all__ = ["main"]


def _load(path: Path) -> OMEArrow:
    """``path`` opened lazily (metadata now, pixels when written), so many inputs stream."""
    if path.suffix.lower() == ".npy":
        return OMEArrow(np.load(path, mmap_mode="r"), name=path.stem)
    return OMEArrow.scan(path)


def _out_format(out: Path, how: str | None) -> str:
    if how:
        return how
    name = out.name.lower()
    for writer in default_registry().writers():
        if any(name.endswith(s) for s in writer.suffixes) and writer.formats:
            return writer.formats[0]
    raise OMEArrowError(f"cannot tell the output format of {out}; pass --to parquet|vortex|ome-tiff")


def _expand(path: Path, img: OMEArrow) -> list[OMEArrow]:
    """Every image of ``path``: a multi-image dataset directory or a multi-row table gives each of its images."""
    if path.is_dir():
        from .dataset import OMEArrowDataset

        ds = OMEArrowDataset.scan(path)
        return list(ds) if len(ds) > 1 else [img]
    rows = int(img.info().get("rows_in_file") or 1)  # a table of struct records: one image a row
    return [img] + [OMEArrow.scan(path, row=i) for i in range(1, rows)]


def _ids(groups: list[tuple[Path, list[OMEArrow]]]) -> list[str] | None:
    """Image ids for the output: each image keeps its own id (prefixed by its file's name where several
    inputs are converted); None (image-NNNNN) where those would not be unique."""
    several = len(groups) > 1
    ids = [(f"{p.name}:{im.meta.id}" if several and len(ims) > 1 else p.name if several else im.meta.id)
           for p, ims in groups for im in ims]
    return ids if len(set(ids)) == len(ids) and all(ids) else None


def cmd_convert(args: argparse.Namespace) -> int:
    """Convert inputs to one OME-Arrow output; a failed input is reported and skipped."""
    out = Path(args.output)
    how = _out_format(out, args.to)
    mode = "overwrite" if args.force else args.mode
    if mode == "create" and os.path.lexists(out):
        print(f"error: {out} exists; pass --force to replace it (only an OME-Arrow dataset holding nothing "
              "else, or a file, is replaced) or --mode append to add the images to the dataset", file=sys.stderr)
        return 1
    if mode == "append" and how != "parquet":
        print(f"error: --mode append adds images to a dataset directory; {how} holds one image", file=sys.stderr)
        return 1
    inputs = [Path(p) for p in args.inputs]
    total = sum(p.stat().st_size if p.is_file() else 0 for p in inputs)
    failed: list[str] = []
    groups: list[tuple[Path, list[OMEArrow]]] = []
    with Progress(total, desc="convert", disable=args.quiet) as bar:
        for p in inputs:
            try:
                img = _load(p)
                if len(inputs) > 1:
                    img.source.meta = replace(img.source.meta, id=p.name, name=p.stem)
                groups.append((p, _expand(p, img)))
            except (OMEArrowError, OSError, ValueError) as exc:
                failed.append(f"{p}: {exc}")
                print(f"error: {p}: {error_line(exc)}", file=sys.stderr)
            bar.update(p.stat().st_size if p.is_file() else 0, p.name)
    images = [im for _, ims in groups for im in ims]
    if not images:
        if len(inputs) > 1:  # one input has had its one line already
            print("error: no input could be read; nothing written", file=sys.stderr)
        return 1
    opts: dict[str, Any] = {}
    if args.chunk_shape:
        opts["chunk_shape"] = tuple(int(v) for v in args.chunk_shape.split(","))
    if args.compression:
        opts["compression"] = None if args.compression == "none" else args.compression
    if how == "parquet":
        _write_many(images, out, opts, args.chunk_format, args.quiet, mode,
                    None if mode == "append" else _ids(groups))
    elif len(images) > 1:
        print(f"error: the inputs hold {len(images)} images, which make one multi-image dataset directory; "
              f"{how} holds one image: convert to .ome.parquet, or one image at a time", file=sys.stderr)
        return 1
    else:
        images[0].export(how, out, **opts)
    if not args.quiet:
        print(f"wrote {out} ({len(images)} image(s), {how}{', appended' if mode == 'append' else ''})")
    return 1 if failed else 0


def _write_many(images: list[OMEArrow], out: Path, opts: dict[str, Any], chunk_format: str | None,
                quiet: bool, mode: str, ids: list[str] | None) -> None:
    """Stream ``images`` (read one at a time) into one dataset directory at ``out`` (``mode`` as write_dataset's)."""
    from .dataset import write_dataset

    write_dataset(images, out, mode=mode, image_ids=ids, chunk_format=chunk_format,  # type: ignore[arg-type]
                  progress=False if quiet else None, **opts)


def cmd_cleanup(args: argparse.Namespace) -> int:
    """Remove what killed writes left at PATH (never a live writer's files, never a name that is not ours)."""
    from .typed_chunk import cleanup_dataset

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


def _rows(info: dict[str, Any]) -> Iterator[str]:
    shape = info.pop("shape")
    yield "shape     " + "  ".join(f"{k}={v}" for k, v in shape.items())
    yield f"dtype     {info.pop('dtype')}"
    ps, pu = info.pop("physical_size"), info.pop("physical_unit")
    yield "physical  " + "  ".join(f"{a}={ps[a]:g} {pu[a]}" for a in "XYZ")
    yield "channels  " + ", ".join(info.pop("channels"))
    for k, v in info.items():
        yield f"{k:<9} {v}"


def cmd_info(args: argparse.Namespace) -> int:
    """Print shape per axis, dtype, physical sizes, channels and storage of an image."""
    img = OMEArrow.scan(args.path)
    info = img.info()
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        print(f"{args.path}")
        for line in _rows(info):
            print("  " + line)
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    """Merge a dataset's appended chunk files into one chunks.parquet (what ome-arrow 0.1.0 reads)."""
    from .typed_chunk import compact_dataset

    merged = compact_dataset(args.path)
    if not args.quiet:
        if merged:
            print(f"compacted {args.path}: {', '.join(merged)} -> chunks.parquet")
        else:
            print(f"{args.path} is already one chunk file (chunks.parquet); nothing to do")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    """List every backend: version, what it handles, availability, how to install."""
    rows = default_registry().plugins()
    if args.json:
        print(json.dumps([{**r.__dict__, "status": r.status} for r in rows], indent=2))
        return 0
    head = ("plugin", "version", "kind", "name", "handles", "status")
    table = [head] + [
        (r.plugin, r.version or "-", r.kind, r.name, r.handles, r.status)
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in table[:]) for i in range(len(head) - 1)]
    for row in table:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Check a dataset or file (every chunk's checksum) and list what is damaged; 1 when anything is."""
    from .verification import report_json, verify

    report = verify(args.path)
    if args.json:
        print(report_json(report))
    else:
        for line in report.lines():
            print(line)
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for docs and tests)."""
    parser = argparse.ArgumentParser(prog="ome-arrow-core", description="OME-Arrow images as tensors.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("convert", help="convert TIFF / OME-TIFF / .npy / OME-Arrow to OME-Arrow Parquet or Vortex")
    p.add_argument("inputs", nargs="+", help="input files (several make one multi-image dataset)")
    p.add_argument("-o", "--output", required=True, help="output path (.ome.parquet directory or .vortex)")
    p.add_argument("--to", choices=None, help="output format (default: from the output suffix)")
    p.add_argument("--chunk-shape", help="chunk shape as y,x or z,y,x (default: whole planes up to 512x512)")
    p.add_argument("--compression", help="Parquet chunks: lz4 (default), zstd, snappy or none; Vortex: none or zstd")
    p.add_argument("--chunk-format", choices=("parquet", "vortex"),
                   help="file format of a dataset directory's chunk files (default: parquet; vortex needs [vortex])")
    p.add_argument("--mode", choices=("create", "overwrite", "append"), default="create",
                   help="create (default): refuse an existing output; overwrite: replace it (a file, or an "
                        "OME-Arrow dataset directory holding nothing else; anything else is refused); "
                        "append: add the images to the dataset directory")
    p.add_argument("-f", "--force", action="store_true", help="replace an existing output (same as --mode overwrite)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser(
        "cleanup", help="remove what killed writes left (temporaries, unlisted append files); restore a moved copy",
        description="Remove the temporaries (.NAME.ome-arrow-tmp.PID.RANDOM, .NAME.ome-arrow-old.PID.RANDOM) that "
                    "killed writes left beside and inside PATH, put back a dataset a killed overwrite moved aside, "
                    "and remove the files an interrupted append left in a dataset. Only names of ours whose writer "
                    "is gone are touched; a dataset a writer holds is left alone.",
    )
    p.add_argument("path", help="dataset directory or output file")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing when there is nothing to do")
    p.set_defaults(func=cmd_cleanup)

    p = sub.add_parser("info", help="shape, dtype, physical sizes, channels and storage of an image")
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "compact", help="merge a dataset's appended chunk files into one chunks.parquet (ome-arrow 0.1.0 reads it)",
        description="Merge the chunk files appends add (chunks-NNNNN.parquet) into one chunks.parquet, atomically, "
                    "so ome-arrow 0.1.0 reads every image. A dataset already in one file is left untouched.",
    )
    p.add_argument("path", help="dataset directory")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=cmd_compact)

    p = sub.add_parser(
        "verify", help="check a dataset or file: every chunk's checksum, every table and chunk file; list damage",
        description="Check a dataset directory (manifest, tables, chunk files, every chunk's checksum and coverage), "
                    "a struct-record Parquet file, a Vortex file or an OME-TIFF (every plane decodes). Prints each "
                    "damaged file, member, image id and chunk id, or 'ok' with counts. Exit 0 clean, 1 damaged.",
    )
    p.add_argument("path", help="dataset directory or image file")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("plugins", help="list backends, what they handle and how to install missing ones")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plugins)
    return parser


#: Exit code after Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130


def error_line(exc: BaseException) -> str:
    """One line for ``exc``: our errors by their message, any other with its type in front."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if isinstance(exc, OMEArrowError) or (isinstance(exc, OSError) and exc.strerror):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Any failure prints one line on stderr and exits 1 (130 after Ctrl-C); ``--debug`` adds the
    traceback. Usage errors exit 2.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        if args.debug:
            traceback.print_exc()
        print("error: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BaseException as exc:  # noqa: BLE001 (one line for anything, including a Rust panic)
        if isinstance(exc, SystemExit):
            raise
        if args.debug:
            traceback.print_exc()
        hint = "" if args.debug or isinstance(exc, OMEArrowError) else " (--debug shows the traceback)"
        print(f"error: {error_line(exc)}{hint}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
