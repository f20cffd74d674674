"""Plugin hooks: an OME-Zarr reader and writer (zarr-python 3, imported only when they run)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ome_arrow_core import Reader, SchemaError, Writer, hookimpl
from ome_arrow_core.plugin_api import Location, check_row

if TYPE_CHECKING:
    import pyarrow as pa

    from .source import ZarrSource

__all__ = [
    "SUFFIXES",
    "is_ngff",
    "ngff_keys",
    "plate_collection",
    "open_zarr",
    "write",
    "ome_arrow_readers",
    "ome_arrow_writers",
]

SUFFIXES: Final[tuple[str, ...]] = (".ome.zarr", ".zarr")
#: Largest metadata document read while sniffing (a bigger one is not sniffed as NGFF).
_SNIFF_BYTES: Final[int] = 4 << 20
_NGFF_KEYS: Final[frozenset[str]] = frozenset({"multiscales", "plate", "well", "labels", "bioformats2raw.layout"})


def _json(path: str | os.PathLike[str]) -> Any:
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > _SNIFF_BYTES:
            return None
        with open(path, "rb") as fh:
            return json.loads(fh.read())
    except (OSError, ValueError):
        return None


def ngff_keys(path: Path) -> frozenset[str]:
    """The OME-NGFF keys (multiscales, plate, well, labels, bioformats2raw.layout) of the Zarr group at directory ``path`` (any version)."""
    root = os.fspath(path)  # plain strings: a Parquet dataset directory is sniffed on every scan
    if not os.path.isdir(root):
        return frozenset()
    doc = _json(f"{root}{os.sep}zarr.json")
    if isinstance(doc, dict):
        attrs = doc.get("attributes")
        ome = attrs.get("ome") if isinstance(attrs, dict) else None
        return _NGFF_KEYS & set(ome) if isinstance(ome, dict) else frozenset()
    doc = _json(f"{root}{os.sep}.zattrs")
    return _NGFF_KEYS & set(doc) if isinstance(doc, dict) else frozenset()


def is_ngff(path: Path) -> bool:
    """True for a directory whose Zarr group metadata holds OME-NGFF keys (any version)."""
    return bool(ngff_keys(path))


def _zarr_node(path: Path) -> str | None:
    """``"array"`` or ``"group"``: what the Zarr metadata at directory ``path`` says its root is (any version);
    None when it has none."""
    root = os.fspath(path)
    doc = _json(f"{root}{os.sep}zarr.json")
    if isinstance(doc, dict) and doc.get("node_type") in ("array", "group"):
        return str(doc["node_type"])
    for name, kind in ((".zarray", "array"), (".zgroup", "group")):
        if os.path.isfile(f"{root}{os.sep}{name}"):
            return kind
    return None


def plate_collection(path: Path) -> pa.Table | None:
    """The images of ``path`` as a metadata table when it holds several: the fields of an HCS plate (see
    :func:`ome_arrow_zarr.plate.plate_table`), or the images of a bioformats2raw store of more than one
    (``image_id`` their group path, ``series`` their number, the ``row=`` that opens them); None otherwise.

    A Zarr array or group without OME-NGFF metadata holds no image: a :class:`SchemaError` (as opening it says), so
    that a dataset scan refuses it up front (and a directory scan leaves it out) instead of failing at ``ds[0]``."""
    keys = ngff_keys(Path(path))
    if not keys:
        root = os.fspath(path)
        members = (f"{root}{os.sep}{name}" for name in (".zattrs", "zarr.json", ".zgroup", ".zarray"))
        if any(os.path.lexists(m) and not os.path.isfile(m) for m in members):
            return None  # a FIFO or a directory where metadata belongs: opening it refuses it, naming the member
        node = _zarr_node(Path(path))
        if node == "array":
            raise SchemaError(
                f"{path} is a single Zarr array, not an OME-Zarr image (no multiscales metadata); open it with "
                "zarr and pass the array: OMEArrow(zarr.open_array(path)[...], dim_order=...)"
            )
        if node == "group":
            raise SchemaError(
                f"{path} is a Zarr group without OME-NGFF multiscales metadata; it is not an OME-Zarr image"
            )
        return None
    if "plate" in keys:
        from .plate import plate_table

        return plate_table(path)
    if "bioformats2raw.layout" not in keys or "multiscales" in keys:
        return None
    import pyarrow as pa

    from .omexml import local_series

    series = local_series(Path(path), _json)
    if len(series) < 2:
        return None
    return pa.table({"image_id": series, "series": pa.array(range(len(series)), pa.int64())})


def open_zarr(
    path: Path | Location,
    column: str | None = None,
    row: int = 0,
    *,
    level: int = 0,
    label: str | None = None,
    missing: str = "fill",
    verify: bool | None = None,
    **_: Any,
) -> ZarrSource:
    """Open level ``level`` of image ``row`` (its label image ``label``) of an OME-Zarr store
    (a directory, or a remote Location: ``s3://``, ``http(s)://``, ``filesystem=``...)."""
    if column is not None:
        raise SchemaError(
            f"column={column!r} does not apply to OME-Zarr stores, which have no columns; "
            "pick a label image with label= or a resolution level with level="
        )
    from ome_arrow_core import SelectionError

    if isinstance(level, bool) or not isinstance(level, int):
        raise SelectionError(f"level must be an int (0 is full resolution), got {level!r}")
    from .source import ZarrSource

    row = check_row(row)
    if isinstance(path, Path) and "plate" in ngff_keys(path):  # an HCS plate: row= is a field, in plate order
        from .plate import field_path

        path, row = field_path(path, row), 0
    return ZarrSource(path, level=level, label=label, row=row, missing=missing, verify=verify)


def write(image: Any, out: Path | Location, **options: Any) -> Path | Location:
    """Write ``image`` as OME-Zarr (see :func:`ome_arrow_zarr.writer.write_ome_zarr`).

    A remote ``out`` is written locally, then uploaded object by object with the group's metadata
    documents last: until the root ``zarr.json`` (or ``.zattrs``/``.zgroup``) lands, no reader
    opens it as an image. An existing remote ``out`` is refused, as a local one is.
    """
    from .writer import write_ome_zarr

    if isinstance(out, Location):
        import tempfile

        from ome_arrow_core.plugin_api import upload_directory  # uploads load when a remote write needs them

        with tempfile.TemporaryDirectory(prefix="ome-arrow-zarr-upload-") as tmp:
            local = write_ome_zarr(image, Path(tmp) / "store.ome.zarr", **options)
            upload_directory(local, out, frozenset({"zarr.json", ".zattrs", ".zgroup", ".zarray"}))
        return out
    return write_ome_zarr(image, out, **options)


@hookimpl
def ome_arrow_readers() -> Sequence[Reader]:
    return [
        Reader(
            name="ome-zarr",
            priority=10,
            requires=("zarr",),
            extra="zarr",
            suffixes=SUFFIXES,
            open=open_zarr,
            sniff=is_ngff,
            collection=plate_collection,
            remote=True,
            description="OME-Zarr images (OME-NGFF 0.1-0.4 on Zarr v2, 0.5 on Zarr v3), levels and labels",
        ),
    ]


@hookimpl
def ome_arrow_writers() -> Sequence[Writer]:
    return [
        Writer(
            name="ome-zarr",
            priority=10,
            requires=("zarr",),
            extra="zarr",
            formats=("ome-zarr", "zarr"),
            suffixes=SUFFIXES,
            write=write,
            remote=True,
            description="OME-Zarr, OME-NGFF 0.5 (Zarr v3) or 0.4 (Zarr v2), optional pyramid levels",
        ),
    ]
