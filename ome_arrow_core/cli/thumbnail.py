"""``ome-arrow-core thumbnail``: an image (or a dataset's first images) as a PNG, with no plotting library.

The picture is rendered before anything is written and then written atomically, so a damaged
input leaves no partial PNG. An existing ``-o`` that is a PNG is replaced; anything else there
(another kind of file) is refused unless ``--force``; a directory is never replaced.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..display import PNG_SIGNATURE, encode_png, thumbnail
from ..display.grid import GRID_IMAGES, cells, mosaic
from ..errors import ArgumentError, UnsafeOverwriteError
from ..image import OMEArrow
from ..safe_write import atomic_path
from ..uris import local_path
from .info import pick_image
from .targets import open_many, target

__all__ = ["cmd_thumbnail", "add_parser", "check_output", "smallest_level"]


def check_output(out: Path, force: bool) -> None:
    """Refuse an ``-o`` that is a directory or not named ``.png`` (PNG bytes in a ``.jpg`` mislead every viewer),
    or (without ``force``) an existing file that is not a PNG."""
    if out.suffix.lower() != ".png":
        raise ArgumentError(
            f"{out}: the thumbnail is a PNG image; name the output .png (e.g. {out.with_suffix('.png').name})"
        )
    if out.is_dir():
        raise UnsafeOverwriteError(f"{out} is a directory; the thumbnail is one PNG file: pass a file name")
    if force or not os.path.lexists(out):
        return
    try:
        with open(out, "rb") as f:
            head = f.read(len(PNG_SIGNATURE))
    except OSError:
        head = b""
    if head != PNG_SIGNATURE:
        raise UnsafeOverwriteError(f"{out} exists and is not a PNG; pass --force to replace it (nothing was written)")


def smallest_level(img: OMEArrow, size: int) -> int:
    """The smallest pyramid level (``info()["levels"]``) whose longer side still has ``size`` pixels; 0 without levels."""
    levels = img.info().get("levels") or ()
    best = 0
    for k, level in enumerate(levels):
        shape = level.get("shape") if isinstance(level, dict) else None
        if isinstance(shape, (list, tuple)) and len(shape) == 5 and max(int(shape[3]), int(shape[4])) >= size:
            best = k
    return best


def _picture(args: argparse.Namespace) -> np.ndarray:
    t = target(args.path)
    picked = args.row is not None or args.image is not None
    ds = open_many(t, args.column)
    if ds is not None:
        if picked:
            return thumbnail(ds[pick_image(ds, str(t), args.row, args.image)], args.size, t=args.t)
        if len(ds) > 1:
            grid = cells(ds, args.grid, args.size)
            failed = [c.failure for c in grid if c.failure is not None]
            if failed:  # the first one's own error (it names the file); nothing is written
                raise failed[0]
            return mosaic(grid, args.size)
    elif args.image is not None:
        raise ArgumentError(f"--image picks an image of a dataset directory or table; {t} holds one image")
    img = OMEArrow.scan(t.arg, column=args.column, row=args.row or 0)
    level = smallest_level(img, args.size)
    if level:
        img = OMEArrow.scan(t.arg, level=level)
    return thumbnail(img, args.size, t=args.t)


def cmd_thumbnail(args: argparse.Namespace) -> int:
    """Render the input and write it to ``-o`` as a PNG, atomically."""
    out = local_path(args.output, "thumbnail -o", "write the PNG to a local path, then copy it")
    check_output(out, args.force)
    png = encode_png(_picture(args))
    with atomic_path(out) as tmp:
        tmp.write_bytes(png)
    if not args.quiet:
        print(f"wrote {out} ({len(png)} bytes)")
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_parser(sub: Any) -> None:
    """The ``thumbnail`` subcommand."""
    p = sub.add_parser(
        "thumbnail",
        help="an image as a PNG: max over Z, channels in their colours, robust auto-contrast",
        description="Render one image (max projection over Z at one T, channels composited in their stored "
        "colours, 0.1-99.9 percentile contrast per channel) or a grid of a dataset's first images, "
        "and write it as a PNG. Reads only the planes and rows it shows (and the smallest pyramid "
        "level that is large enough).",
    )
    p.add_argument(
        "path",
        help="image file, table or dataset directory: a local path, file://, or a URI the library reads "
        "(s3://, gs://, az://, http(s)://; S3-compatible servers: AWS_ENDPOINT_URL)",
    )
    p.add_argument("-o", "--output", required=True, help="the local PNG file to write (an existing PNG is replaced)")
    p.add_argument("--row", type=int, help="the image in this row (0-based) of a dataset or table")
    p.add_argument("--image", metavar="ID", help="the image with this id in a dataset or table")
    p.add_argument("--column", help="the OME-Arrow column to read, in a table that has several")
    p.add_argument(
        "--size",
        type=_positive,
        default=256,
        help="longest side in pixels (default 256; 128 a cell in a dataset's grid is a good choice)",
    )
    p.add_argument("--t", type=int, default=0, help="the T index to show (default 0)")
    p.add_argument(
        "--grid",
        type=_positive,
        default=GRID_IMAGES,
        help=f"a dataset without --row/--image: how many of its first images (default {GRID_IMAGES})",
    )
    p.add_argument("-f", "--force", action="store_true", help="replace an existing output that is not a PNG")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary line")
    p.set_defaults(func=cmd_thumbnail)
