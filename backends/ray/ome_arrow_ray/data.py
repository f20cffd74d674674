"""OME-Arrow datasets as Ray datasets: ``read_dataset`` and ``iter_torch_batches``."""

from __future__ import annotations

import inspect
import numbers
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from ome_arrow_core import OMEArrowDataset, SchemaError, SelectionError, ViewSpec
from ome_arrow_core.plugin_api import ArgumentError, ArgumentTypeError, ChannelPolicy

if TYPE_CHECKING:
    import ray.data

__all__ = ["read_dataset", "iter_torch_batches"]

#: read_dataset's own keywords (everything else goes to ray.data.read_datasource or onwards).
_OWN = (
    "filter",
    "columns",
    "image_column",
    "images_per_block",
    "batch_size",
    "t",
    "z",
    "c",
    "roi",
    "layout",
    "channel_policy",
    "dtype",
    "casting",
    "crop",
    "random_crop",
    "shuffle",
    "seed",
    "epoch",
    "reserve_resources",
)


def _as_dataset(source: OMEArrowDataset | str | os.PathLike[str], filter: Any) -> OMEArrowDataset:
    if isinstance(source, OMEArrowDataset):
        return source.filter(filter) if filter is not None else source
    return OMEArrowDataset.scan(source, filter=filter)


def _read_options() -> set[str]:
    """Keywords ``ray.data.read_datasource`` takes (``override_num_blocks``, ``ray_remote_args``...)."""
    import ray.data

    params = inspect.signature(ray.data.read_datasource).parameters
    return {n for n, p in params.items() if n != "datasource" and p.kind is inspect.Parameter.KEYWORD_ONLY}


