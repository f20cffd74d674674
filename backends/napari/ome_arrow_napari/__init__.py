"""napari reader plugin for ome-arrow-core (npe2 manifest ``napari.yaml``).

Opens what ome-arrow-core opens (OME-Arrow Parquet datasets and tables, Vortex, OME-TIFF,
OME-Zarr, folders of images) as lazy image layers: napari reads only the planes it shows.
Importing this package imports neither napari nor npe2.
"""

from __future__ import annotations

from .arrays import ImageArray, StackArray
from .reader import claims, get_reader, read

__version__ = "0.1.0"

__all__ = ["get_reader", "read", "claims", "ImageArray", "StackArray", "__version__"]
