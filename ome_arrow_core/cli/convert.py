"""``ome-arrow-core convert``: TIFF / OME-TIFF / .npy / OME-Arrow inputs to one OME-Arrow output."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import OMEArrowError, UnsafeOverwriteError
from ..image import OMEArrow
from ..progress import Progress
from ..registry import default_registry
from ..sources import WrappedSource
from .errors import error_line
from .targets import Target, exists, remote_dataset, remote_output, target

if TYPE_CHECKING:
    from ..dataset import OMEArrowDataset

__all__ = ["cmd_convert", "add_parser", "counted", "pixel_bytes"]


def _load(t: Target) -> OMEArrow:
    """``t`` opened lazily (metadata now, pixels when written), so many inputs stream; a quoted glob or
    file pattern is one image stacked from its files."""
    return OMEArrow.scan(t.arg)


def _out_format(out: Target, how: str | None) -> str:
    if how:
        return how
    found = default_registry().output_format(out.path)
    if found is not None:
        return found
    raise OMEArrowError(f"cannot tell the output format of {out}; pass --to parquet|vortex|ome-tiff|ome-zarr")


def _dataset(t: Target) -> OMEArrowDataset | None:
    """The dataset directory ``t`` names (local or remote); None for anything else (an OME-Zarr store: one image)."""
    if t.remote:
        return remote_dataset(t, None)
    assert isinstance(t.arg, Path)
    if t.arg.is_dir() and default_registry().resolve_reader(t.arg).name == "parquet":
        from ..dataset import OMEArrowDataset

        return OMEArrowDataset.scan(t.arg)
    return None


def _folder(path: Path) -> bool:
    """True for a directory no reader opens as one image or dataset: a folder of image files."""
    try:
        default_registry().resolve_reader(path)
    except OMEArrowError:
        return True
    return False


def _expand(t: Target, img: OMEArrow) -> list[OMEArrow]:
    """Every image of ``t``: a multi-image dataset directory, a multi-row table or a file of several image
    series (an OME-TIFF of several images) gives each of its images."""
    ds = _dataset(t)
    if ds is not None:
        return list(ds) if len(ds) > 1 else [img]
    info = img.info()
    rows = int(info.get("rows_in_file") or info.get("series_count") or 1)  # one image a row or a series
    return [img] + [OMEArrow.scan(t.arg, row=i) for i in range(1, rows)]


def _with_id(img: OMEArrow, image_id: str, name: str | None = None) -> OMEArrow:
    """``img`` under id ``image_id`` (and ``name``, when given): the id its output image gets."""
    meta = replace(img.source.meta, id=image_id, name=img.source.meta.name if name is None else name)
    return OMEArrow.from_source(WrappedSource(img.source, meta), img.selection)


def _ids(groups: list[tuple[Target, list[OMEArrow]]]) -> list[str] | None:
    """Image ids for the output: each image keeps its own id (prefixed by its file's name where several
    inputs are converted); None (image-NNNNN) where those would not be unique."""
    several = len(groups) > 1
    ids = [
        (f"{t.path.name}:{im.meta.id}" if several and len(ims) > 1 else t.path.name if several else im.meta.id)
        for t, ims in groups
        for im in ims
    ]
    return ids if len(set(ids)) == len(ids) and all(ids) else None


def pixel_bytes(img: OMEArrow) -> int:
    """Bytes of ``img``'s pixels (what reading and writing it moves)."""
    return math.prod(img.shape) * img.dtype.itemsize


def counted(images: list[OMEArrow], bar: Progress) -> Iterator[OMEArrow]:
    """``images`` one at a time; each is counted once the writer asks for the next: its pixels have been
    read and packed (written to disk in batches of up to 16 MiB)."""
    for im in images:
        yield im
        bar.update(pixel_bytes(im), str(im.meta.id))


