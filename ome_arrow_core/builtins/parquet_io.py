"""Built-in Parquet reader and writer.

Reads typed-chunk dataset directories (ours and ``ome-arrow``'s) and Parquet files with
OME-Arrow struct columns. Writes the dataset layout by default, or with
``layout="record"`` a one-row struct file.

The formats load inside the handlers: loading this plugin (``Registry(autoload=False)``
included) imports neither ``pyarrow.parquet`` nor the readers and writers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..arguments import check_row
from ..boundary import reading, require_regular_file
from ..errors import ArgumentError, DamagedFileError, OMEArrowError, SchemaError, UnsafeOverwriteError
from ..handlers import PixelSource, Reader, Writer
from ..hookspecs import hookimpl
from ..location import Location

if TYPE_CHECKING:
    from ..registry import Registry


def open_parquet(
    path: Path | Location,
    column: str | None = None,
    row: int = 0,
    image_id: str | None = None,
    verify: bool | None = None,
    registry: Registry | None = None,
    **_: Any,
) -> PixelSource:
    """Open a dataset directory or a struct-column Parquet file as a pixel source (``verify``: see checksums;
    ``registry`` gives the chunk stores of a dataset's non-Parquet chunk files, default the shared one).

    ``path`` may be a remote :class:`~ome_arrow_core.location.Location`: struct-column files are read
    from it by ranged reads (footer, then the one row group); dataset directories are local only for now.
    """
    if isinstance(path, Location):
        return _open_remote(path, column, row, verify)

    if path.is_dir():
        from ..typed_chunk import DatasetSource, has_dataset_files

        if not has_dataset_files(path):
            raise SchemaError(
                f"{path} is a directory but not an OME-Arrow dataset: expected "
                "_ome_arrow_dataset.json, images.parquet and chunks.parquet inside"
            )
        row = check_row(row)
        return DatasetSource(path, row=row, image_id=image_id, verify=verify, registry=registry)  # reads in reading()
    import pyarrow.parquet as pq

    from ..record import RecordSource

    row = check_row(row)
    require_regular_file(path)
    try:
        with reading(path, None, "opening"):
            pf = pq.ParquetFile(path)
            names = set(pf.schema_arrow.names)
    except OMEArrowError as exc:
        if not isinstance(exc, DamagedFileError):
            raise
        raise DamagedFileError(f"{path} is not a readable Parquet file: {exc.__cause__ or exc}") from exc
    if {"pixel_bytes", "chunk_id"} <= names:
        raise SchemaError(
            f"{path} is the chunks file of an OME-Arrow dataset; open its directory {path.parent} instead"
        )
    return RecordSource(path, column=column, row=row, verify=verify)


def _open_remote(loc: Location, column: str | None, row: int, verify: bool | None) -> PixelSource:
    """A struct-column Parquet file on remote storage (dataset directories there are not read yet)."""
    import pyarrow.fs as pafs

    from ..record import RecordSource

    row = check_row(row)
    if loc.looked_up().type == pafs.FileType.Directory:  # the lookup open_path made, not a second one
        raise ArgumentError(
            f"{loc.uri} is a directory: typed-chunk dataset directories are read from local disks only in this "
            "release; copy it locally (e.g. `aws s3 sync`), or write the image as one struct-column file "
            "(export('parquet', out, layout='record')) to read it remotely"
        )
    return RecordSource(loc, column=column, row=row, verify=verify)


def _sniff(path: Path) -> bool:
    from ..typed_chunk import is_dataset_dir

    return is_dataset_dir(path)


def write_parquet(
    image: Any,
    out: Path | Location,
    *,
    layout: str = "dataset",
    chunk_shape: Sequence[int] | None = None,
    compression: str | None = "default",
    compression_level: int | None = None,
    rows_per_group: int = 1,
    column: str = "ome_arrow",
) -> Path | Location:
    """Write ``image`` (an OMEArrow or a sequence of them) to ``out``.

    ``layout="dataset"`` (default): the typed-chunk dataset directory, one chunk per row;
    ``layout="record"``: one Parquet file, one row, an OME-Arrow struct column.
    ``compression="default"``: uncompressed dataset chunks, lz4 for a record.
    """
    from ..dataset import write_dataset
    from ..record import write_record_file

    images = list(image) if isinstance(image, (list, tuple)) else [image]
    if layout == "record":
        if len(images) != 1:
            raise ArgumentError("layout='record' writes one image; use layout='dataset' for several")
        if compression == "default":
            compression = "lz4"
        if isinstance(out, Location):
            return _write_remote_record(images[0], out, column, compression)
        return write_record_file(
            images[0].meta, images[0].to_numpy(layout="TZCYX"), out, column=column, compression=compression or "none"
        )
    if layout != "dataset":
        raise ArgumentError(f"layout must be 'dataset' or 'record', got {layout!r}")
    _refuse_fewer(images, out)
    # streamed as write_dataset streams: a lazy image (a file stack, a large scan) is read band by band, never whole;
    # to remote storage as write_dataset writes a dataset there
    written = write_dataset(
        images,
        out.path if isinstance(out, Location) else out,
        filesystem=out.fs if isinstance(out, Location) else None,
        mode="overwrite",
        image_ids=[im.meta.id if len(images) == 1 else f"image-{i:05d}" for i, im in enumerate(images)],
        chunk_shape=chunk_shape,
        compression=compression,
        compression_level=compression_level,
        rows_per_group=rows_per_group,
        progress=False,
    )
    return out if isinstance(out, Location) else Path(written)


def _refuse_fewer(images: list[Any], out: Path | Location) -> None:
    """UnsafeOverwriteError when ``out`` holds a dataset of more images than ``images``: an export replaces what it
    names, and a plate replaced by one image is a plate lost (``write_dataset(..., mode="overwrite")`` says so)."""
    from ..typed_chunk import is_dataset_dir, mirror_dataset, open_dataset

    if isinstance(out, Location):
        local = mirror_dataset(out)
        where = out.uri
    else:
        from ..safe_write import check_replaceable

        check_replaceable(out, directory=True)  # the current directory, a folder of yours: refused as they are
        local, where = (out if is_dataset_dir(out) else None), str(out)
    if local is None:
        return
    held = open_dataset(local).image_count
    if held > len(images):
        raise UnsafeOverwriteError(
            f"{where} holds a dataset of {held} images and this export writes {len(images)}; nothing was changed. "
            "To replace it, say so: write_dataset(images, path, mode='overwrite'); to add to it, mode='append'"
        )


def _write_remote_record(image: Any, out: Location, column: str, compression: str | None) -> Location:
    """One struct-record file to remote storage, replacing ``out`` in one step (see :mod:`..remote`)."""
    from ..record import write_record_file
    from ..remote import remote_file

    with remote_file(out, ".parquet") as local:
        write_record_file(
            image.meta, image.to_numpy(layout="TZCYX"), local, column=column, compression=compression or "none"
        )
    return out


@hookimpl
def ome_arrow_readers() -> Sequence[Reader]:
    return [
        Reader(
            name="parquet",
            suffixes=(".parquet", ".pq", ".ome-arrow"),
            open=open_parquet,
            sniff=_sniff,
            remote=True,
            description="OME-Arrow Parquet: typed-chunk datasets and struct-column files",
        ),
    ]


@hookimpl
def ome_arrow_writers() -> Sequence[Writer]:
    return [
        Writer(
            name="parquet",
            formats=("parquet", "ome-parquet"),
            suffixes=(".ome.parquet", ".parquet"),
            write=write_parquet,
            remote=True,
            description="OME-Arrow Parquet dataset (default) or one-row record file",
        ),
    ]
