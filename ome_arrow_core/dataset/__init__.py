"""Many images over any storage: :class:`OMEArrowDataset` (scan, filter, random access, batched reads),
:class:`DatasetViews` (one selection of every image) and :func:`write_dataset`.

- :mod:`.scan`: a path's members (typed-chunk directories, record files, image files) and their tables;
- :mod:`.collection`: OMEArrowDataset (scan, table, random access, select, filter);
- :mod:`.reads`: its views and batched reads (one selection for every image, many images as one array);
- :mod:`.image_location`: ImageLocation (where one image lives, picklable);
- :mod:`.views`: DatasetViews, and a selection's shape in a layout;
- :mod:`.write`: write_dataset, streaming any images into a typed-chunk dataset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ..doors import lazy_names

if TYPE_CHECKING:
    from .collection import OMEArrowDataset
    from .image_location import ImageLocation
    from .scan import FilterLike, as_filter
    from .views import DatasetViews
    from .write import ImageLike, write_dataset

__all__ = ["OMEArrowDataset", "DatasetViews", "ImageLocation", "write_dataset", "as_filter", "FilterLike", "ImageLike"]

#: Each name of the door: (module, name in it), imported on first use (see :mod:`..doors`): reading loads no
#: writer.
_WHERE: Final[dict[str, tuple[str, str]]] = {
    "OMEArrowDataset": (".collection", "OMEArrowDataset"),
    "ImageLocation": (".image_location", "ImageLocation"),
    "FilterLike": (".scan", "FilterLike"),
    "as_filter": (".scan", "as_filter"),
    "DatasetViews": (".views", "DatasetViews"),
    "ImageLike": (".write", "ImageLike"),
    "write_dataset": (".write", "write_dataset"),
}

__getattr__ = lazy_names(__name__, _WHERE)
