"""ImageLocation: where one image of a dataset lives (small and picklable), and how to open it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..boundary import blaming, reading
from ..image import OMEArrow
from ..record import RecordSource
from ..registry import Registry
from ..typed_chunk import DatasetSource
from .scan import Kind

__all__ = ["ImageLocation"]


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
            with reading(path, None, f"opening image {self.row}"), blaming(path):
                src: Any = DatasetSource(path, row=self.row, verify=self.verify, registry=registry)
        elif self.kind == "records":
            src = RecordSource(path, column=self.column, row=self.row, verify=self.verify)
        else:
            options: dict[str, Any] = {} if self.verify is None else {"verify": self.verify}
            if self.kind == "collection":  # image `row` of a plugin's collection (a field of an HCS plate)
                options["row"] = self.row
            return OMEArrow.scan(path, registry=registry, **options)
        return OMEArrow.from_source(src, lazy=True, registry=registry)
