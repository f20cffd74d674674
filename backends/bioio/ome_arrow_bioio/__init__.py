"""ome-arrow-bioio: every format an installed bioio reader plugin opens, for ome-arrow-core.

Installing it registers (entry point ``ome_arrow_core.plugins``, name ``bioio``) a reader of
lowest priority: CZI, ND2, LIF, DV, PNG/JPEG (bioio-imageio) and the rest open as images when
a bioio plugin for them is installed, ``OMEArrow.scan(path, scene=1)`` reads metadata only and a
view reads only the planes it selects. Our own TIFF and Zarr readers keep their suffixes.

Importing this package does not import bioio.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
