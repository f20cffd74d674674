"""Shared fixtures of the core tests: sample pixels of every supported dtype."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest

#: Real servers on 127.0.0.1 (S3-compatible, HTTP with ranges) as fixtures: tests/servers.py.
pytest_plugins = ["servers"]

#: Every pixel dtype OME-Arrow stores (ome_arrow_core.dtypes.SUPPORTED, spelled out here on purpose).
DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64", "bool")

MakePixels = Callable[..., np.ndarray]


def pixels(shape: tuple[int, ...], dtype: str = "uint16", seed: int = 0) -> np.ndarray:
    """Random pixels over the dtype's whole range, with its extremes in the first elements."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dt.kind == "f":
        out = rng.normal(scale=1e3, size=shape).astype(dt)
        specials = [np.nan, np.inf, -np.inf, -0.0, np.finfo(dt).max, np.finfo(dt).smallest_subnormal]
        out.flat[: min(out.size, len(specials))] = specials[: out.size]
        return out
    info = np.iinfo(dt)
    out = rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
    out.flat[: min(out.size, 2)] = [info.min, info.max][: out.size]
    return out


@pytest.fixture(scope="session")
def make_pixels() -> MakePixels:
    """``make_pixels(shape, dtype="uint16", seed=0)``: see :func:`pixels`."""
    return pixels


@pytest.fixture(scope="module")
def written_without_locators() -> Iterator[None]:
    """Datasets of the module written without pixel locators, as before them: their one-chunk images are read through
    the index (packed chunk row groups, the aligned index, chunks files' footer records), which such modules test;
    tests/test_pixel_locators.py tests the locators. Use: ``pytestmark = pytest.mark.usefixtures(...)``."""
    from ome_arrow_core.typed_chunk import locators

    locators.WRITE = False
    try:
        yield
    finally:
        locators.WRITE = True
