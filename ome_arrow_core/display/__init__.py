"""Seeing an image: thumbnails rendered in the core (numpy only), PNG encoded with the standard library.

:mod:`.render` draws an image's selection as RGB (max over Z, channel composite in the stored
colours, robust auto-contrast, strided downsampling that reads only what it shows);
:mod:`.png` encodes it; :mod:`.mixins` gives images, views and datasets their notebook
representations; :mod:`.plots` draws with matplotlib or PyVista when they are installed.
"""

from __future__ import annotations

from .colors import channel_colors, default_colors
from .contrast import PERCENTILES
from .mixins import DatasetThumbnails, Thumbnailed, thumbnail, thumbnail_png
from .png import PNG_SIGNATURE, encode_png
from .render import DEFAULT_SIZE, render

__all__ = [
    "thumbnail",
    "thumbnail_png",
    "render",
    "encode_png",
    "channel_colors",
    "default_colors",
    "PERCENTILES",
    "DEFAULT_SIZE",
    "PNG_SIGNATURE",
    "Thumbnailed",
    "DatasetThumbnails",
]
