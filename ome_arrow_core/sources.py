"""In-memory pixel sources (the file readers live in plugins)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .handlers import PixelSource
from .meta import ImageMeta
from .selection import Selection

__all__ = ["ArraySource", "UndescribedSource", "described", "in_memory"]


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


class UndescribedSource:
    """A plugin's source that has no ``describe()``: the protocol's default (no facts), all else forwarded."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.meta: ImageMeta = inner.meta

    def read(self, sel: Selection) -> np.ndarray:
        """The wrapped source's pixels of ``sel``."""
        out: np.ndarray = self.inner.read(sel)
        return out

    def describe(self) -> dict[str, Any]:
        """No facts (the :class:`PixelSource` default)."""
        return {}

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)


def described(source: PixelSource) -> PixelSource:
    """``source`` itself when it has ``describe()`` (its own or :class:`PixelSource`'s), else wrapped with the default."""
    if callable(getattr(type(source), "describe", None)):
        return source
    return UndescribedSource(source)


def in_memory(source: PixelSource) -> ArraySource:
    """All of ``source``'s pixels in memory (``source`` itself when it is an :class:`ArraySource`)."""
    if isinstance(source, ArraySource):
        return source
    facts = source.describe()
    pixels = source.read(Selection.full(source.meta.sizes))
    return ArraySource(source.meta, pixels, str(facts.pop("storage", "file")), facts)
