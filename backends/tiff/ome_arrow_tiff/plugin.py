"""Plugin hooks: a TIFF / OME-TIFF reader and an OME-TIFF writer (tifffile, imported lazily)."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ome_arrow_core import OMEArrowError, Reader, SchemaError, Writer, hookimpl
from ome_arrow_core.plugin_api import Location, check_row

if TYPE_CHECKING:
    import pyarrow as pa

    from ome_arrow_core import OMEArrow

    from .reader import TiffSource

#: TIFF magic numbers: classic and BigTIFF, little- and big-endian.
_MAGIC: Final[tuple[bytes, ...]] = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
SUFFIXES: Final[tuple[str, ...]] = (
    ".ome.tiff",
    ".ome.tif",
    ".ome.btf",
    ".tiff",
    ".tif",
    ".btf",
    ".tf8",
    ".tf2",
)


def is_tiff(path: Path) -> bool:
    """True when ``path`` is a file starting with a TIFF or BigTIFF header."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block the read forever
            return False
        with open(path, "rb") as fh:
            return fh.read(4) in _MAGIC
    except OSError:
        return False


def open_tiff(
    path: Path | Location,
    column: str | None = None,
    row: int = 0,
    *,
    level: int = 0,
    verify: bool | None = None,
    **_: Any,
) -> TiffSource:
    """Open pyramid level ``level`` of series ``row`` of a TIFF file (metadata now, pixels on ``read``).

    ``verify=False`` skips checking the checksums our OME-TIFFs store (None: unless
    ``OME_ARROW_CORE_VERIFY=0``). ``path`` may be a remote Location (``s3://``, ``http(s)://``, ...):
    the header and IFDs are read through a block cache, pixels by ranged reads of their strips or tiles.
    """
    if column is not None:
        raise SchemaError(
            f"column={column!r} does not apply to TIFF files, which have no columns; "
            "pick an image series with row= instead"
        )
    from .reader import TiffSource

    return TiffSource(path, series=check_row(row), level=level, verify=verify)


def series_collection(path: Path) -> pa.Table | None:
    """The series of a TIFF file holding several (a multi-series OME-TIFF, tifffile's several arrays) as a
    metadata table: ``image_id`` ``name#i``, ``path``, ``series`` i (the ``row=`` that opens it);
    None for one series, or when the file does not open (opening it then says why)."""
    import pyarrow as pa
    import tifffile

    from .damage import strict_tifffile

    try:
        with strict_tifffile(path, "listing its series"), tifffile.TiffFile(path) as tif:
            count = len(tif.series)
    except OMEArrowError:
        return None
    if count < 2:
        return None
    return pa.table(
        {
            "image_id": [f"{path.name}#{i}" for i in range(count)],
            "path": [str(path)] * count,
            "series": pa.array(range(count), pa.int64()),
        }
    )


def write(image: OMEArrow, out: Path | Location, **options: Any) -> Path | Location:
    """Write ``image`` as OME-TIFF (see :func:`ome_arrow_tiff.writer.write_tiff`).

    A remote ``out`` is written locally, uploaded under a temporary key, then moved onto ``out``
    by the store: readers see the old object or the new one, never a part.
    """
    from .writer import write_tiff

    if isinstance(out, Location):
        from ome_arrow_core.plugin_api import remote_file  # uploads load when a remote write needs them

        with remote_file(out, ".ome.tiff") as local:
            write_tiff(image, local, **options)
        return out
    return write_tiff(image, out, **options)


@hookimpl
def ome_arrow_readers() -> Sequence[Reader]:
    return [
        Reader(
            name="tiff",
            priority=10,
            requires=("tifffile",),
            extra="tiff",
            suffixes=SUFFIXES,
            open=open_tiff,
            sniff=is_tiff,
            collection=series_collection,
            remote=True,
            description="TIFF and OME-TIFF (tifffile)",
        ),
    ]


@hookimpl
def ome_arrow_writers() -> Sequence[Writer]:
    return [
        Writer(
            name="ome-tiff",
            priority=10,
            requires=("tifffile",),
            extra="tiff",
            formats=("ome-tiff", "tiff"),
            suffixes=(".ome.tiff", ".ome.tif"),
            write=write,
            remote=True,
            description="OME-TIFF, TZCYX (tifffile)",
        ),
    ]
