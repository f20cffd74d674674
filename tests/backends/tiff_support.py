"""Helpers of the TIFF backend's tests (test_tiff*.py): pixels, sources, lazy views and OME-XML of written files."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ome_arrow_core import LazyTensorView, OMEArrow, Selection, default_registry

if TYPE_CHECKING:
    from ome_arrow_tiff.reader import TiffSource

#: The dtypes the TIFF writer round-trips.
DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64"]
#: tifffile's keywords for a plain (not RGB) page.
MB = {"photometric": "minisblack"}


def tzcyx(arr: np.ndarray, axes: str) -> np.ndarray:
    """``arr`` with tifffile ``axes`` (letters from TZCYX only) as a 5-D TZCYX array."""
    assert set(axes) <= set("TZCYX"), axes
    missing = [a for a in "TZCYX" if a not in axes]
    full = arr.reshape(arr.shape + (1,) * len(missing))
    order = axes + "".join(missing)
    return full.transpose([order.index(a) for a in "TZCYX"])


def open_source(path: Path, **kw: object) -> TiffSource:
    """The pixel source the registry's reader opens for ``path``."""
    from ome_arrow_tiff.reader import TiffSource

    reader = default_registry().resolve_reader(path)
    assert reader.open is not None
    src = reader.open(path, **kw)
    assert isinstance(src, TiffSource)
    return src


def lazy(src: TiffSource, layout: str = "TZCYX", **select: object) -> LazyTensorView:
    """A lazy view of ``src`` (nothing read until collected)."""
    full = LazyTensorView(src, Selection.full(src.meta.sizes), "TZCYX")
    return full.select(**select).with_layout(layout)


def random_pixels(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    dt = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    if dt.kind == "f":
        return (rng.standard_normal(shape) * 1000).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, shape, dtype=dt, endpoint=True)


def image_with_meta(arr: np.ndarray, **pixels_meta: object) -> OMEArrow:
    """An in-memory image of a TZCYX array with some ``pixels_meta`` fields replaced."""
    record = OMEArrow(arr, "TZCYX").export("dict")
    record["pixels_meta"].update(pixels_meta)
    return OMEArrow(record)


def ome_pixels(path: Path) -> ET.Element:
    """The first ``Pixels`` element of a file's OME-XML (parsed independently of the backend)."""
    import tifffile

    with tifffile.TiffFile(path) as tf:
        root = ET.fromstring(tf.ome_metadata.encode())
    return next(e for e in root.iter() if e.tag.endswith("}Pixels"))