def cmd_convert(args: argparse.Namespace) -> int:
    """Convert inputs to one OME-Arrow output; a failed input is reported and skipped."""
    out = target(args.output)
    how = _out_format(out, args.to)
    if args.force and args.mode not in (None, "overwrite"):  # --force would replace what --mode append adds to
        print(
            f"error: --force replaces {out}, which --mode {args.mode} does not: pass one of them; nothing written",
            file=sys.stderr,
        )
        return 1
    mode = "overwrite" if args.force else args.mode or "create"
    # a remote output: only a writer that writes object storage (never HTTP); refused before any input is read
    present = exists(remote_output(args.output, how)) if out.remote else os.path.lexists(out.arg)
    if how in ("ome-zarr", "zarr") and present:  # its writer never replaces a store (see ome-zarr.md)
        print(
            f"error: {out} exists; an OME-Zarr output is never replaced, --force or not (a store may hold arrays "
            "that are not ours): remove it yourself, or choose another output path",
            file=sys.stderr,
        )
        return 1
    if mode == "create" and present:
        print(
            f"error: {out} exists; pass --force to replace it (only an OME-Arrow dataset holding nothing "
            "else, or a file, is replaced) or --mode append to add the images to the dataset",
            file=sys.stderr,
        )
        return 1
    if mode == "append" and how != "parquet":
        print(f"error: --mode append adds images to a dataset directory; {how} holds one image", file=sys.stderr)
        return 1
    inputs = [target(p) for p in args.inputs]
    failed: list[str] = []
    groups: list[tuple[Target, list[OMEArrow]]] = []
    for t in inputs:  # metadata only: errors come out here, before any progress line
        try:
            if not t.remote and isinstance(t.arg, Path) and t.arg.is_dir() and _folder(t.arg):
                from ..dataset import OMEArrowDataset

                folder = OMEArrowDataset.scan(t.arg)  # each file's images, under the ids the scan gives them
                ids = [str(i) for i in folder.table.column("image_id").to_pylist()]
                groups.append((t, [_with_id(im, i) for im, i in zip(folder, ids, strict=True)]))
                continue
            img = _load(t)
            if len(inputs) > 1:  # each input's image is named for its file
                img = _with_id(img, t.path.name, t.path.stem)
            groups.append((t, _expand(t, img)))
        except (OMEArrowError, OSError, ValueError) as exc:
            failed.append(f"{t}: {exc}")
            print(f"error: {t}: {error_line(exc)}", file=sys.stderr)
    images = [im for _, ims in groups for im in ims]
    if not images:
        if len(inputs) > 1:  # one input has had its one line already
            print("error: no input could be read; nothing written", file=sys.stderr)
        return 1
    if how != "parquet" and len(images) > 1:
        print(
            f"error: the inputs hold {len(images)} images, which make one multi-image dataset directory; "
            f"{how} holds one image: convert to .ome.parquet, or one image at a time (in Python, image i of a "
            "file: OMEArrow.scan(path, row=i).export(out=...))",
            file=sys.stderr,
        )
        return 1
    if args.record and how not in ("parquet", "vortex"):
        print(
            f"error: --record writes ome-arrow 0.1.0's one-record layout, a .parquet or .vortex file; not {how}",
            file=sys.stderr,
        )
        return 1
    if args.record and (mode == "append" or len(images) > 1):
        print(
            f"error: --record writes one image as one record file; the inputs hold {len(images)} image(s)"
            f"{' and --mode append adds to a dataset' if mode == 'append' else ''}: convert one image at a time, or "
            "drop --record to write a dataset directory (which ome-arrow 0.1.0 reads too)",
            file=sys.stderr,
        )
        return 1
    opts: dict[str, Any] = {"layout": "record"} if args.record else {}
    if args.chunk_shape:
        try:
            opts["chunk_shape"] = tuple(int(v) for v in args.chunk_shape.split(","))
        except ValueError:
            print(
                f"error: --chunk-shape {args.chunk_shape!r}: give integers separated by commas, y,x or z,y,x "
                "(e.g. --chunk-shape 256,256); nothing written",
                file=sys.stderr,
            )
            return 1
    if args.compression:
        opts["compression"] = None if args.compression == "none" else args.compression
    total = sum(pixel_bytes(im) for im in images)
    with Progress(total, "convert", enabled=False if args.quiet else None) as bar:
        if how == "parquet" and not args.record:
            from ..dataset import write_dataset

            try:
                write_dataset(
                    counted(images, bar),
                    out.arg,
                    mode=mode,  # type: ignore[arg-type]
                    chunk_format=args.chunk_format,
                    image_ids=None if mode == "append" else _ids(groups),
                    progress=False,
                    **opts,
                )
            except UnsafeOverwriteError:
                if mode != "create" or not os.path.lexists(out.arg):
                    raise
                print(  # made by another process since the check above: said in the CLI's words, not Python's
                    f"error: {out} was created by another process while converting; nothing of this run was "
                    "written: pass --force to replace it or --mode append to add the images to it",
                    file=sys.stderr,
                )
                return 1
        else:
            images[0].export(how, out.arg, **opts)
            bar.update(total, str(images[0].meta.id))
    if not args.quiet:
        print(f"wrote {out} ({len(images)} image(s), {how}{', appended' if mode == 'append' else ''})")
    return 1 if failed else 0


def add_parser(sub: Any) -> None:
    """The ``convert`` subcommand."""
    p = sub.add_parser(
        "convert",
        help="convert images (OME-TIFF, TIFF, OME-Zarr, OME-Arrow, .npy, what bioio opens; local or remote) to "
        "OME-Arrow Parquet, Vortex, OME-TIFF or OME-Zarr",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        help="input files or dataset directories (several make one multi-image dataset): local paths, file://, or "
        "URIs the library reads (s3://, gs://, az://, http(s)://; S3-compatible servers: AWS_ENDPOINT_URL)",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="output path: .ome.parquet (a dataset directory: one or more images), .vortex, .ome.tiff or .ome.zarr "
        "(one image each); .ome.parquet, .ome.tiff and .ome.zarr may also be object storage (s3://, gs://, az://), "
        "never http(s)://",
    )
    p.add_argument("--to", choices=None, help="output format (default: from the output suffix)")
    p.add_argument(
        "--chunk-shape", help="chunk shape as y,x or z,y,x (default: planes up to 256x256, else 256x256 tiles)"
    )
    p.add_argument(
        "--compression",
        help="Parquet chunks: none (default; on append: the dataset's), lz4, zstd or snappy; Vortex: none or zstd",
    )
    p.add_argument(
        "--chunk-format",
        choices=("parquet", "vortex"),
        help="file format of a dataset directory's chunk files (default: parquet; vortex needs [vortex])",
    )
    p.add_argument(
        "--record",
        action="store_true",
        help="write ome-arrow 0.1.0's layout, which it reads: one image as one OME-Arrow record in a .parquet or "
        ".vortex file (read whole; not a dataset directory, not chunked)",
    )
    p.add_argument(
        "--mode",
        choices=("create", "overwrite", "append"),
        default=None,
        help="create (default): refuse an existing output; overwrite: replace it (a file, or an "
        "OME-Arrow dataset directory holding nothing else; anything else is refused); "
        "append: add the images to the dataset directory",
    )
    p.add_argument(
        "-f",
        "--force",
        action="store_true",
        help="replace an existing output file or OME-Arrow dataset (same as --mode overwrite; never an OME-Zarr store)",
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar (shown on a terminal: pixel bytes read and written) and no summary line",
    )
    p.set_defaults(func=cmd_convert)
