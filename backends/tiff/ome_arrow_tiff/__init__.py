"""ome-arrow-tiff: TIFF and OME-TIFF for ome-arrow-core, with tifffile.

Installing it registers (entry point ``ome_arrow_core.plugins``, name ``tiff``):

- a reader for ``.ome.tiff``, ``.ome.tif``, ``.tiff``, ``.tif`` (and BigTIFF suffixes, or any
  file with a TIFF header): ``OMEArrow(path)`` reads eagerly, ``OMEArrow.scan(path)`` reads
  only the pages and tiles a view needs; ``level=`` picks a pyramid level; the checksums our
  OME-TIFFs store are checked unless ``verify=False``;
- a writer: ``image.export(how="ome-tiff", out="x.ome.tiff")`` (``how="tiff"`` is the same),
  with checksums of every strip and tile and, with ``levels=N``, a pyramid.

Importing this package does not import tifffile.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
