"""The npe2 reader: ``get_reader(path)`` claims what ome-arrow-core opens; the reader returns lazy layers.

Claimed: any path a reader plugin of ome-arrow-core accepts (by suffix or by sniffing: OME-Arrow
Parquet, Vortex, OME-TIFF, OME-Zarr...), directories ``OMEArrowDataset.scan`` opens (dataset
directories, folders of images), and URIs (``s3://``, ``gs://``, ``http(s)://``) whose suffix a
remote-capable reader has (one image each, read with ranged requests). A directory or Parquet table of several images is a
dataset (:func:`.layers.dataset_layers`); anything else is one image, with its pyramid levels.
Opening reads metadata only; napari reads pixels plane by plane as it shows them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from ome_arrow_core import OMEArrow, OMEArrowDataset, OMEArrowError, default_registry

from .layers import LayerData, dataset_layers, image_layer

__all__ = ["get_reader", "read", "claims", "layers_of"]

_TABLES = (".parquet", ".pq")


def _uri_name(path: str | Path) -> str | None:
    """The file name of a URI (``s3://bucket/a.vortex`` -> ``a.vortex``); None for a local path."""
    text = str(path)
    return PurePosixPath(urlsplit(text).path).name if "://" in text else None


def claims(path: str | Path) -> bool:
    """True when ome-arrow-core opens ``path`` (see the module docs); reads at most a dataset's table."""
    name = _uri_name(path)
    if name is not None:
        return any(r.remote and name.lower().endswith(r.suffixes) for r in default_registry().readers())
    p = Path(path)
    if not p.exists():
        return False
    try:
        default_registry().resolve_reader(p)
        return True
    except OMEArrowError:
        pass
    if not p.is_dir():
        return False
    try:
        OMEArrowDataset.scan(p)
    except (OMEArrowError, OSError):
        return False
    return True


def get_reader(path: str | Sequence[str]) -> Callable[[str | Sequence[str]], list[LayerData]] | None:
    """npe2 ``get_reader``: :func:`read` when every path is claimed, else None (another plugin may take it)."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths or not all(claims(p) for p in paths):
        return None
    return read


def read(path: str | Sequence[str]) -> list[LayerData]:
    """The layers of every path, in order (see :func:`layers_of`)."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    out: list[LayerData] = []
    for p in paths:
        out.extend(layers_of(p if _uri_name(p) is not None else Path(p)))
    return out


def _is_dataset(p: Path) -> bool:
    if not (p.is_dir() or p.name.lower().endswith(_TABLES)):
        return False
    try:
        reader: Any = default_registry().resolve_reader(p)
    except OMEArrowError:
        return True  # a folder of images
    return not p.is_dir() or reader.name == "parquet"  # an OME-Zarr store is one image


def layers_of(p: str | Path) -> list[LayerData]:
    """Layer data of one path or URI: a dataset's images, or one image with its pyramid levels."""
    title = _uri_name(p) or Path(p).name
    if isinstance(p, Path) and _is_dataset(p):
        ds = OMEArrowDataset.scan(p)
        if len(ds) > 1:
            return dataset_layers(ds, title=title, source=str(p))
        return [image_layer(ds[0], title=title, source=str(p))]
    image = OMEArrow.scan(p)
    count = len(image.info().get("levels") or ())
    levels = [OMEArrow.scan(p, level=k) for k in range(1, count)]
    return [image_layer(image, levels, title=title, source=str(p))]
