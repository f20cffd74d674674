"""What ``OMEArrow(source)`` accepts, turned into a pixel source: paths, many files, records, arrays."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from .errors import ArgumentError, ArgumentTypeError
from .handlers import PixelSource
from .opening import open_path
from .registry import Registry
from .sources import ArraySource

__all__ = ["open_source"]

_RECORD_TYPES = (pa.StructScalar, pa.StructArray, pa.ChunkedArray, pa.Table, pa.RecordBatch)
#: ome-arrow 0.1.0 keywords that readers would otherwise ignore, with ours.
_REFERENCE_SPELLINGS = {
    "row_index": "row=",
    "column_name": "column=",
    "lazy": "OMEArrow.scan(path)",
    "tcz": "tensor_view(t=, c=, z=)",
    "image_type": "no equivalent",
}


def open_source(
    source: Any,
    dim_order: str | None,
    registry: Registry,
    *,
    column: str | None = None,
    row: int = 0,
    format: str | None = None,
    name: str | None = None,
    filesystem: Any = None,
    copy: bool = True,
    **options: Any,
) -> PixelSource:
    """The pixel source for anything ``OMEArrow(source)`` takes (see its docstring).

    Files are opened, not read; records and arrays are in memory (``copy=False``: an
    array is viewed read-only, not copied into Arrow memory).
    """
    spelt = sorted(set(options) & set(_REFERENCE_SPELLINGS))
    if spelt:
        hints = ", ".join(f"{k} ({_REFERENCE_SPELLINGS[k]})" for k in spelt)
        raise ArgumentTypeError(
            f"OMEArrow() got ome-arrow keyword(s) {hints}; for the ome-arrow API use "
            "'import ome_arrow_core.compat as ome_arrow' (docs/migration.md)"
        )
    if filesystem is None and may_be_stack_input(source):
        from .stacks import is_stack_input, open_stack  # the stack machinery loads for stacks only

        if is_stack_input(source):  # many files, one image
            return open_stack(
                source, registry, dim_order=dim_order, format=format, name=name, column=column, row=row, **options
            )
    if isinstance(source, (str, os.PathLike)) or filesystem is not None:
        if dim_order is not None:  # (it was ignored: a file's reader takes its axes from the file)
            raise ArgumentError(
                f"dim_order={dim_order!r} names the axes of an array, or the stacking axes of several files; "
                f"{os.fspath(source) if filesystem is None else source} is one file, whose axes come from the file "
                "itself (OME metadata, tifffile's axes). Leave dim_order out; to give a file's array your own axes, "
                "read it first: OMEArrow(tifffile.imread(path), dim_order=...)"
            )
        return open_path(source, registry, format=format, filesystem=filesystem, column=column, row=row, **options)
    if options:  # (a reader's options: an array or a record has no reader, and they were dropped silently)
        kind = "a record" if isinstance(source, (Mapping, *_RECORD_TYPES)) else f"an array ({type(source).__name__})"
        raise ArgumentError(
            f"OMEArrow({kind}) takes no option {', '.join(map(repr, sorted(options)))}: options such as level= "
            "or image_id= go to a file's reader. An array's axes are dim_order=, its id name=; channel names and "
            "physical sizes come with an ImageMeta (write_dataset([(meta, array)]), docs/datasets.md)"
        )
    if isinstance(source, (Mapping, *_RECORD_TYPES)):
        from .record import (  # loads pyarrow.compute: only for records
            as_struct_array,
            attach_carried,
            carried_entry,
            record_to_pixels,
        )

        records = as_struct_array(source, column)
        meta, pixels = record_to_pixels(records, row)
        meta = attach_carried(meta, carried_entry(source, records, row), records, row, pixels)
        return ArraySource(meta, pixels, "arrow record")
    from .ingesting import ingest  # arrays and tensors only: a file's read never loads it

    return ingest(source, dim_order, registry, name, copy)


def may_be_stack_input(source: Any) -> bool:
    """A superset of ``stacks.is_stack_input``, without loading it: a list or tuple, or a path with a file
    pattern's ``<`` or a glob's wildcard (``*``, ``?``, ``[``)."""
    if isinstance(source, (list, tuple)):
        return True
    if not isinstance(source, (str, os.PathLike)):
        return False
    text = os.fspath(source)
    return not isinstance(text, str) or not _PATTERN_CHARS.isdisjoint(text)


#: The characters of a file pattern (``<``) or a glob (``*``, ``?``, ``[``).
_PATTERN_CHARS = frozenset("<*?[")
