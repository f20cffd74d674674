"""ome-arrow-zarr: OME-Zarr (OME-NGFF 0.4 on Zarr v2, 0.5 on Zarr v3) for ome-arrow-core.

Installing it registers (entry point ``ome_arrow_core.plugins``, name ``zarr``):

- a reader for ``.ome.zarr`` and ``.zarr`` directories (or any directory with NGFF
  metadata): ``OMEArrow.scan(store, level=1, label="nuclei")`` reads metadata only, a view
  reads only the Zarr chunks it intersects;
- a writer: ``image.export("ome-zarr", "x.ome.zarr", levels=3)``;
- ``open_plate(path)``: the fields of an HCS plate as a collection with plate metadata columns.

Importing this package does not import zarr.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "open_plate", "PlateDataset"]


def __getattr__(name: str) -> Any:
    """``open_plate`` and ``PlateDataset`` load on first use."""
    if name in ("open_plate", "PlateDataset"):
        from . import plate

        return getattr(plate, name)
    raise AttributeError(f"module 'ome_arrow_zarr' has no attribute {name!r}")
