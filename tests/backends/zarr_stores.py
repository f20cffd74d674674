"""OME-Zarr stores written by independent writers (zarr-python directly, ome-zarr-py) for the zarr tests."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}


def ngff_axes(axes: str, unit: str | None = "micrometer") -> list[dict[str, str]]:
    out = []
    for a in axes:
        ax = {"name": a, "type": _TYPES.get(a, "custom")}
        if unit and _TYPES.get(a) == "space":
            ax["unit"] = unit
        out.append(ax)
    return out


def write_zarr_python(
    path: Path,
    levels: Sequence[np.ndarray],
    axes: str,
    *,
    version: str = "0.5",
    chunks: Sequence[int] | None = None,
    shards: Sequence[int] | None = None,
    scales: Sequence[Sequence[float]] | None = None,
    channels: Sequence[tuple[str, str]] | None = None,
    compressor: Any = "default",
    name: str = "img",
) -> Path:
    """An NGFF image written with zarr-python's own API: 0.5 on Zarr v3, 0.4 on Zarr v2 (``/`` chunk keys)."""
    import zarr

    fmt = 3 if version == "0.5" else 2
    g = zarr.open_group(path, mode="w", zarr_format=fmt)
    datasets = []
    for k, data in enumerate(levels):
        kw: dict[str, Any] = {"chunks": tuple(chunks) if chunks else data.shape}
        if shards:
            kw["shards"] = tuple(shards)
        if fmt == 2:
            kw["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
        if compressor != "default":
            kw["compressors"] = compressor
        arr = g.create_array(str(k), shape=data.shape, dtype=data.dtype, **kw)
        arr[...] = data
        scale = list(scales[k]) if scales else [1.0] * len(axes)
        datasets.append({"path": str(k), "coordinateTransformations": [{"type": "scale", "scale": scale}]})
    ms: dict[str, Any] = {"name": name, "axes": ngff_axes(axes), "datasets": datasets}
    body: dict[str, Any] = {"multiscales": [ms]}
    if channels:
        body["omero"] = {
            "channels": [
                {"label": lab, "color": col, "active": True, "window": {"min": 0, "max": 1, "start": 0, "end": 1}}
                for lab, col in channels
            ]
        }
    if fmt == 3:
        g.attrs["ome"] = {"version": "0.5", **body}
    else:
        ms["version"] = "0.4"
        g.attrs.update(body)
    return path


def write_ome_zarr_py(
    path: Path,
    data: np.ndarray,
    axes: str,
    *,
    version: str = "0.5",
    max_layer: int = 0,
    chunks: Sequence[int] | None = None,
    scale: Sequence[float] | None = None,
    label: np.ndarray | None = None,
    label_axes: str = "",
) -> Path:
    """An image (and a label image ``nuclei``) written by ome-zarr-py's ``write_image`` / ``write_labels``."""
    import zarr
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.io import parse_url
    from ome_zarr.writer import write_image, write_labels

    fmt = FormatV05() if version == "0.5" else FormatV04()
    root = zarr.group(store=parse_url(path, mode="w", fmt=fmt).store, zarr_format=3 if version == "0.5" else 2)
    transforms = None
    if scale is not None:
        transforms = [
            [{"type": "scale", "scale": [s * (2**k if a in "yx" else 1) for s, a in zip(scale, axes)]}]
            for k in range(max_layer + 1)
        ]
    opts = {"chunks": tuple(chunks)} if chunks else None
    factors = [2**k for k in range(1, max_layer + 1)]
    write_image(
        data,
        group=root,
        axes=axes,
        fmt=fmt,
        scale_factors=factors,
        storage_options=opts,
        coordinate_transformations=transforms,
    )
    if label is not None:
        write_labels(label, group=root, name="nuclei", axes=label_axes, fmt=fmt, scale_factors=[])
    return path


def tzcyx(arr: np.ndarray, axes: str) -> np.ndarray:
    """``arr`` with NGFF axis names ``axes`` (t, c, z, y, x) as a 5-D TZCYX array."""
    missing = [a for a in "tzcyx" if a not in axes]
    full = arr.reshape(arr.shape + (1,) * len(missing))
    order = axes + "".join(missing)
    return full.transpose([order.index(a) for a in "tzcyx"])


def chunks_touched(shape: Sequence[int], chunks: Sequence[int], sel: Sequence[Sequence[int]]) -> int:
    """How many chunks of grid ``chunks`` the orthogonal selection ``sel`` (indices per axis) intersects."""
    return math.prod(len({i // c for i in ix}) for ix, c in zip(sel, chunks))


def shard_reads(
    shape: Sequence[int], chunks: Sequence[int], shards: Sequence[int], sel: Sequence[Sequence[int]]
) -> int:
    """Reads zarr-python makes for ``sel`` in a sharded array: per shard touched, one read of the whole shard
    when every inner chunk of its nominal grid is needed, else its index and each inner chunk needed."""
    import itertools

    per = [c // 1 for c in chunks]
    total = 0
    touched = [sorted({i // s for i in ix}) for ix, s in zip(sel, shards)]
    for cell in itertools.product(*touched):
        need, full = 1, 1
        for ix, k, s, c, n in zip(sel, cell, shards, per, shape):
            lo, hi = k * s, min((k + 1) * s, n)
            need *= len({i // c for i in ix if lo <= i < hi})
            full *= s // c  # the shard's nominal grid, also where the array's edge cuts it
        total += 1 if need == full else 1 + need
    return total


def chunk_files(root: Path) -> list[Path]:
    """Every chunk file under an array directory (not metadata documents)."""
    meta = {"zarr.json", ".zarray", ".zattrs", ".zgroup"}
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name not in meta)


def write_plate_ome_zarr_py(
    path: Path,
    fields: dict[str, list[np.ndarray]],
    *,
    version: str = "0.5",
    rows: Sequence[str] = ("A", "B"),
    columns: Sequence[str] = ("1", "2", "3"),
    chunks: Sequence[int] | None = None,
) -> Path:
    """An HCS plate written by ome-zarr-py: ``fields`` maps a well path ("A/1") to its fields' CYX images."""
    import zarr
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.io import parse_url
    from ome_zarr.writer import write_image, write_plate_metadata, write_well_metadata

    fmt = FormatV05() if version == "0.5" else FormatV04()
    root = zarr.group(store=parse_url(path, mode="w", fmt=fmt).store, zarr_format=3 if version == "0.5" else 2)
    write_plate_metadata(root, list(rows), list(columns), list(fields), fmt=fmt, name="plate-1")
    for well_path, images in fields.items():
        r, c = well_path.split("/")
        well = root.require_group(r).require_group(c)
        write_well_metadata(well, [str(i) for i in range(len(images))], fmt=fmt)
        for i, img in enumerate(images):
            write_image(
                img,
                group=well.require_group(str(i)),
                axes="cyx",
                fmt=fmt,
                scale_factors=[],
                storage_options={"chunks": tuple(chunks)} if chunks else None,
            )
    return path


def write_bf2raw(
    path: Path,
    images: Sequence[np.ndarray],
    xml: str | None,
    *,
    version: str = "0.5",
    series: Sequence[str] | None = None,
) -> Path:
    """A bioformats2raw-layout store as other tools write it: a root marked ``bioformats2raw.layout: 3``, each
    TCZYX image written by ome-zarr-py at ``series[i]`` (default ``"i"``), and ``xml`` (None: no document) in
    ``OME/METADATA.ome.xml`` with the ``OME`` group's ``series`` attribute (only when ``series`` is given)."""
    import zarr

    v3 = version == "0.5"
    root = zarr.open_group(path, mode="w", zarr_format=3 if v3 else 2)
    root.attrs.put({"ome": {"version": "0.5", "bioformats2raw.layout": 3}} if v3 else {"bioformats2raw.layout": 3})
    paths = list(series) if series is not None else [str(i) for i in range(len(images))]
    ome_attrs: dict[str, Any] = {}
    if series is not None:
        ome_attrs = {"ome": {"version": "0.5", "series": paths}} if v3 else {"series": paths}
    root.create_group("OME", attributes=ome_attrs)
    if xml is not None:
        (path / "OME" / "METADATA.ome.xml").write_text(xml, encoding="utf-8")
    for where, data in zip(paths, images, strict=True):
        write_ome_zarr_py(path / where, data, "tczyx", version=version, scale=[1.0, 1.0, 0.5, 0.325, 0.325])
    return path
