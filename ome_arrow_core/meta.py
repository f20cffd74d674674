"""Image metadata: sizes, dtype, physical sizes and channels, independent of storage.

A physical size that no source states is ``None`` (unknown), never a guessed 1 µm. Every
format stores channels through one pair, :func:`channel_to_dict` / :func:`channel_from_dict`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import field, replace
from typing import Any, Final

import numpy as np

from .dtypes import check_dtype
from .errors import SchemaError
from .frozen_types import frozen
from .layout import ARRAY_AXES, AXES

__all__ = [
    "Channel",
    "ImageMeta",
    "SAMPLES_NOTE",
    "channel_to_dict",
    "channel_from_dict",
    "physical_size_value",
    "sample_channels",
]

#: The ``info()["notes"]`` entry of an image whose samples per pixel (RGB, RGBA) became channels.
SAMPLES_NOTE: Final[str] = "samples per pixel decoded as channels"
#: Channel names of 3 or 4 samples per pixel.
_SAMPLE_NAMES: Final[str] = "RGBA"


@frozen
class Channel:
    """One channel of an image, as OME describes it."""

    id: str
    name: str = ""
    emission_um: float | None = None
    excitation_um: float | None = None
    illumination: str = "Unknown"
    color_rgba: int | None = None


def physical_size_value(value: object, field_name: str) -> float | None:
    """``value`` as a physical size: a positive finite float, or None (unknown).

    SchemaError naming ``field_name`` for anything else (negative, zero, NaN, infinite, not a number).
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SchemaError(
            f"{field_name} is {value!r} ({type(value).__name__}); a physical size is a positive number, "
            "or null when unknown"
        )
    out = float(value)
    if not math.isfinite(out) or out <= 0:
        raise SchemaError(f"{field_name} is {out!r}; a physical size is a positive finite number, or null when unknown")
    return out


def channel_to_dict(ch: Channel) -> dict[str, Any]:
    """The stored form of a channel (record struct, images-table JSON, Vortex JSON): every field by name."""
    return {
        "id": ch.id,
        "name": ch.name,
        "emission_um": ch.emission_um,
        "excitation_um": ch.excitation_um,
        "illumination": ch.illumination,
        "color_rgba": ch.color_rgba,
    }


def _optional(value: object, kind: type, where: str) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, kind):
        raise SchemaError(f"{where} is {value!r} ({type(value).__name__}); expected a {kind.__name__} or null")
    return value


def channel_from_dict(stored: object, index: int, where: str = "channels") -> Channel:
    """The channel stored as ``stored`` (the inverse of :func:`channel_to_dict`).

    Absent or null fields take the defaults (``id`` ``ch-<index>``); a field of the wrong type
    or a colour outside 32 bits raises SchemaError naming ``where[index].field``.
    """
    at = f"{where}[{index}]"
    if not isinstance(stored, Mapping):
        raise SchemaError(f"{at} is {type(stored).__name__}; expected a channel record (a mapping)")
    emission = _optional(stored.get("emission_um"), numbers.Real, f"{at}.emission_um")
    excitation = _optional(stored.get("excitation_um"), numbers.Real, f"{at}.excitation_um")
    color = _optional(stored.get("color_rgba"), numbers.Integral, f"{at}.color_rgba")
    if color is not None and not 0 <= int(color) < 1 << 32:
        raise SchemaError(f"{at}.color_rgba is {color}; expected an unsigned 32-bit RGBA value")
    return Channel(
        id=str(stored.get("id") or f"ch-{index}"),
        name=str(stored.get("name") or ""),
        emission_um=None if emission is None else float(emission),
        excitation_um=None if excitation is None else float(excitation),
        illumination=str(stored.get("illumination") or "Unknown"),
        color_rgba=None if color is None else int(color),
    )


