"""Seeing an image: thumbnails rendered in the core (numpy only), PNG encoded with the standard library.

:mod:`.rendering` draws an image's selection as RGB (max over Z, channel composite in the stored
colours, robust auto-contrast, strided downsampling that reads only what it shows);
:mod:`.png` encodes it; :mod:`.mixins` gives images and views their notebook representations,
:mod:`.grid` datasets theirs; :mod:`.plots` draws with matplotlib or PyVista when they are installed.
This door's names load on first use (see :mod:`..doors`): importing the package, as an image's class does for
its mixins, loads no renderer, encoder or HTML code (a read never draws).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ..doors import lazy_names

if TYPE_CHECKING:
    from .colors import channel_colors, default_colors
    from .contrast import PERCENTILES
    from .grid import DatasetThumbnails
    from .mixins import Thumbnailed, thumbnail, thumbnail_png
    from .png import PNG_SIGNATURE, encode_png
    from .rendering import DEFAULT_SIZE, render

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

#: Each name of the door: (module, name in it), imported on first use.
_WHERE: Final[dict[str, tuple[str, str]]] = {
    "thumbnail": (".mixins", "thumbnail"),
    "thumbnail_png": (".mixins", "thumbnail_png"),
    "Thumbnailed": (".mixins", "Thumbnailed"),
    "render": (".rendering", "render"),
    "DEFAULT_SIZE": (".rendering", "DEFAULT_SIZE"),
    "encode_png": (".png", "encode_png"),
    "PNG_SIGNATURE": (".png", "PNG_SIGNATURE"),
    "channel_colors": (".colors", "channel_colors"),
    "default_colors": (".colors", "default_colors"),
    "PERCENTILES": (".contrast", "PERCENTILES"),
    "DatasetThumbnails": (".grid", "DatasetThumbnails"),
}

__getattr__ = lazy_names(__name__, _WHERE)
