"""``ome-arrow-core info``: one image's shape, dtype, physical sizes, channels and storage, or the
list of images of a dataset or multi-image table."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import ArgumentError, SchemaError
from ..image import OMEArrow
from .targets import open_many, target

if TYPE_CHECKING:
    from ..dataset import OMEArrowDataset

__all__ = ["cmd_info", "add_parser", "pick_image"]

_AXES = "TZCYX"


def _rows(info: dict[str, Any]) -> Iterator[str]:
    shape = info.pop("shape")
    yield "shape     " + "  ".join(f"{k}={v}" for k, v in shape.items())
    yield f"dtype     {info.pop('dtype')}"
    ps, pu = info.pop("physical_size"), info.pop("physical_unit")
    yield "physical  " + "  ".join(f"{a}=unknown" if ps[a] is None else f"{a}={ps[a]:g} {pu[a]}" for a in "XYZ")
    yield "channels  " + ", ".join(info.pop("channels"))
    for k, v in info.items():
        yield f"{k:<9} {v}"


def _print_image(path: str, info: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(info, indent=2, default=str))
        return
    print(path)
    for line in _rows(info):
        print("  " + line)


def _summaries(ds: OMEArrowDataset) -> list[dict[str, Any]]:
    """Per image: row, id, shape, dtype and its metadata columns (from the table when it has them)."""
    table = ds.table
    names = set(table.column_names)
    extras = ds.extra_columns
    cols = {
        n: table.column(n).to_pylist()
        for n in ({"image_id", "dtype"} | {f"size_{a.lower()}" for a in _AXES})
        if n in names
    }
    out = []
    for i in range(len(ds)):
        if all(f"size_{a.lower()}" in cols for a in _AXES) and "dtype" in cols and "image_id" in cols:
            shape = {a: cols[f"size_{a.lower()}"][i] for a in _AXES}
            image_id, dtype = cols["image_id"][i], cols["dtype"][i]
        else:  # struct-record tables: the shape lives in each row's record
            meta = ds[i].meta
            shape, image_id, dtype = dict(zip(_AXES, meta.shape)), meta.id, meta.dtype.name
        row = ds.metadata(i) if extras else {}
        out.append({"row": i, "id": image_id, "shape": shape, "dtype": str(dtype), **{k: row.get(k) for k in extras}})
    return out


#: What the first image's info says about the storage of them all.
_STORAGE = ("storage", "chunk_format", "compression", "format_version", "file_bytes", "images_in_file", "column")


def _print_listing(path: str, ds: OMEArrowDataset, as_json: bool) -> None:
    first = ds[0].info()  # opens the files behind the first image: a damaged one fails here, not later
    storage = {k: first[k] for k in _STORAGE if k in first}
    images = _summaries(ds)
    if as_json:
        print(
            json.dumps(
                {"path": path, **storage, "images": images, "metadata_columns": ds.extra_columns}, indent=2, default=str
            )
        )
        return
    print(f"{path}: {len(images)} images; pick one with --row N or --image ID")
    print("  " + "  ".join(f"{k}={v}" for k, v in storage.items()))
    head = ["row", "id", "shape " + _AXES, "dtype", *ds.extra_columns]
    table = [head] + [
        [
            str(im["row"]),
            str(im["id"]),
            "x".join(str(v) for v in im["shape"].values()),
            im["dtype"],
            *(str(im[c]) for c in ds.extra_columns),
        ]
        for im in images
    ]
    widths = [max(len(r[k]) for r in table) for k in range(len(head))]
    for r in table:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def pick_image(ds: OMEArrowDataset, path: str, row: int | None, image: str | None) -> int:
    """The row of the image ``--row``/``--image`` names."""
    if row is not None:
        if not 0 <= row < len(ds):
            raise ArgumentError(
                f"--row {row} is out of range: {path} holds {len(ds)} image(s) (rows 0 to {len(ds) - 1})"
            )
        return row
    ids = [str(im["id"]) for im in _summaries(ds)]
    if image not in ids:
        shown = ", ".join(ids[:10]) + (", ..." if len(ids) > 10 else "")
        raise ArgumentError(f"--image {image!r} is not in {path}; its image ids: {shown}")
    return ids.index(str(image))


def cmd_info(args: argparse.Namespace) -> int:
    """Print one image's description, or list the images of a dataset or multi-image table."""
    try:
        return _info(args)
    except SchemaError as exc:  # the library's advice names its argument; here it is an option
        if "column=" not in str(exc):
            raise
        raise SchemaError(str(exc).replace("column=...", "--column NAME")) from exc


def _info(args: argparse.Namespace) -> int:
    t = target(args.path)
    picked = args.row is not None or args.image is not None
    ds = open_many(t, args.column)
    if ds is not None:
        if picked:
            k = pick_image(ds, str(t), args.row, args.image)
            info = ds[k].info()
            info.update({c: ds.metadata(k).get(c) for c in ds.extra_columns})
            _print_image(str(t), info, args.json)
            return 0
        if len(ds) > 1:
            _print_listing(str(t), ds, args.json)
            return 0
    elif picked and args.image is not None:
        raise ArgumentError(f"--image picks an image of a dataset directory or table; {t} holds one image")
    img = OMEArrow.scan(t.arg, column=args.column, row=args.row or 0)
    _print_image(str(t), img.info(), args.json)
    return 0


def add_parser(sub: Any) -> None:
    """The ``info`` subcommand."""
    p = sub.add_parser(
        "info",
        help="an image's shape, dtype, physical sizes, channels and storage; a dataset's images",
        description="For one image: shape per axis, dtype, physical sizes, channels and storage. For a dataset "
        "directory or a table of several images: one line per image (row, id, shape, dtype and the "
        "metadata columns); --row or --image shows one of them in full.",
    )
    p.add_argument(
        "path",
        help="image file, table or dataset directory: a local path, file://, or a URI the library reads "
        "(s3://, gs://, az://, http(s)://; S3-compatible servers: AWS_ENDPOINT_URL)",
    )
    p.add_argument("--row", type=int, help="show the image in this row (0-based) of a dataset or table")
    p.add_argument("--image", metavar="ID", help="show the image with this id in a dataset or table")
    p.add_argument("--column", help="the OME-Arrow column to read, in a table that has several")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)
