"""Display colours of channels: the stored OME colour, else a default by the channel's position.

A stored ``Channel.color_rgba`` is OME's packed ``0xRRGGBBAA``; its alpha is ignored (channels
are added, not blended). Channels without one get, by how many channels the image shows:

- 1 channel: grey (white at full intensity);
- 2 channels: green, magenta;
- 3 or more: red, green, blue, cyan, magenta, yellow, grey, then again from red.

The alpha sample of an RGBA picture decoded as channels (``meta.sample_channels``: name ``A``, id
``...:A``) is transparency, not a colour: it is drawn black (adds nothing), so R, G, B show as stored.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..meta import Channel

__all__ = ["GREY", "default_colors", "channel_colors", "is_alpha_sample", "rgb_of"]

GREY = (1.0, 1.0, 1.0)
_TWO = ((0.0, 1.0, 0.0), (1.0, 0.0, 1.0))
_MANY = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.0, 1.0, 1.0), (1.0, 0.0, 1.0), (1.0, 1.0, 0.0), GREY)


def default_colors(n: int) -> list[tuple[float, float, float]]:
    """The default colours of ``n`` channels shown together (see the module docs)."""
    if n == 1:
        return [GREY]
    if n == 2:
        return list(_TWO)
    return [_MANY[k % len(_MANY)] for k in range(n)]


def rgb_of(rgba: int) -> tuple[float, float, float]:
    """The red, green and blue of a packed ``0xRRGGBBAA`` colour, each in [0, 1]."""
    value = int(rgba) & 0xFFFFFFFF
    return ((value >> 24) & 0xFF) / 255.0, ((value >> 16) & 0xFF) / 255.0, ((value >> 8) & 0xFF) / 255.0


def is_alpha_sample(channel: Channel) -> bool:
    """Whether ``channel`` is the alpha sample of an RGBA picture shown as channels (see the module docs)."""
    return channel.name == "A" and channel.id.endswith(":A")


def _color(channel: Channel, default: tuple[float, float, float]) -> tuple[float, float, float]:
    if channel.color_rgba is not None:
        return rgb_of(channel.color_rgba)
    return (0.0, 0.0, 0.0) if is_alpha_sample(channel) else default


def channel_colors(channels: Sequence[Channel]) -> np.ndarray:
    """A ``(C, 3)`` float array: each channel's stored colour, or its default."""
    defaults = default_colors(len(channels))
    return np.array(
        [_color(ch, defaults[k]) for k, ch in enumerate(channels)],
        dtype=np.float32,
    ).reshape(len(channels), 3)
