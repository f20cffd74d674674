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
from typing import Any

from ..arguments import check_row
from ..boundary import reading, require_regular_file
from ..errors import ArgumentError, DamagedFileError, OMEArrowError, SchemaError
from ..handlers import PixelSource, Reader, Writer
from ..hookspecs import hookimpl


def open_parquet(path: Path, column: str | None = None, row: int = 0, image_id: str | None = None,
                 verify: bool | None = None, **_: Any) -> PixelSource:
    """Open a dataset directory or a struct-column Parquet file as a pixel source (``verify``: see checksums)."""
    import pyarrow.parquet as pq

    from ..record import RecordSource
    from ..typed_chunk import DatasetSource, is_dataset_dir

    if path.is_dir():
        if not is_dataset_dir(path):
            raise SchemaError(
                f"{path} is a directory but not an OME-Arrow dataset: expected "
                "_ome_arrow_dataset.json, images.parquet and chunks.parquet inside"
            )
        row = check_row(row)
        with reading(path, None, "opening the dataset"):
            return DatasetSource(path, row=row, image_id=image_id, verify=verify)
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


def _sniff(path: Path) -> bool:
    from ..typed_chunk import is_dataset_dir

    return is_dataset_dir(path)


def write_parquet(
    image: Any,
    out: Path,
    *,
    layout: str = "dataset",
    chunk_shape: Sequence[int] | None = None,
    compression: str | None = "lz4",
    compression_level: int | None = None,
    rows_per_group: int = 1,
    column: str = "ome_arrow",
) -> Path:
    """Write ``image`` (an OMEArrow or a sequence of them) to ``out``.

    ``layout="dataset"`` (default): the typed-chunk dataset directory, one chunk per row;
    ``layout="record"``: one Parquet file, one row, an OME-Arrow struct column.
    """
    from ..record import write_record_file
    from ..typed_chunk import write_images

    images = list(image) if isinstance(image, (list, tuple)) else [image]
    if layout == "record":
        if len(images) != 1:
            raise ArgumentError("layout='record' writes one image; use layout='dataset' for several")
        return write_record_file(images[0].meta, images[0].to_numpy(), out, column=column,
                                 compression=compression or "none")
    if layout != "dataset":
        raise ArgumentError(f"layout must be 'dataset' or 'record', got {layout!r}")
    return write_images(
        [(im.meta, im.to_numpy()) for im in images], out, chunk_shape=chunk_shape,
        compression=compression, compression_level=compression_level, rows_per_group=rows_per_group,
    )


@hookimpl
def ome_arrow_readers() -> Sequence[Reader]:
    return [
        Reader(name="parquet", suffixes=(".parquet", ".pq", ".ome-arrow"), open=open_parquet, sniff=_sniff,
               description="OME-Arrow Parquet: typed-chunk datasets and struct-column files"),
    ]


@hookimpl
def ome_arrow_writers() -> Sequence[Writer]:
    return [
        Writer(name="parquet", formats=("parquet", "ome-parquet"), suffixes=(".ome.parquet", ".parquet"),
               write=write_parquet, description="OME-Arrow Parquet dataset (default) or one-row record file"),
    ]
