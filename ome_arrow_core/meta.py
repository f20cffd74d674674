"""Image metadata: sizes, dtype, physical sizes and channels, independent of storage."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .dtypes import check_dtype
from .errors import SchemaError
from .layout import AXES

__all__ = ["Channel", "ImageMeta"]


@dataclass(frozen=True)
class Channel:
    """One channel of an image, as OME describes it."""

    id: str
    name: str = ""
    emission_um: float | None = None
    excitation_um: float | None = None
    illumination: str = "Unknown"
    color_rgba: int | None = None


@dataclass(frozen=True)
class ImageMeta:
    """Everything about an image but its pixels.

    ``sizes`` maps each of T, Z, C, Y, X to its length; ``chunk_shape`` is the (z, y, x)
    storage chunk (also the default tile of ``tensor_view(tile=...)``).
    """

    sizes: Mapping[str, int]
    dtype: np.dtype
    id: str = "img-0"
    name: str = "image"
    image_type: str = "image"
    acquisition_datetime: str | None = None
    physical_size: Mapping[str, float] = field(default_factory=lambda: {"X": 1.0, "Y": 1.0, "Z": 1.0})
    physical_unit: Mapping[str, str] = field(default_factory=lambda: {"X": "µm", "Y": "µm", "Z": "µm"})
    channels: Sequence[Channel] = ()
    chunk_shape: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        sizes = {ax: int(self.sizes.get(ax, 1)) for ax in AXES}
        bad = {ax: n for ax, n in sizes.items() if n < 1}
        if bad:
            raise SchemaError(f"image sizes must be >= 1, got {bad}")
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "dtype", check_dtype(self.dtype))
        if not self.channels:
            chans = tuple(Channel(id=f"ch-{i}", name=f"C{i}") for i in range(sizes["C"]))
            object.__setattr__(self, "channels", chans)
        elif len(self.channels) != sizes["C"]:
            raise SchemaError(
                f"metadata lists {len(self.channels)} channels but size_c is {sizes['C']}"
            )
        else:
            object.__setattr__(self, "channels", tuple(self.channels))

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        """Shape in canonical ``TZCYX`` order."""
        return tuple(self.sizes[ax] for ax in AXES)  # type: ignore[return-value]

    @property
    def nbytes(self) -> int:
        """Bytes of the whole pixel array."""
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def with_sizes(self, **sizes: int) -> ImageMeta:
        """A copy with new sizes (axis letters as keywords); channels follow a C change."""
        new = {**self.sizes, **{k.upper(): v for k, v in sizes.items()}}
        chans: Sequence[Channel] = self.channels if new["C"] == self.sizes["C"] else ()
        return replace(self, sizes=new, channels=chans)

    def select_channels(self, indices: Sequence[int]) -> ImageMeta:
        """A copy keeping the channels at ``indices`` in that order."""
        sizes = {**self.sizes, "C": len(indices)}
        return replace(self, sizes=sizes, channels=tuple(self.channels[i] for i in indices))

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-serialisable summary (used by ``info()``)."""
        return {
            "id": self.id,
            "name": self.name,
            "shape": dict(self.sizes),
            "dtype": self.dtype.name,
            "physical_size": dict(self.physical_size),
            "physical_unit": dict(self.physical_unit),
            "channels": [c.name or c.id for c in self.channels],
            "chunk_shape": list(self.chunk_shape) if self.chunk_shape else None,
            "acquisition_datetime": self.acquisition_datetime,
        }
