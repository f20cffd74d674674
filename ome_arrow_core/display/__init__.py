"""Seeing an image: thumbnails rendered in the core (numpy only), PNG encoded with the standard library.

:mod:`.render` draws an image's selection as RGB (max over Z, channel composite in the stored
colours, robust auto-contrast, strided downsampling that reads only what it shows);
:mod:`.png` encodes it; :mod:`.mixins` gives images and views their notebook representations,
:mod:`.grid` datasets theirs; :mod:`.plots` draws with matplotlib or PyVista when they are installed.
The grid and the HTML code load on first use (a read never loads them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .colors import channel_colors, default_colors
from .contrast import PERCENTILES
from .mixins import Thumbnailed, thumbnail, thumbnail_png
from .png import PNG_SIGNATURE, encode_png
from .render import DEFAULT_SIZE, render

if TYPE_CHECKING:
    from .grid import DatasetThumbnails

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


def __getattr__(name: str) -> Any:
    """DatasetThumbnails loads :mod:`.grid` (and the HTML code) on first use."""
    if name == "DatasetThumbnails":
        from .grid import DatasetThumbnails

        return DatasetThumbnails
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
