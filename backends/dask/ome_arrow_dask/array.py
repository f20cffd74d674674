"""Build dask arrays whose blocks are reads through ome-arrow-core's lazy views."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ome_arrow_core import LazyTensorView, OMEArrow, OMEArrowDataset, SchemaError, Selection, TensorView
from ome_arrow_core.plugin_api import ArgumentError, ArgumentTypeError, StorageError

from .chunking import Chunking, block_limit, plan

if TYPE_CHECKING:
    import dask.array as da

    from ome_arrow_core.plugin_api import DatasetViews

__all__ = ["to_dask", "storage_chunks"]


def axes_of(layout: str) -> str:
    """``layout``'s axis letters with the aliases H and W as Y and X (views keep the letters they were given)."""
    return layout.upper().replace("H", "Y").replace("W", "X")


def storage_chunks(sel: Selection, layout: str, chunk_tczyx: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """Dask chunks of a selection in ``layout``: a block boundary wherever the storage chunk changes.

    ``chunk_tczyx`` is the storage chunk (t, c, z, y, x); ``sel`` holds absolute storage
    indices (``LazyTensorView.selection``).
    """
    size = dict(zip("TCZYX", (int(v) for v in chunk_tczyx)))
    out = []
    for ax in axes_of(layout):
        idx = np.asarray(list(sel.axis(ax)), dtype=np.int64)
        ids = idx // max(1, size[ax])
        cuts = np.nonzero(np.diff(ids))[0] + 1
        edges = [0, *cuts.tolist(), len(idx)]
        out.append(tuple(b - a for a, b in itertools.pairwise(edges)))
    return tuple(out)


def _chunk_of(
    meta_chunk: tuple[int, int, int] | None, sizes: Mapping[str, int], t_c: tuple[int, int] = (1, 1)
) -> tuple[int, ...]:
    if meta_chunk is None:  # unknown: one plane per block, as the core writes by default
        return (t_c[0], t_c[1], 1, sizes["Y"], sizes["X"])
    z, y, x = meta_chunk
    return (t_c[0], t_c[1], z, y, x)


def _window(sel: Selection, layout: str, starts: Sequence[int], stops: Sequence[int]) -> dict[str, Any]:
    """tensor_view arguments (absolute, for a whole image) of the part of ``sel`` in one block."""
    part: dict[str, Any] = {}
    for ax, a, b in zip(axes_of(layout), starts, stops):
        part[ax] = list(sel.axis(ax))[a:b]
    y = part.get("Y", list(sel.y))
    x = part.get("X", list(sel.x))
    return {
        "t": part.get("T", list(sel.t)),
        "z": part.get("Z", list(sel.z)),
        "c": part.get("C", list(sel.c)),
        "roi": (x[0], y[0], len(x), len(y)),
    }


def _read_dataset_block(
    ds: OMEArrowDataset,
    first: int,
    last: int,
    window: dict[str, Any],
    layout: str,
    policy: str,
    dtype: Any = None,
    casting: str = "checked",
    planned: tuple[tuple[int, ...], np.dtype] | None = None,
    views: DatasetViews | None = None,
    shape: tuple[int, ...] | None = None,
    made: list[tuple[str, int, int]] | None = None,
) -> np.ndarray:
    block = ds.read_checked(  # overwritten since the array was built: its blocks could be other images than planned
        made,
        lambda: range(first, last),
        "this dask array",
        lambda: _dataset_block(ds, first, last, window, layout, policy, dtype, casting, views, shape),
    )
    if planned is not None and (block.shape != planned[0] or block.dtype != planned[1]):
        raise StorageError(  # rewritten since the array was built: dask would hand on a block unlike its plan
            f"{ds.locate(first).path} changed since this dask array was built: images {first}..{last - 1} read as "
            f"{block.dtype} {block.shape}, the array holds {planned[1]} {planned[0]}; build it again from a new scan"
        )
    return block


def _dataset_block(
    ds: OMEArrowDataset,
    first: int,
    last: int,
    window: dict[str, Any],
    layout: str,
    policy: str,
    dtype: Any,
    casting: str,
    views: DatasetViews | None,
    shape: tuple[int, ...] | None,
) -> np.ndarray:
    """Images ``first:last`` of ``ds`` read as one block (their shapes checked first when ``views`` are given)."""
    if views is not None:  # no size columns to check the shapes by when the array was built: check here
        for i in range(first, last):
            if (got := views[i].selection.shape) != shape:
                raise SchemaError(
                    f"to_dask needs one shape for every image; image {i} gives {got} (TZCYX), image 0 {shape}. "
                    "Filter to images of one size, or crop all to a common one with roi="
                )
    # ds.read casts (images of several dtypes are read a dtype at a time, then cast into the block)
    return ds.read(
        range(first, last),
        layout=layout,
        channel_policy=policy,  # type: ignore[arg-type]
        dtype=dtype,
        casting=casting,  # type: ignore[arg-type]
        **window,
    )


def _read_view_block(view: LazyTensorView | TensorView, window: dict[str, int | tuple[int, int]]) -> np.ndarray:
    if isinstance(view, TensorView):
        return np.asarray(view.select_window(**{ax: range(a, b) for ax, (a, b) in window.items()}))  # type: ignore[misc]
    args: dict[str, Any] = {}
    for ax in "TZC":
        if ax in window:
            a, b = window[ax]  # type: ignore[misc]
            args[ax.lower()] = slice(a, b)
    if "Y" in window or "X" in window:
        axes = axes_of(view.layout)
        ny, nx = view.shape[axes.index("Y")], view.shape[axes.index("X")]
        y0, y1 = window.get("Y", (0, ny))  # type: ignore[misc]
        x0, x1 = window.get("X", (0, nx))  # type: ignore[misc]
        args["roi"] = (x0, y0, x1 - x0, y1 - y0)
    return view.select(**args).to_numpy()


def _array(graph: dict[Any, Any], name: str, chunks: tuple[tuple[int, ...], ...], dtype: np.dtype) -> da.Array:
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    graph_ = HighLevelGraph.from_collections(name, graph, dependencies=())
    return da.Array(graph_, name, chunks, dtype=dtype)  # type: ignore[no-untyped-call]


def _edges(sizes: tuple[int, ...]) -> list[tuple[int, int]]:
    ends = np.cumsum(sizes).tolist()
    return list(zip([0, *ends[:-1]], ends))


def _dataset_to_dask(views: DatasetViews, chunks: Chunking, images_per_chunk: int | None) -> da.Array:
    ds = views.dataset
    if len(ds) == 0:
        raise SchemaError("the dataset has no images; nothing to make a dask array of")
    cols = ds.column_names
    first = views[0]
    sized = all(f"size_{a}" in cols for a in "tczyx")
    if sized:  # one image per distinct size: do their views agree?
        sizes = ds.table.select([f"size_{a}" for a in "tczyx"]).to_pylist()
        seen: dict[tuple[Any, ...], int] = {}
        for i, row in enumerate(sizes):
            seen.setdefault(tuple(row.values()), i)
        shapes = {views[i].selection.shape for i in seen.values()}
        if len(shapes) > 1:
            raise SchemaError(
                f"to_dask needs one shape for every image; this selection gives {sorted(shapes)} (TZCYX). "
                "Filter to images of one size, or crop all to a common one with roi="
            )
    dtype, casting = views.selection["dtype"], views.selection["casting"]
    if dtype is None and "dtype" in cols and len(stored := set(ds.table.column("dtype").to_pylist())) > 1:
        raise SchemaError(  # found here, not when a block is computed
            f"to_dask needs one dtype for every image; the images are stored as {sorted(map(str, stored))}. "
            "Pass dtype= (to_dask(ds, dtype='float32')) to read them as one, or filter to images of one dtype"
        )
    sel, layout = first.selection, first.layout
    image = ds[0]
    t_c = (1, 1)
    if "chunk_t" in cols and "chunk_c" in cols:
        row = ds.metadata(0)
        t_c = (int(row.get("chunk_t") or 1), int(row.get("chunk_c") or 1))
    storage = storage_chunks(sel, layout, _chunk_of(image.meta.chunk_shape, image.sizes, t_c))
    outer, inner = plan(storage, np.dtype(first.dtype).itemsize, len(ds), block_limit(chunks), images_per_chunk)
    name = f"ome-arrow-dataset-{uuid.uuid4().hex}"
    ds_key = f"ome-arrow-source-{uuid.uuid4().hex}"
    policy = views.selection["channel_policy"]
    graph: dict[Any, Any] = {ds_key: ds}
    made_key = f"ome-arrow-copies-{uuid.uuid4().hex}"
    graph[made_key] = ds.copies()  # the copies on disk the plan comes from: each block checks its images' are
    views_key = None if sized else f"ome-arrow-views-{uuid.uuid4().hex}"  # blocks check each image's shape
    if views_key is not None:
        graph[views_key] = views
    for bi, (a, b) in enumerate(_edges(outer)):
        for cell in itertools.product(*(list(enumerate(_edges(c))) for c in inner)):
            starts = [lo for _, (lo, _) in cell]
            stops = [hi for _, (_, hi) in cell]
            window = _window(sel, layout, starts, stops)
            graph[(name, bi, *(j for j, _ in cell))] = (
                _read_dataset_block,
                ds_key,
                a,
                b,
                window,
                layout,
                policy,
                dtype,
                casting,
                ((b - a, *(hi - lo for hi, lo in zip(stops, starts))), np.dtype(first.dtype)),
                views_key,
                sel.shape,
                made_key,
            )
    return _array(graph, name, (outer, *inner), np.dtype(first.dtype))  # blocks cast as tensor_view(dtype=) does


def _view_to_dask(view: LazyTensorView | TensorView, chunk_tczyx: Sequence[int] | None, chunks: Chunking) -> da.Array:
    layout = view.layout
    if isinstance(view, LazyTensorView):
        sel = view.selection
        shape_chunk = getattr(view, "chunk_shape", None)
        if chunk_tczyx is None and shape_chunk is not None:
            chunk_tczyx = (1, 1, *shape_chunk)
        chunk = chunk_tczyx or (1, 1, 1, sel.shape[3], sel.shape[4])
        _, inner = plan(storage_chunks(sel, layout, chunk), np.dtype(view.dtype).itemsize, 1, block_limit(chunks), None)
    else:
        inner = tuple((n,) for n in view.shape)
    name = f"ome-arrow-view-{uuid.uuid4().hex}"
    view_key = f"ome-arrow-source-{uuid.uuid4().hex}"
    graph: dict[Any, Any] = {view_key: view}
    for cell in itertools.product(*(list(enumerate(_edges(c))) for c in inner)):
        window = {ax: (lo, hi) for ax, (_, (lo, hi)) in zip(axes_of(layout), cell)}
        graph[(name, *(j for j, _ in cell))] = (_read_view_block, view_key, window)
    return _array(graph, name, inner, np.dtype(view.dtype))


def to_dask(
    obj: Any, *, chunks: Chunking = "auto", images_per_chunk: int | None = None, **view_options: Any
) -> da.Array:
    """A dask array of a dataset, its ``tensor_views(...)``, an image or one lazy view.

    - ``OMEArrowDataset`` or ``DatasetViews``: shape ``(images, *layout)``; ``view_options``
      (``t``, ``z``, ``c``, ``roi``, ``layout``...) select the same part of every image (for
      a dataset).
    - ``OMEArrow``: ``image.tensor_view(**view_options)``, cut along its storage chunks.
    - ``LazyTensorView`` / ``TensorView``: that view (a lazy view's storage chunks are taken
      to be planes; an eager view is one block).

    ``chunks="auto"`` makes blocks of whole storage chunks of about dask's
    ``array.chunk-size`` (128 MiB), many small images per block; a byte limit
    (``chunks="32MiB"``) sets another size; ``chunks="storage"`` gives one storage chunk of
    one image per block. ``images_per_chunk`` fixes the images per block along the first axis.

    Nothing is read until dask computes; each block then reads only its own chunks, in
    whatever process runs it (the graph holds the dataset's picklable description).
    """
    from ome_arrow_core.plugin_api import DatasetViews

    block_limit(chunks)  # a bad value fails here, before anything else
    if images_per_chunk is not None and (
        isinstance(images_per_chunk, bool)
        or not isinstance(images_per_chunk, (int, np.integer))
        or images_per_chunk < 1
    ):
        raise ArgumentError(f"images_per_chunk must be an int >= 1 (images per block), got {images_per_chunk!r}")
    if isinstance(obj, OMEArrowDataset):
        return _dataset_to_dask(obj.tensor_views(**view_options), chunks, images_per_chunk)
    if view_options and not isinstance(obj, OMEArrow):
        raise ArgumentTypeError(
            f"view options {sorted(view_options)} apply to a dataset or an image, not a {type(obj).__name__}"
        )
    if isinstance(obj, DatasetViews):
        return _dataset_to_dask(obj, chunks, images_per_chunk)
    if isinstance(obj, OMEArrow):
        view = obj.tensor_view(**view_options)
        meta = obj.meta
        return _view_to_dask(view, _chunk_of(meta.chunk_shape, meta.sizes) if meta.chunk_shape else None, chunks)
    if isinstance(obj, (LazyTensorView, TensorView)):
        return _view_to_dask(obj, None, chunks)
    raise ArgumentTypeError(
        f"to_dask takes an OMEArrowDataset, ds.tensor_views(...), an OMEArrow or a tensor view; got {type(obj).__name__}"
    )
