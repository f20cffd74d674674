"""Files for the bioio bridge's tests, written by the formats' own writers (imageio/Pillow, tifffile)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import numpy as np

from ome_arrow_core import Registry


@cache
def no_tiff() -> Registry:
    """A registry in which only the bridge reads TIFF (our own TIFF reader is blocked)."""
    return Registry(blocked={"tiff"})


_OPENS: list[str] = []
_WATCHED: set[str] = set()


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event == "open" and isinstance(args[0], str) and args[0] in _WATCHED:
        _OPENS.append(args[0])


sys.addaudithook(_audit)  # audit hooks cannot be removed: it records only paths a test watches


@contextmanager
def count_opens(path: Path) -> Iterator[list[str]]:
    """Every time the process opens ``path`` (an OS ``open``) inside the block: the readers
    open the file once per chunk they read, so this counts the chunks read."""
    key = str(path)
    _WATCHED.add(key)
    start = len(_OPENS)
    seen: list[str] = []
    try:
        yield seen
    finally:
        seen.extend(p for p in _OPENS[start:] if p == key)
        _WATCHED.discard(key)


def rgb(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    """Random pixels over the dtype's whole range."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dt.kind == "f":
        return rng.normal(scale=1e3, size=shape).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)


def write_png(path: Path, pixels: np.ndarray) -> Path:
    """``pixels`` (YX, YXS) as a PNG, written by imageio (Pillow for 1-bit)."""
    import imageio.v3 as iio

    if pixels.dtype == bool:
        from PIL import Image

        Image.fromarray(pixels).save(path)
    else:
        iio.imwrite(path, pixels)
    return path


def write_ome_tiff(path: Path, *images: tuple[np.ndarray, dict[str, object]]) -> Path:
    """Each (pixels, metadata) as one OME-TIFF image (series) written by tifffile."""
    import tifffile

    with tifffile.TiffWriter(path, ome=True) as w:
        for pixels, meta in images:
            w.write(pixels, metadata=meta)
    return path


def write_tiff(path: Path, pixels: np.ndarray, axes: str | None = None) -> Path:
    """``pixels`` as a plain (shaped, not OME) TIFF written by tifffile, one page per plane; ``axes`` (e.g.
    ``"TZCYX"``) goes into tifffile's shaped description, which bioio-tifffile reads its dims from."""
    import tifffile

    meta = {"axes": axes} if axes else {}
    tifffile.imwrite(path, pixels, ome=False, shaped=True, photometric="minisblack", metadata=meta)
    return path
