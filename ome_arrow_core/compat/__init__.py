"""The ome-arrow 0.1.0 API on ome-arrow-core: ``import ome_arrow_core.compat as ome_arrow``.

Modules mirror the reference's (``core``, ``ingest``, ``export``, ``meta``, ``dataset``,
``tensor``, ``utils``, ``view``, ``shapes``). Pixels are never cast; docs/migration.md lists every
behaviour that differs from the reference.
"""

from __future__ import annotations

from . import transform as transform
from .core import OMEArrow
from .dataset import (
    AccessPattern,
    ChunkChoice,
    Layout,
    OMEArrowDataset,
    OMEArrowPixels,
    choose_chunking,
    write_ome_arrow_dataset,
)
from .errors import SelectionValueError
from .export import to_numpy, to_ome_parquet, to_ome_tiff, to_ome_vortex, to_ome_zarr
from .ingest import (
    from_jax_array,
    from_numpy,
    from_ome_parquet,
    from_ome_vortex,
    from_ome_zarr,
    from_tiff,
    from_torch_array,
    to_ome_arrow,
)
from .meta import (
    OME_ARROW_BYTE_STRUCT,
    OME_ARROW_STRUCT,
    OME_ARROW_TAG_TYPE,
    OME_ARROW_TAG_VERSION,
)
from .shapes import (
    OME_ARROW_RELATIONSHIPS_METADATA_KEY,
    OME_ARROW_SHAPES_METADATA_KEY,
    OMEArrowShapes,
    geometry_storage_type,
    make_relationship_table,
    make_shape_table,
    read_shape_parquet,
    relationship_schema,
    shape_schema,
    validate_relationship_table,
    validate_shape_table,
    write_shape_parquet,
)
from .tensor import LazyTensorView, TensorView
from .utils import describe_ome_arrow, verify_ome_arrow
from .view import view_matplotlib, view_pyvista

__version__ = "0.1.0"
ome_arrow_version = __version__

__all__ = [
    "OME_ARROW_BYTE_STRUCT",
    "OME_ARROW_RELATIONSHIPS_METADATA_KEY",
    "OME_ARROW_SHAPES_METADATA_KEY",
    "OME_ARROW_STRUCT",
    "OME_ARROW_TAG_TYPE",
    "OME_ARROW_TAG_VERSION",
    "AccessPattern",
    "ChunkChoice",
    "Layout",
    "LazyTensorView",
    "OMEArrow",
    "OMEArrowDataset",
    "OMEArrowPixels",
    "OMEArrowShapes",
    "SelectionValueError",
    "TensorView",
    "choose_chunking",
    "describe_ome_arrow",
    "from_jax_array",
    "from_numpy",
    "from_ome_parquet",
    "from_ome_vortex",
    "from_ome_zarr",
    "from_tiff",
    "from_torch_array",
    "geometry_storage_type",
    "make_relationship_table",
    "make_shape_table",
    "read_shape_parquet",
    "relationship_schema",
    "shape_schema",
    "to_numpy",
    "to_ome_arrow",
    "to_ome_parquet",
    "to_ome_tiff",
    "to_ome_vortex",
    "to_ome_zarr",
    "validate_relationship_table",
    "validate_shape_table",
    "verify_ome_arrow",
    "view_matplotlib",
    "view_pyvista",
    "write_ome_arrow_dataset",
    "write_shape_parquet",
]
