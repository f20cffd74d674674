"""In-memory pixel sources (the file readers live in plugins)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .handlers import PixelSource
from .meta import ImageMeta
from .selection import Selection

__all__ = ["ArraySource", "WrappedSource", "described", "has_describe", "in_memory"]


class ArraySource:
    """Pixels already in memory as a ``TZCYX`` array (usually a view of Arrow memory)."""

    def __init__(
        self, meta: ImageMeta, pixels: np.ndarray, description: str = "memory", facts: dict[str, Any] | None = None
    ) -> None:
        if pixels.shape != meta.shape:
            raise ValueError(f"pixels shape {pixels.shape} does not match metadata {meta.shape}")
        self.meta = meta
        self.pixels = pixels
        self.description = description
        self.facts = dict(facts or {})

    def read(self, sel: Selection) -> np.ndarray:
        """A view of ``sel`` when it is strided, else a gathered copy."""
        return sel.apply(self.pixels)

    def describe(self) -> dict[str, Any]:
        """Storage facts for ``info()``."""
        return {"storage": self.description, **self.facts, "in_memory_bytes": int(self.pixels.nbytes)}


def has_describe(source: object) -> bool:
    """True when ``source``'s class has ``describe()`` (its own, or :class:`PixelSource`'s default)."""
    return callable(getattr(type(source), "describe", None))


class WrappedSource:
    """Another source's pixels under ``meta`` (default: its own), with ``describe()`` (default: no facts).

    Every other attribute (I/O counters...) is the wrapped source's.
    """

    def __init__(self, inner: Any, meta: ImageMeta | None = None) -> None:
        self.inner = inner
        self.meta: ImageMeta = inner.meta if meta is None else meta

    def read(self, sel: Selection) -> np.ndarray:
        """The wrapped source's pixels of ``sel``."""
        out: np.ndarray = self.inner.read(sel)
        return out

    def describe(self) -> dict[str, Any]:
        """The wrapped source's facts, or none (the :class:`PixelSource` default) when it has no ``describe``."""
        facts: dict[str, Any] = self.inner.describe() if has_describe(self.inner) else {}
        return facts

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)


def described(source: PixelSource) -> PixelSource:
    """``source`` itself when it has ``describe()``, else wrapped with the :class:`PixelSource` default."""
    return source if has_describe(source) else WrappedSource(source)


def in_memory(source: PixelSource) -> ArraySource:
    """All of ``source``'s pixels in memory (``source`` itself when it is an :class:`ArraySource`)."""
    if isinstance(source, ArraySource):
        return source
    facts = source.describe()
    pixels = source.read(Selection.full(source.meta.sizes))
    return ArraySource(source.meta, pixels, str(facts.pop("storage", "file")), facts)
