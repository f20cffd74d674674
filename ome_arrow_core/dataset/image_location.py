"""ImageLocation: where one image of a dataset lives (small and picklable), and how to open it."""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..boundary import blaming, reading
from ..errors import ArgumentError, OMEArrowError, StorageError
from ..image import OMEArrow
from ..record import RecordSource
from ..registry import Registry
from ..typed_chunk import DatasetSource, open_dataset
from .scan import Kind

__all__ = ["ImageLocation", "changed_since_scan"]


def changed_since_scan(path: Path, rows: Sequence[int], registry: Registry | None) -> StorageError | None:
    """A :class:`StorageError` (errno ESTALE) saying that chunk dataset ``path`` changed since it was scanned when
    one of image ``rows`` (from the scan) is past the images it holds now (an overwrite with fewer); else None."""
    try:
        with reading(path, None, "counting images"), blaming(path):
            count = open_dataset(path, registry).image_count
    except OMEArrowError:
        return None
    past = [r for r in rows if r >= count]
    if not past:
        return None
    err = StorageError(
        f"{path} changed since this dataset was scanned (overwritten): it holds {count} image(s) now, image row "
        f"{past[0]} of the scan is gone; scan it again (OMEArrowDataset.scan) to read what it holds"
    )
    err.errno = errno.ESTALE
    return err


@dataclass(frozen=True)
class ImageLocation:
    """Where one image of a dataset lives; small and picklable, so any process can open it."""

    kind: Kind
    path: str
    row: int = 0
    column: str | None = None
    #: Check checksums on read (None: unless ``OME_ARROW_CORE_VERIFY=0``); see :mod:`.checksums`.
    verify: bool | None = None

    def open(self, registry: Registry | None = None) -> OMEArrow:
        """The image, lazily (metadata read; pixels when a view is executed)."""
        path = Path(self.path)
        if self.kind == "chunks":
            try:
                with reading(path, None, f"opening image {self.row}"), blaming(path):
                    src: Any = DatasetSource(path, row=self.row, verify=self.verify, registry=registry)
            except ArgumentError as exc:  # its row past the images (damage is a DamagedFileError: not asked again)
                stale = changed_since_scan(path, [self.row], registry)
                if stale is None:
                    raise
                raise stale from exc
        elif self.kind == "records":
            src = RecordSource(path, column=self.column, row=self.row, verify=self.verify)
        else:
            options: dict[str, Any] = {} if self.verify is None else {"verify": self.verify}
            if self.kind == "collection":  # image `row` of a plugin's collection (a field of an HCS plate)
                options["row"] = self.row
            if self.column is not None:  # the OME-Arrow column of a table of several (a reader may ignore it)
                options["column"] = self.column
            return OMEArrow.scan(path, registry=registry, **options)
        return OMEArrow.from_source(src, lazy=True, registry=registry)