def sample_channels(samples: int, base: Sequence[Channel] = ()) -> tuple[Channel, ...]:
    """Channels for ``samples`` samples per pixel (3: R, G, B; 4: R, G, B, A; else S0, S1, ...).

    Their ids extend the id of the one ``base`` channel a source claimed (``"ch-0:R"``).
    """
    names = _SAMPLE_NAMES[:samples] if samples in (3, 4) else [f"S{k}" for k in range(samples)]
    ident = base[0].id if len(base) == 1 else "ch-0"
    return tuple(Channel(id=f"{ident}:{n}", name=n) for n in names)


@frozen
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
    physical_size: Mapping[str, float | None] = field(default_factory=lambda: {"X": None, "Y": None, "Z": None})
    physical_unit: Mapping[str, str] = field(default_factory=lambda: {"X": "µm", "Y": "µm", "Z": "µm"})
    channels: Sequence[Channel] = ()
    chunk_shape: tuple[int, int, int] | None = None
    #: Things a reader did to present the stored pixels as TZCYX (e.g. :data:`SAMPLES_NOTE`).
    notes: tuple[str, ...] = ()
    #: The OME-XML document of this image the source stored (an OME-TIFF's, trimmed to this image; see
    #: :mod:`.ome_xml`), for ``OMEArrow.ome_metadata`` and kept by every format; a whole image's only.
    ome_xml: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        sizes = {ax: int(self.sizes.get(ax, 1)) for ax in AXES}
        bad = {ax: n for ax, n in sizes.items() if n < 1}
        if bad:
            raise SchemaError(f"image sizes must be >= 1, got {bad}")
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "dtype", check_dtype(self.dtype))
        phys = {ax: physical_size_value(self.physical_size.get(ax), f"physical_size[{ax!r}]") for ax in "XYZ"}
        object.__setattr__(self, "physical_size", phys)
        object.__setattr__(self, "physical_unit", {ax: str(self.physical_unit.get(ax) or "µm") for ax in "XYZ"})
        object.__setattr__(self, "notes", tuple(self.notes))
        if not self.channels:
            chans = tuple(Channel(id=f"ch-{i}", name=f"C{i}") for i in range(sizes["C"]))
            object.__setattr__(self, "channels", chans)
        elif len(self.channels) != sizes["C"]:
            raise SchemaError(f"metadata lists {len(self.channels)} channels but size_c is {sizes['C']}")
        else:
            object.__setattr__(self, "channels", tuple(self.channels))

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        """Shape in the storage order ``TZCYX`` (internal); arrays are TCZYX: see :attr:`array_shape`."""
        return tuple(self.sizes[ax] for ax in AXES)  # type: ignore[return-value]

    @property
    def array_shape(self) -> tuple[int, int, int, int, int]:
        """Shape in ``TCZYX`` order: the shape of the 5-D arrays given to and returned by the library."""
        return tuple(self.sizes[ax] for ax in ARRAY_AXES)  # type: ignore[return-value]

    @property
    def nbytes(self) -> int:
        """Bytes of the whole pixel array."""
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def with_sizes(self, **sizes: int) -> ImageMeta:
        """A copy with new sizes (axis letters as keywords); channels follow a C change. Another image: the
        stored OME-XML (:attr:`ome_xml`) is dropped unless the sizes stay the same."""
        new = {**self.sizes, **{k.upper(): v for k, v in sizes.items()}}
        chans: Sequence[Channel] = self.channels if new["C"] == self.sizes["C"] else ()
        xml = self.ome_xml if new == self.sizes else None
        return replace(self, sizes=new, channels=chans, ome_xml=xml)

    def select_channels(self, indices: Sequence[int]) -> ImageMeta:
        """A copy keeping the channels at ``indices`` in that order (without the stored OME-XML, which
        describes the channels of the whole image, unless ``indices`` keeps them all in order)."""
        sizes = {**self.sizes, "C": len(indices)}
        xml = self.ome_xml if list(indices) == list(range(self.sizes["C"])) else None
        return replace(self, sizes=sizes, channels=tuple(self.channels[i] for i in indices), ome_xml=xml)

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-serialisable summary (used by ``info()``); an unknown physical size is None."""
        out = {
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
        if self.notes:
            out["notes"] = list(self.notes)
        return out