def read_dataset(
    source: OMEArrowDataset | str | os.PathLike[str],
    *,
    filter: Any = None,
    columns: Sequence[str] | None = None,
    image_column: str = "image",
    images_per_block: int | None = None,
    batch_size: int | None = None,
    t: Any = None,
    z: Any = None,
    c: Any = None,
    roi: Sequence[int] | None = None,
    layout: str | None = None,
    channel_policy: ChannelPolicy = "error",
    dtype: Any = None,
    casting: Literal["checked", "unsafe"] = "checked",
    crop: Sequence[int] | None = None,
    random_crop: bool = False,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
    reserve_resources: bool = False,
    **read_options: Any,
) -> ray.data.Dataset:
    """A ``ray.data.Dataset`` of an OME-Arrow dataset: one row per image, read by Ray's read tasks.

    Each row has ``image_column`` (the selected pixels in ``layout``, dtype kept unless ``dtype`` casts, with
    ``casting``, as ``tensor_view(dtype=)`` does: images stored in several dtypes need it) and the
    metadata ``columns`` (default: the dataset's extra columns, e.g. plate, well, label).
    ``filter`` (a pyarrow expression or ``{"well": "A01"}``) is pushed down when the
    metadata is scanned, as are later ``ds.filter(expr=...)`` on metadata columns and
    ``ds.select_columns(...)``. Read tasks each take a range of images and read their
    pixels in the worker, ``images_per_block`` per block (default: about 128 MiB of pixels, at
    least one block per CPU, a multiple of ``batch_size`` images, default 32: pass the batch size you iterate with, so
    that no batch straddles two blocks and costs a copy more). ``crop=(h, w)`` takes a centre crop
    (``random_crop=True``: one drawn from ``(seed, epoch, image)``); ``shuffle=True`` orders
    the images by a permutation of ``(seed, epoch)``; pass a new ``epoch`` each epoch.
    ``read_options`` go to ``ray.data.read_datasource`` (``override_num_blocks``,
    ``ray_remote_args``, ``concurrency``...); without ``override_num_blocks`` Ray is asked for
    one block per read task, so it keeps the blocks whole instead of splitting them. Without a running
    Ray, a local one is started as Ray would start it, but freeing unused blocks within 20 ms
    (:func:`~ome_arrow_ray.init_ray`; a Ray you start keeps your settings). ``ray.init(address=...)``
    first to use a cluster.

    ``reserve_resources=False`` (the default) turns Ray Data's per-operator resource
    reservation off for this dataset (``ds.context.op_resource_reservation_enabled``; the
    global ``DataContext`` is left alone): Ray 2.60 starts every execution with a zero
    budget until its first resource refresh, about a second later, and runs one read task
    at a time until then, which doubled a short epoch's time. Output backpressure (Ray's
    downstream-capacity policy) still bounds the blocks waiting for a slow consumer.
    """
    import ray.data

    from .datasource import BATCH_SIZE, OMEArrowDatasource
    from .local_ray import ensure_ray

    unknown = sorted(set(read_options) - _read_options())
    if unknown:
        raise ArgumentTypeError(
            f"read_dataset got unexpected options {unknown}; it takes its own {list(_OWN)} and "
            f"ray.data.read_datasource's {sorted(_read_options())}"
        )
    if crop is not None and roi is not None:
        raise SelectionError("pass only one of roi and crop")
    for name, value in (("images_per_block", images_per_block), ("batch_size", batch_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1):
            raise ArgumentError(f"{name} must be an int >= 1, got {value!r}")  # 0, "2", 2.5 were taken as others
    if isinstance(columns, str):  # else its letters were taken for column names
        raise ArgumentError(f"columns must be a list of column names, got the str {columns!r}: pass [{columns!r}]")
    ds = _as_dataset(source, filter)
    if len(ds) == 0:
        raise ArgumentError(f"no images match filter {filter!r}; nothing to read")
    keep = list(columns) if columns is not None else ds.extra_columns
    missing = [n for n in keep if n not in ds.column_names]
    if missing:
        raise ArgumentError(f"columns {missing} are not in the dataset; its columns: {ds.column_names}")
    if image_column in keep:
        raise ArgumentError(f"image_column {image_column!r} collides with a metadata column; pick another name")
    view = ViewSpec(
        t=t, z=z, c=c, roi=roi, layout=layout, channel_policy=channel_policy, dtype=dtype, casting=casting
    ).keywords()  # checked here
    if dtype is None and "dtype" in ds.column_names and len(stored := set(ds.table.column("dtype").to_pylist())) > 1:
        raise SchemaError(  # found here, not in a read task: a tensor column holds one dtype
            f"the images are stored as {sorted(map(str, stored))}; a tensor column holds one dtype: pass dtype= "
            "(read_dataset(..., dtype='float32')) to read them as one, or filter to images of one dtype"
        )
    ensure_ray()  # before the blocks are planned: they are cut by the cluster's CPUs
    source_ = OMEArrowDatasource(
        ds,
        columns=keep,
        image_column=image_column,
        view=view,
        crop=None if crop is None else tuple(crop),  # type: ignore[arg-type]
        random_crop=random_crop,
        shuffle=shuffle,
        seed=seed,
        epoch=epoch,
        images_per_block=images_per_block,
        batch_size=BATCH_SIZE if batch_size is None else batch_size,
    )
    if read_options.get("override_num_blocks") is None and read_options.get("parallelism", -1) == -1:
        read_options["override_num_blocks"] = source_.planned_blocks()  # whole blocks, not Ray's splits
    rows: ray.data.Dataset = ray.data.read_datasource(source_, **read_options)
    if not reserve_resources and hasattr(rows.context, "op_resource_reservation_enabled"):
        rows.context.op_resource_reservation_enabled = False
    return rows


def _numeric(ds: OMEArrowDataset, names: list[str] | None = None) -> list[str]:
    types = ds.table.schema
    return [
        n
        for n in (ds.extra_columns if names is None else names)
        if pa.types.is_integer(types.field(n).type)
        or pa.types.is_floating(types.field(n).type)
        or pa.types.is_boolean(types.field(n).type)
    ]


def iter_torch_batches(
    source: OMEArrowDataset | str | os.PathLike[str],
    *,
    batch_size: int = 32,
    filter: Any = None,
    columns: Sequence[str] | None = None,
    **options: Any,
) -> Iterator[dict[str, Any]]:
    """Batches as dicts of torch tensors: ``read_dataset(...).iter_torch_batches(batch_size=...)``.

    ``options`` that :func:`read_dataset` takes (selection, crops, ``shuffle``/``seed``/
    ``epoch``, ``override_num_blocks``...) go to it; the rest go to Ray's
    ``Dataset.iter_torch_batches`` (``prefetch_batches``, ``local_shuffle_buffer_size``,
    ``local_shuffle_seed``, ``drop_last``, ``collate_fn``, ``device``...). Torch tensors
    hold numbers only, so ``columns`` defaults to the numeric extra columns (labels,
    sites...); name string columns explicitly only with a ``collate_fn`` of your own.
    """
    ds = _as_dataset(source, filter)
    reading = set(_OWN) | _read_options()
    mine = {k: v for k, v in options.items() if k in reading}
    theirs = {k: v for k, v in options.items() if k not in reading}
    cols = _numeric(ds) if columns is None else columns
    if columns is not None and "collate_fn" not in theirs and not isinstance(columns, str):
        numeric = set(_numeric(ds, [n for n in columns if n in ds.column_names]))
        if words := [n for n in columns if n in ds.column_names and n not in numeric]:
            raise ArgumentError(  # else Ray's collate failed on them in the first batch, in torch's words
                f"columns {words} do not hold numbers, and torch tensors hold numbers only: leave them out, "
                "or pass a collate_fn of your own"
            )
    rows = read_dataset(ds, columns=cols, batch_size=batch_size, **mine)
    return iter(rows.iter_torch_batches(batch_size=batch_size, **theirs))
