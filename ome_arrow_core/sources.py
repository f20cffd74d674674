"""In-memory pixel sources (the file readers live in plugins)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .meta import ImageMeta
from .selection import Selection

__all__ = ["ArraySource"]


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
