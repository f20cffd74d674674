"""Example plugin: a raw ``.exampleimg`` reader, a ``LabelledArray`` ingester, a ``mode="example"`` exporter.

Written only against ome-arrow-core's public API, as any third party would.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ome_arrow_core import Exporter, ImageMeta, Ingester, Reader, Selection, TensorView, hookimpl
from ome_arrow_core.plugin_api import DamagedFileError, DLPackTensor, reading


class LabelledArray(np.ndarray):
    """An ndarray subclass that this plugin ingests ahead of the built-in numpy ingester."""


ingested: list[str] = []


def _ingest(obj: object) -> np.ndarray:
    ingested.append(type(obj).__name__)
    return np.asarray(obj).view(np.ndarray)


class ExampleSource:
    """``.exampleimg``: a JSON header line (shape TZCYX, dtype) then raw C-order pixels."""

    def __init__(self, path: Path) -> None:
        with reading(path, None, "reading the header"), open(path, "rb") as fh:  # foreign errors become ours
            header = json.loads(fh.readline())
            self._offset = fh.tell()
            self.meta = ImageMeta(sizes=dict(zip("TZCYX", header["shape"])), dtype=np.dtype(header["dtype"]))
        need = self._offset + int(np.prod(self.meta.shape)) * self.meta.dtype.itemsize
        if path.stat().st_size != need:
            raise DamagedFileError(
                f"{path}: holds {path.stat().st_size} bytes, its header needs {need}; the file is truncated or damaged"
            )
        self.path = path

    def read(self, sel: Selection) -> np.ndarray:
        with reading(self.path, None, "reading pixels"):
            data = np.memmap(self.path, dtype=self.meta.dtype, mode="r", offset=self._offset, shape=self.meta.shape)
            return np.array(sel.apply(data))

    def describe(self) -> dict[str, Any]:
        return {"storage": "exampleimg"}


def write_exampleimg(arr: np.ndarray, path: Path) -> None:
    """Write a TZCYX array as ``.exampleimg`` (used by the tests)."""
    with open(path, "wb") as fh:
        fh.write(json.dumps({"shape": list(arr.shape), "dtype": arr.dtype.name}).encode() + b"\n")
        fh.write(np.ascontiguousarray(arr).tobytes())


def _export(view: TensorView, *, contiguous: bool = False, **_: Any) -> DLPackTensor:
    return DLPackTensor(np.array(view.to_numpy(contiguous=contiguous)))


@hookimpl
def ome_arrow_ingesters() -> Sequence[Ingester]:
    return [
        Ingester(
            name="labelled",
            priority=100,
            matches=lambda o: isinstance(o, LabelledArray),
            to_numpy=_ingest,
            description="LabelledArray (example plugin)",
        )
    ]


@hookimpl
def ome_arrow_readers() -> Sequence[Reader]:
    return [
        Reader(
            name="exampleimg",
            suffixes=(".exampleimg",),
            open=lambda p, **_: ExampleSource(Path(p)),
            description="raw pixels with a JSON header (example plugin)",
        )
    ]


@hookimpl
def ome_arrow_exporters() -> Sequence[Exporter]:
    return [
        Exporter(
            name="example",
            devices=("cpu",),
            modes=("example",),
            export=_export,
            description="copying exporter (example plugin)",
        )
    ]
